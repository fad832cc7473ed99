"""Rendering the executed book to HTML with jupyter-book 1.x."""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import yaml

from shared.build import layout as places
from shared.build.layout import BuildError
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


def render_html(book_dir: Optional[Path] = None, out_root: Optional[Path] = None, strict: bool = True,
                toc: Optional[Path] = None) -> Path:
    """Render ``book_dir`` with jupyter-book into ``out_root/_build/html``; returns that folder.

    Chapters not executed yet are left out of the table of contents (with a note).
    """
    layout = places.LAYOUT
    book_dir = book_dir or layout.book
    build_dir = (out_root or layout.root) / "_build"
    build_dir.mkdir(parents=True, exist_ok=True)
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
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(book_dir), "--path-output",
           str(build_dir.parent), "--config", str(layout.config), "--toc", str(toc_path)]
    if strict:
        cmd += ["-W", "--keep-going"]
    start = time.time()
    proc = subprocess.run(cmd, cwd=layout.root, capture_output=True, text=True)
    html = build_dir / "html"
    if proc.returncode != 0:
        log = build_dir / "jupyter-book.log"
        log.write_text(proc.stdout + proc.stderr)
        warnings = [line for line in (proc.stdout + proc.stderr).splitlines() if "WARNING" in line or "ERROR" in line]
        raise BuildError(
            f"jupyter-book failed ({len(warnings)} warnings/errors, first: {warnings[0] if warnings else '?'}); "
            f"full log in {log}."
        )
    (html / "_static").mkdir(parents=True, exist_ok=True)
    shutil.copy(bundle_path(), html / "_static" / BUNDLE_NAME)
    print(f"HTML rendered in {time.time() - start:.1f} s: {html / 'index.html'}")
    return html


__all__ = ["render_html"]
