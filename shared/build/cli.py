"""Build the book: execute each chapter notebook with papermill, then render HTML with jupyter-book.

    python -m shared.build                      # every chapter, profile "local", then HTML
    python -m shared.build --chapter NAME       # one chapter (repeatable)
    python -m shared.build --profile paper      # pretrained models (needs the internet)
    python -m shared.build --param seed=1       # override a notebook parameter
    python -m shared.build --list               # chapters and their parameters

Chapters and their parameters per profile live in ``notebooks/chapters.yml``. A chapter is
re-executed only when its source, its parameters or the ``shared`` package changed; executed
notebooks go to ``book/<chapter>.ipynb`` and the HTML to ``_build/html``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from shared.errors import BookError, ParameterError
from shared.paths import REPO_ROOT

REGISTRY = REPO_ROOT / "notebooks" / "chapters.yml"
BOOK_DIR = REPO_ROOT / "book"
PROFILES = ("local", "paper")


class BuildError(BookError):
    """A chapter failed or the build was asked for something that does not exist."""


@dataclass
class Chapter:
    name: str
    notebook: Path
    params: dict[str, dict[str, Any]]
    smoke: dict[str, Any] = field(default_factory=dict)
    title: str = ""

    @property
    def output(self) -> Path:
        return BOOK_DIR / f"{self.name}.ipynb"

    def parameters(self, profile: str = "local", overrides: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        if profile not in PROFILES:
            raise ParameterError(f"Unknown profile {profile!r}; choose one of {', '.join(PROFILES)}.")
        merged = {**self.params.get("local", {}), **self.params.get(profile, {}), **(overrides or {})}
        for key, value in merged.items():  # model names are checked before anything runs
            if key == "model_name" or key.endswith("_model_name") or key == "model_names":
                from shared.zoo.registry import check_model_name

                for name in value if isinstance(value, list) else [value]:
                    check_model_name(str(name))
        declared = declared_parameters(self.notebook)
        unknown = sorted(set(merged) - set(declared))
        if unknown:
            raise ParameterError(
                f"Chapter {self.name!r} has no parameter {', '.join(map(repr, unknown))}; "
                f"its parameters are {', '.join(declared)}."
            )
        return merged


def load_registry(path: Optional[Path] = None) -> dict[str, Chapter]:
    data = yaml.safe_load((path or REGISTRY).read_text()) or {}
    chapters = {}
    for entry in data.get("chapters") or []:
        if Path(entry["notebook"]).stem != entry["name"]:
            raise BuildError(f"Chapter {entry['name']!r} must be named after its notebook {entry['notebook']!r}.")
        chapter = Chapter(
            name=entry["name"],
            notebook=REPO_ROOT / entry["notebook"],
            params=entry.get("params", {}),
            smoke=entry.get("smoke", {}),
            title=entry.get("title", ""),
        )
        chapters[chapter.name] = chapter
    return chapters


def select(chapters: dict[str, Chapter], names: Optional[list[str]]) -> list[Chapter]:
    if not names:
        return list(chapters.values())
    missing = [n for n in names if n not in chapters]
    if missing:
        raise BuildError(f"Unknown chapter {missing[0]!r}; chapters are {', '.join(chapters)}.")
    return [chapters[n] for n in names]


_declared_cache: dict[Path, list[str]] = {}


def declared_parameters(notebook: Path) -> list[str]:
    """Names assigned in the notebook's ``parameters``-tagged cell."""
    if notebook not in _declared_cache:
        import ast

        nb = read_source(notebook)
        names: list[str] = []
        for cell in nb.cells:
            if "parameters" in cell.get("metadata", {}).get("tags", []):
                for node in ast.parse(cell.source).body:
                    targets = node.targets if isinstance(node, ast.Assign) else (
                        [node.target] if isinstance(node, ast.AnnAssign) else [])
                    names += [t.id for t in targets if isinstance(t, ast.Name)]
        if not names:
            raise BuildError(f"{notebook.relative_to(REPO_ROOT)} has no 'parameters'-tagged cell.")
        _declared_cache[notebook] = names
    return _declared_cache[notebook]


def read_source(notebook: Path):
    """Read a Jupytext notebook, with cell ids derived from position and content (stable twins)."""
    import jupytext

    nb = jupytext.read(notebook)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"c{i:03d}-" + hashlib.sha1(cell.source.encode()).hexdigest()[:8]
    return nb


def shared_digest() -> str:
    """Hash of the ``shared`` package's code: a change there re-executes every chapter."""
    digest = hashlib.sha256()
    for path in sorted((REPO_ROOT / "shared").rglob("*.py")):
        digest.update(path.relative_to(REPO_ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def build_key(chapter: Chapter, params: dict[str, Any], shared: str) -> str:
    digest = hashlib.sha256(chapter.notebook.read_bytes())
    digest.update(json.dumps(params, sort_keys=True, default=str).encode())
    digest.update(shared.encode())
    return digest.hexdigest()[:20]


def stored_key(path: Path) -> Optional[str]:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text()).get("metadata", {}).get("circuits_book", {}).get("build_key")
    except (OSError, json.JSONDecodeError):
        return None


def repo_settings() -> tuple[str, str]:
    config = yaml.safe_load((REPO_ROOT / "_config.yml").read_text())
    repo = config.get("repository", {})
    return repo.get("url", ""), repo.get("branch", "main")


def colab_link(notebook: Path) -> str:
    url, branch = repo_settings()
    slug = url.replace("https://github.com/", "").strip("/")
    rel = notebook.with_suffix(".ipynb").relative_to(REPO_ROOT).as_posix()
    return f"https://colab.research.google.com/github/{slug}/blob/{branch}/{rel}"


def sync_pair(notebook: Path) -> bool:
    """Write the committed, output-free ``.ipynb`` twin of a ``.py`` notebook; True if it changed."""
    import jupytext

    twin = notebook.with_suffix(".ipynb")
    text = jupytext.writes(read_source(notebook), fmt="ipynb")
    if twin.exists() and twin.read_text() == text:
        return False
    twin.write_text(text)
    return True


def execute(chapter: Chapter, params: dict[str, Any], output: Path, key: str = "",
            kernel: str = "python3") -> float:
    """Execute ``chapter`` with ``params`` into ``output`` through papermill; returns seconds.

    On failure nothing is written at ``output`` (the failed notebook goes to
    ``_build/failed/<chapter>.ipynb``) and a :class:`BuildError` names the cell.
    """
    import jupytext
    import nbformat
    import papermill as pm

    nb = read_source(chapter.notebook)
    badge = nbformat.v4.new_markdown_cell(
        f"[Open this chapter in Colab]({colab_link(chapter.notebook)}) · source: "
        f"`{chapter.notebook.relative_to(REPO_ROOT).as_posix()}`",
    )
    badge.metadata["tags"] = ["colab-link"]
    nb.cells.insert(0, badge)
    nb.metadata.setdefault("kernelspec", {"name": kernel, "display_name": "Python 3", "language": "python"})
    nb.metadata["circuits_book"] = {"build_key": key, "chapter": chapter.name, "parameters": params}
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.ipynb"
        result = Path(tmp) / "out.ipynb"
        jupytext.write(nb, source, fmt="ipynb")
        try:
            pm.execute_notebook(
                str(source), str(result), parameters=params, cwd=str(REPO_ROOT), kernel_name=kernel,
                progress_bar=False, log_output=False, request_save_on_cell_execute=False,
            )
        except pm.PapermillExecutionError as err:
            failed = REPO_ROOT / "_build" / "failed" / f"{chapter.name}.ipynb"
            failed.parent.mkdir(parents=True, exist_ok=True)
            if result.exists():
                shutil.copy(result, failed)
            raise BuildError(
                f"Chapter {chapter.name!r} failed in cell {err.exec_count} ({err.ename}: "
                f"{err.evalue.strip()}); the failed notebook is {failed.relative_to(REPO_ROOT)}."
            ) from None
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = output.with_suffix(".ipynb.tmp")
        shutil.copy(result, tmp_out)
        tmp_out.replace(output)
    return time.time() - start


def render_html(book_dir: Optional[Path] = None, out_root: Path = REPO_ROOT, strict: bool = True,
                toc: Optional[Path] = None) -> Path:
    """Render ``book_dir`` with jupyter-book 1.x into ``out_root/_build/html``.

    Chapters not executed yet are left out of the table of contents (with a note).
    """
    book_dir = book_dir or BOOK_DIR
    build_dir = out_root / "_build"
    build_dir.mkdir(parents=True, exist_ok=True)
    toc_source = toc or REPO_ROOT / "_toc.yml"
    toc = yaml.safe_load(toc_source.read_text())
    missing: list[str] = []

    def prune(entries: list[dict]) -> list[dict]:
        kept = []
        for entry in entries:
            if "file" in entry and not any((book_dir / (entry["file"] + ext)).exists()
                                           for ext in (".md", ".ipynb", "")):
                missing.append(entry["file"])
                continue
            for key in ("sections", "chapters", "parts"):
                if key in entry:
                    entry[key] = prune(entry[key])
            if ("chapters" in entry or "sections" in entry) and not (entry.get("chapters") or entry.get("sections") or "file" in entry):
                continue
            kept.append(entry)
        return kept

    for key in ("parts", "chapters"):
        if key in toc:
            toc[key] = prune(toc[key])
    toc_path = toc_source
    if missing:
        print(f"note: not yet executed, left out of the HTML: {', '.join(missing)}")
        toc_path = build_dir / "_toc.partial.yml"
        toc_path.write_text(yaml.safe_dump(toc, sort_keys=False))
    exe = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(book_dir), "--path-output", str(out_root),
           "--config", str(REPO_ROOT / "_config.yml"), "--toc", str(toc_path)]
    if strict:
        cmd += ["-W", "--keep-going"]
    start = time.time()
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    html = build_dir / "html"
    if proc.returncode != 0:
        log = build_dir / "jupyter-book.log"
        log.write_text(proc.stdout + proc.stderr)
        warnings = [line for line in (proc.stdout + proc.stderr).splitlines() if "WARNING" in line or "ERROR" in line]
        raise BuildError(
            f"jupyter-book failed ({len(warnings)} warnings/errors, first: {warnings[0] if warnings else '?'}); "
            f"full log in {log}."
        )
    from shared.plots.widgets import BUNDLE_NAME, bundle_path

    (html / "_static").mkdir(parents=True, exist_ok=True)
    shutil.copy(bundle_path(), html / "_static" / BUNDLE_NAME)
    print(f"HTML rendered in {time.time() - start:.1f} s: {html / 'index.html'}")
    return html


def write_models_page(chapters: dict[str, Chapter]) -> None:
    """Generate ``book/models.md``: each chapter's parameters under both profiles."""
    from shared.zoo.registry import PRETRAINED, local_models

    lines = ["# Models and parameters", "",
             "Generated by `shared/build.py` from `notebooks/chapters.yml`: the parameters each chapter",
             "runs with under profile `local` (the default build, self-trained models) and `paper`",
             "(pretrained models, internet needed). `smoke` is what the test suite runs.", "",
             "| chapter | local | paper | smoke |", "|---|---|---|---|"]
    fmt = lambda d: ", ".join(f"`{k}={v}`" for k, v in d.items()) or "—"  # noqa: E731
    for ch in chapters.values():
        paper = {k: v for k, v in ch.params.get("paper", {}).items()}
        lines.append(f"| {ch.name} | {fmt(ch.params.get('local', {}))} | {fmt(paper)} | {fmt(ch.smoke)} |")
    lines += ["", "## Local models", "", "| name | description |", "|---|---|"]
    lines += [f"| `{name}` | {spec.description} |" for name, spec in sorted(local_models().items())]
    lines += ["", "## Pretrained names", "", "| name | hub id |", "|---|---|"]
    lines += [f"| `{k}` | `{v}` |" for k, v in PRETRAINED.items()]
    text = "\n".join(lines) + "\n"
    page = BOOK_DIR / "models.md"
    if not page.exists() or page.read_text() != text:
        page.write_text(text)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        if "=" not in item:
            raise ParameterError(f"--param expects key=value, got {item!r}.")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.build", description=__doc__.splitlines()[0])
    parser.add_argument("--chapter", action="append", help="build only this chapter (repeatable)")
    parser.add_argument("--profile", default="local", help="parameter profile: local (default) or paper")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="override a notebook parameter (YAML value)")
    parser.add_argument("--force", action="store_true", help="re-execute even if up to date")
    parser.add_argument("--no-html", action="store_true", help="execute notebooks only")
    parser.add_argument("--list", action="store_true", help="list chapters and parameters")
    args = parser.parse_args(argv)
    try:
        if args.profile not in PROFILES:
            raise ParameterError(f"Unknown profile {args.profile!r}; choose one of {', '.join(PROFILES)}.")
        chapters = select(load_registry(), args.chapter)
        overrides = parse_overrides(args.param)
        if args.list:
            for ch in chapters:
                print(f"{ch.name}: {ch.notebook.relative_to(REPO_ROOT)} {ch.parameters(args.profile)}")
            return 0
        plans = []
        for ch in chapters:
            own = {k: v for k, v in overrides.items() if k in declared_parameters(ch.notebook)}
            plans.append((ch, ch.parameters(args.profile, own)))
        unused = [k for k in overrides if not any(k in declared_parameters(ch.notebook) for ch in chapters)]
        if unused:
            raise ParameterError(f"No selected chapter has a parameter {unused[0]!r}.")
        shared = shared_digest()
        total = time.time()
        for i, (ch, params) in enumerate(plans, 1):
            if sync_pair(ch.notebook):
                print(f"synced {ch.notebook.with_suffix('.ipynb').relative_to(REPO_ROOT)}")
            key = build_key(ch, params, shared)
            tag = f"[{i}/{len(plans)}] {ch.name}"
            if not args.force and stored_key(ch.output) == key:
                print(f"{tag}: up to date")
                continue
            print(f"{tag}: executing with {params} ...", flush=True)
            seconds = execute(ch, params, ch.output, key)
            print(f"{tag}: executed in {seconds:.1f} s", flush=True)
        print(f"notebooks done in {time.time() - total:.1f} s")
        if not args.no_html:
            write_models_page(load_registry())
            render_html()
    except BookError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
