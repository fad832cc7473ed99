"""The committed, output-free ``.ipynb`` twin of each chapter's Jupytext ``.py`` source, kept in sync in
whichever direction was edited, so an edit made in either file is never written over.

Each twin records in its metadata (``circuits_book.synced_from``) a hash of the cells (type, source,
tags) of the ``.py`` it was written from. When the two files disagree:

* the ``.py`` still has the recorded cells: only the twin was edited (in Colab or Jupyter), so the
  ``.py`` is rewritten from it (``jupytext``; notebook and cell metadata other than tags dropped);
* the twin still has the recorded cells: only the ``.py`` was edited, so the twin is rewritten;
* neither: both were edited, and the build stops with one sentence naming the two files;
* a twin without the record (an editor dropped it): the newer of the two files wins.

A twin whose cells equal the ``.py``'s (only outputs, execution counts or metadata differ) is
simply rewritten from the ``.py``.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Optional

import jupytext

from shared.build import layout as places
from shared.build.layout import BuildError, one_line

CELL_METADATA = ("tags",)  # the only cell metadata the .py sources use
NOTEBOOK_METADATA = ("jupytext", "kernelspec")  # what their headers hold
_TEXT_REPRESENTATION = re.compile(r"^#     text_representation:\n(?:#       .*\n)+", re.M)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def read_source(notebook: Path) -> Any:
    """Read a Jupytext notebook, with cell ids derived from position and content (stable twins)."""
    nb = jupytext.read(notebook)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"c{i:03d}-" + hashlib.sha1(cell.source.encode()).hexdigest()[:8]
    return nb


def cells_digest(nb: Any) -> str:
    """A hash of a notebook's cells as the book sees them: type, source and tags."""
    return _sha(json.dumps([(c.cell_type, c.source, list(c.metadata.get("tags", []))) for c in nb.cells]))


def twin_text(notebook: Path) -> str:
    """The text of ``notebook``'s twin: its cells, no outputs, and the hash of the cells it came from."""
    nb = read_source(notebook)
    nb.metadata["circuits_book"] = {"synced_from": cells_digest(nb)}
    return jupytext.writes(nb, fmt="ipynb")


def _read_twin(text: str, where: Path) -> Any:
    try:
        return jupytext.reads(text, fmt="ipynb")
    except (ValueError, KeyError, TypeError) as err:
        raise BuildError(f"{places.LAYOUT.relative(where)} is not a readable notebook ({one_line(err)}); restore "
                         f"it with git checkout, or delete it to rewrite it from its .py.") from None


def source_from_twin(text: str, where: Path) -> str:
    """The ``py:percent`` text of a twin notebook (only tags kept as cell metadata)."""
    nb = _read_twin(text, where)
    nb.metadata = {k: v for k, v in nb.metadata.items() if k in NOTEBOOK_METADATA}
    for cell in nb.cells:
        cell.metadata = {k: v for k, v in cell.metadata.items() if k in CELL_METADATA}
    return _TEXT_REPRESENTATION.sub("", jupytext.writes(nb, fmt="py:percent"))


def _recorded(text: str) -> Optional[str]:
    try:
        return (json.loads(text).get("metadata", {}).get("circuits_book") or {}).get("synced_from")
    except (ValueError, AttributeError):
        return None


def sync_pair(notebook: Path) -> Optional[str]:
    """Bring ``notebook`` (a ``.py``) and its ``.ipynb`` twin into agreement; returns what was done
    (``None`` when they already agree). Raises :class:`BuildError` when both were edited."""
    twin = notebook.with_suffix(".ipynb")
    expected = twin_text(notebook)
    rel_py, rel_twin = places.LAYOUT.relative(notebook), places.LAYOUT.relative(twin)
    if not twin.exists():
        twin.write_text(expected)
        return f"wrote {rel_twin} from {rel_py}"
    current = twin.read_text()
    if current == expected:
        return None
    py_cells, twin_cells = cells_digest(read_source(notebook)), cells_digest(_read_twin(current, twin))
    if py_cells == twin_cells:  # same cells: outputs, ids or metadata only
        twin.write_text(expected)
        return f"rewrote {rel_twin} from {rel_py} (outputs or metadata only)"
    recorded = _recorded(current)
    if recorded is None:
        twin_edited = twin.stat().st_mtime > notebook.stat().st_mtime
    else:
        py_edited, twin_edited = py_cells != recorded, twin_cells != recorded
        if py_edited and twin_edited:
            raise BuildError(f"Both {rel_py} and {rel_twin} were edited since they were last synced; copy "
                             f"the notebook's edit into the .py, then delete {rel_twin} (the build writes it "
                             f"again from the .py).")
    if twin_edited:
        notebook.write_text(source_from_twin(current, twin))
        twin.write_text(twin_text(notebook))
        return f"synced {rel_py} from {rel_twin}, which was edited"
    twin.write_text(expected)
    return f"synced {rel_twin} from {rel_py}"


__all__ = ["cells_digest", "read_source", "source_from_twin", "sync_pair", "twin_text"]
