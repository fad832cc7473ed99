"""Executing one chapter: read its Jupytext source, keep the committed ``.ipynb`` twin in sync, run it
with papermill (a Colab badge on top, the build key in its metadata) and note the figures it exported."""
from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import jupytext
import nbformat
import papermill as pm
import yaml

from shared.build import layout as places
from shared.build.layout import BuildError
from shared.chapters.registry import ChapterEntry


def read_source(notebook: Path) -> Any:
    """Read a Jupytext notebook, with cell ids derived from position and content (stable twins)."""
    nb = jupytext.read(notebook)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"c{i:03d}-" + hashlib.sha1(cell.source.encode()).hexdigest()[:8]
    return nb


def sync_pair(notebook: Path) -> bool:
    """Write the committed, output-free ``.ipynb`` twin of a ``.py`` notebook; True if it changed."""
    twin = notebook.with_suffix(".ipynb")
    text = jupytext.writes(read_source(notebook), fmt="ipynb")
    if twin.exists() and twin.read_text() == text:
        return False
    twin.write_text(text)
    return True


def colab_link(notebook: Path) -> str:
    """The Colab address of ``notebook``'s committed twin, from ``_config.yml``'s repository."""
    layout = places.LAYOUT
    config = yaml.safe_load(layout.config.read_text()) or {}
    repo = config.get("repository", {})
    slug = repo.get("url", "").replace("https://github.com/", "").strip("/")
    rel = layout.relative(notebook.with_suffix(".ipynb"))
    return f"https://colab.research.google.com/github/{slug}/blob/{repo.get('branch', 'main')}/{rel}"


def exported_figures(folder: Path) -> dict[str, str]:
    """The files under a chapter's figure folder with a short content hash each."""
    if not folder.is_dir():
        return {}
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            for path in sorted(folder.rglob("*")) if path.is_file()}


def figures_intact(folder: Path, recorded: Optional[dict[str, str]]) -> bool:
    """Whether every figure recorded at the last execution is still there, unchanged."""
    current = exported_figures(folder)
    return all(current.get(name) == digest for name, digest in (recorded or {}).items())


def _badge(chapter: ChapterEntry) -> Any:
    cell = nbformat.v4.new_markdown_cell(
        f"[Open this chapter in Colab]({colab_link(chapter.notebook)}) · source: "
        f"`{places.LAYOUT.relative(chapter.notebook)}`",
    )
    cell.metadata["tags"] = ["colab-link"]
    return cell


def execute(chapter: ChapterEntry, params: dict[str, Any], output: Path, key: str = "",
            kernel: str = "python3", parts: Optional[dict[str, str]] = None,
            figures: Optional[Path] = None) -> float:
    """Execute ``chapter`` with ``params`` into ``output`` through papermill; returns seconds.

    With ``figures`` (the chapter's folder under ``figures/``), that folder is emptied first and
    the figures the run exported are recorded in the notebook's metadata. On failure nothing is
    written at ``output`` (the failed notebook goes to ``_build/failed/<chapter>.ipynb``) and a
    :class:`BuildError` names the cell.
    """
    nb = read_source(chapter.notebook)
    nb.cells.insert(0, _badge(chapter))
    nb.metadata.setdefault("kernelspec", {"name": kernel, "display_name": "Python 3", "language": "python"})
    meta = {"build_key": key, "chapter": chapter.name, "parameters": params}
    if parts:
        meta["key_parts"] = parts
    nb.metadata["circuits_book"] = meta
    if figures is not None:
        shutil.rmtree(figures, ignore_errors=True)
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        source, result = Path(tmp) / "in.ipynb", Path(tmp) / "out.ipynb"
        jupytext.write(nb, source, fmt="ipynb")
        try:
            pm.execute_notebook(
                str(source), str(result), parameters=params, cwd=str(places.LAYOUT.root), kernel_name=kernel,
                progress_bar=False, log_output=False, request_save_on_cell_execute=False,
            )
        except pm.PapermillExecutionError as err:
            failed = places.LAYOUT.root / "_build" / "failed" / f"{chapter.name}.ipynb"
            failed.parent.mkdir(parents=True, exist_ok=True)
            if result.exists():
                shutil.copy(result, failed)
            raise BuildError(
                f"Chapter {chapter.name!r} failed in cell {err.exec_count} ({err.ename}: "
                f"{err.evalue.strip()}); the failed notebook is {places.LAYOUT.relative(failed)}."
            ) from None
        if figures is not None:
            done = nbformat.read(result, as_version=4)
            done.metadata["circuits_book"]["figures"] = exported_figures(figures)
            nbformat.write(done, result)
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = output.with_suffix(".ipynb.tmp")
        shutil.copy(result, tmp_out)
        tmp_out.replace(output)
    return time.time() - start


__all__ = ["colab_link", "execute", "exported_figures", "figures_intact", "read_source", "sync_pair"]
