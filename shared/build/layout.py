"""Where the build reads and writes, gathered in one object so a test can point the whole build at a
temporary book, and the build's error type."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from shared.errors import BookError
from shared.paths import REPO_ROOT


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class BuildError(BookError):
    """A chapter failed or the build was asked for something that does not exist."""


def one_line(text: object) -> str:
    """``text`` on one line, without terminal colour codes (for the build's one-sentence errors)."""
    return " ".join(_ANSI.sub("", str(text)).split())


@dataclass(frozen=True)
class Layout:
    """The files of one book: ``root`` holds ``shared/`` (whose sources key the chapters),
    ``registry`` the chapter registry, ``book`` the executed chapters and pages, ``toc`` the
    generated table of contents, ``figures`` the exported figures, ``config`` jupyter-book's settings
    and ``build`` (default ``root/_build``) the HTML, failed notebooks and logs."""

    root: Path
    registry: Path
    book: Path
    toc: Path
    figures: Path
    config: Path
    build: Optional[Path] = None

    @classmethod
    def at(cls, root: Path) -> "Layout":
        figures = Path(os.environ.get("CIRCUITS_BOOK_FIGURES", root / "figures"))  # as shared.paths.figures_dir
        return cls(root, root / "notebooks" / "chapters.yml", root / "book", root / "_toc.yml", figures,
                   root / "_config.yml")

    @property
    def build_dir(self) -> Path:
        """``_build``: the published HTML (``html/``), failed notebooks (``failed/``) and logs."""
        return self.build or self.root / "_build"

    @property
    def html(self) -> Path:
        """The published HTML, replaced only by a complete render."""
        return self.build_dir / "html"

    def output(self, chapter: str) -> Path:
        """Where chapter ``chapter`` is executed to."""
        return self.book / f"{chapter}.ipynb"

    def failed(self, chapter: str) -> Path:
        """Where a failed execution of ``chapter`` is kept (its kernel log next to it)."""
        return self.build_dir / "failed" / f"{chapter}.ipynb"

    def relative(self, path: Path) -> str:
        """``path`` relative to the root when it is inside it (for messages)."""
        try:
            return Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return str(path)


LAYOUT = Layout.at(REPO_ROOT)  # the checkout's book; tests replace it

__all__ = ["LAYOUT", "BuildError", "Layout", "one_line"]
