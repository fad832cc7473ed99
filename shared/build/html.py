"""Rendering the executed book to HTML with jupyter-book 1.x.

jupyter-book renders into a staging folder (``_build/.render``, which keeps Sphinx's parsed pages
between builds; its HTML is written afresh each time, so a page that left the book leaves the HTML);
only a render that succeeded replaces the published ``_build/html``, in one swap, so a failed render
never leaves a half-written book behind. The circuitsvis bundle is copied into the
book's ``_static`` (each view loads it from there; MathJax comes from ``sphinx-mathjax-offline``).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import yaml

from shared.build import layout as places
from shared.build.layout import BuildError, one_line
from shared.plots.widgets import BUNDLE_NAME, bundle_path


def _prune(entries: list[dict], book_dir: Path, missing: list[str]) -> list[dict]:
    """``entries`` without the files not in ``book_dir`` (noted in ``missing``) and emptied groups."""
    kept = []
    for entry in entries:
        if "file" in entry and not any((book_dir / (entry["file"] + ext)).exists() for ext in (".md", ".ipynb", "")):
            missing.append(entry["file"])
            continue
        for key in ("sections", "chapters", "parts"):
            if key in entry:
                entry[key] = _prune(entry[key], book_dir, missing)
        if ("chapters" in entry or "sections" in entry) and not (
                entry.get("chapters") or entry.get("sections") or "file" in entry):
            continue
        kept.append(entry)
    return kept


def publish(rendered: Path, target: Path) -> None:
    """Replace ``target`` by a copy of ``rendered`` in one rename (the old copy is removed after)."""
    fresh, old = target.with_name(".html-new"), target.with_name(".html-old")
    for leftover in (fresh, old):
        shutil.rmtree(leftover, ignore_errors=True)
    shutil.copytree(rendered, fresh)
    if target.exists():
        target.rename(old)
    fresh.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def render_html(book_dir: Optional[Path] = None, out_root: Optional[Path] = None, strict: bool = True,
                toc: Optional[Path] = None) -> Path:
    """Render ``book_dir`` with jupyter-book and publish it to ``out_root/_build/html`` (default: the
    layout's ``_build/html``); returns that folder. Chapters not executed yet are left out of the
    table of contents (with a note). On failure the published folder is left as it was."""
    layout = places.LAYOUT
    book_dir = book_dir or layout.book
    build_dir = out_root / "_build" if out_root else layout.build_dir
    staging = build_dir / ".render"
    staging.mkdir(parents=True, exist_ok=True)
    toc_path = toc or layout.toc
    contents = yaml.safe_load(toc_path.read_text())
    missing: list[str] = []
    for key in ("parts", "chapters"):
        if key in contents:
            contents[key] = _prune(contents[key], book_dir, missing)
    if missing:
        print(f"note: not yet executed, left out of the HTML: {', '.join(missing)}")
        toc_path = build_dir / "_toc.partial.yml"
        toc_path.write_text(yaml.safe_dump(contents, sort_keys=False))
    exe = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(book_dir), "--path-output", str(staging),
           "--config", str(layout.config), "--toc", str(toc_path)]
    if strict:
        cmd += ["-W", "--keep-going"]
    start = time.time()
    rendered = staging / "_build" / "html"
    shutil.rmtree(rendered, ignore_errors=True)  # every page written afresh (Sphinx keeps its parsed pages)
    # Sphinx imports the book's extension (shared.build.sphinx_assets) from this checkout, not from
    # wherever the environment's installed copy of the package points (another worktree, site-packages)
    path = os.pathsep.join(p for p in (str(layout.root), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb", "PYTHONPATH": path}
    proc = subprocess.run(cmd, cwd=layout.root, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        log = build_dir / "jupyter-book.log"
        text = "\n".join(one_line(line) for line in (proc.stdout + proc.stderr).splitlines())
        log.write_text(text + "\n")
        warnings = [line for line in text.splitlines() if "WARNING" in line or "ERROR" in line
                    or "Error" in line or "Exception" in line]
        raise BuildError(
            f"jupyter-book failed ({len(warnings)} warnings or errors, first: {warnings[0] if warnings else '?'}); "
            f"the published HTML was left as it was; full log in {layout.relative(log)}."
        )
    (rendered / "_static").mkdir(parents=True, exist_ok=True)
    shutil.copy(bundle_path(), rendered / "_static" / BUNDLE_NAME)
    html = build_dir / "html"
    publish(rendered, html)
    print(f"HTML rendered in {time.time() - start:.1f} s: {layout.relative(html / 'index.html')}")
    return html


__all__ = ["publish", "render_html"]
