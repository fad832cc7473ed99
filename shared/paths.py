"""Where the book keeps things: repository root, model cache, figures."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """Root of the on-disk model/tokenizer cache.

    Defaults to ``shared/checkpoints`` (shipped with the book, so a reader's build does not
    retrain); ``CIRCUITS_BOOK_CACHE`` points it elsewhere, e.g. a temporary folder in tests.
    """
    root = Path(os.environ.get("CIRCUITS_BOOK_CACHE", PACKAGE_DIR / "checkpoints"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def shipped_cache_dir() -> Path:
    """The cache shipped inside the package (``shared/checkpoints``): tracked, never overwritten."""
    return PACKAGE_DIR / "checkpoints"


def is_shipped(path: Path) -> bool:
    """Whether ``path`` lies in the shipped cache (and the cache was not redirected elsewhere)."""
    return "CIRCUITS_BOOK_CACHE" not in os.environ and shipped_cache_dir() in Path(path).resolve().parents


def local_cache_dir() -> Path:
    """Where entries retrained over shipped ones go: ``CIRCUITS_BOOK_LOCAL_CACHE`` or
    ``~/.cache/circuits-book`` (outside the repository, so a shipped checkpoint stays as it is)."""
    default = Path.home() / ".cache" / "circuits-book"
    root = Path(os.environ.get("CIRCUITS_BOOK_LOCAL_CACHE", default))
    root.mkdir(parents=True, exist_ok=True)
    return root


def results_dir() -> Path:
    """Where computed chapter results are cached (never shipped): ``<CIRCUITS_BOOK_CACHE>/results`` when
    the cache is redirected (tests), else ``results/`` in :func:`local_cache_dir` — outside
    ``shared/checkpoints``, whose size is the shipped models' budget, and writable after a pip install."""
    root = Path(os.environ["CIRCUITS_BOOK_CACHE"]) if "CIRCUITS_BOOK_CACHE" in os.environ else local_cache_dir()
    path = root / "results"
    path.mkdir(parents=True, exist_ok=True)
    return path


def revision_folder(hub_id: str, revision: Optional[str]) -> Optional[Path]:
    """A local copy of hub model ``hub_id`` at ``revision`` (e.g. ``"step1000"``), used instead of the
    download when it exists: ``$CIRCUITS_BOOK_HF_REVISIONS/<hub id>/<revision>/`` holding a
    ``config.json`` (an offline mirror of training checkpoints; the tests save tiny models there)."""
    root = os.environ.get("CIRCUITS_BOOK_HF_REVISIONS")
    if not root or not revision:
        return None
    folder = Path(root) / hub_id / revision
    return folder if (folder / "config.json").exists() else None


def figures_dir() -> Path:
    """Where chapters export their figures: ``figures/`` (``CIRCUITS_BOOK_FIGURES`` points it elsewhere)."""
    path = Path(os.environ.get("CIRCUITS_BOOK_FIGURES", REPO_ROOT / "figures"))
    path.mkdir(parents=True, exist_ok=True)
    return path


__all__ = ["PACKAGE_DIR", "REPO_ROOT", "cache_dir", "figures_dir", "is_shipped", "local_cache_dir", "results_dir", "revision_folder",
           "shipped_cache_dir"]
