"""Runs: one chapter notebook executed several times, each with its own parameters, into its own page.

A chapter of ``notebooks/chapters.yml`` may list ``runs:``, each a named set of parameter overrides
(merged over the profile's parameters, under ``--param``)::

    - name: algorithmic_min
      runs:
        min-1l-attn: {}
        min-2l-mlp: {n_layers: 2, attn_only: false}

A run may add ``paper: {...}``: overrides used only under the ``paper`` profile (for instance the
pretrained counterpart of a local model), merged over its other overrides.

The first run executes into the chapter's page ``book/<chapter>.ipynb``, every other one into
``book/<chapter>--<run>.ipynb`` (figures in ``figures/<chapter>--<run>/``), listed under the chapter
in the table of contents with the run's name as title. Each page has its own build key, so adding a
run executes only that run. The build (not the notebook) puts a small cell at the top of each page
naming the run, the parameters it changes from the main run and links to its sibling pages; it is
rewritten without re-executing anything when the set of pages changes. A run removed from the
registry loses its page on the next build. A chapter without ``runs:`` has one page, as before.

The runs are read here, in the build, rather than in :mod:`shared.chapters.registry`, which every
chapter imports: the chapters' build keys do not depend on this module.
"""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import yaml

from shared.build.layout import Layout
from shared.chapters.registry import ChapterEntry
from shared.errors import ParameterError

RUN_SEP = "--"  # between chapter and run in a page name
PROFILE_KEYS = ("paper",)  # profiles a run may give overrides of their own
RUN_TAG = "run-links"  # the tag of the cell the build writes at the top of a page of a chapter with runs
_RUN_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._]|-(?!-))*")


@dataclass
class Run:
    """One run of a chapter: its ``name`` (empty for a chapter without runs), the parameter
    ``overrides`` it adds, and whether it is the chapter's ``main`` (first) run."""

    chapter: str
    name: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)
    main: bool = True
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # a run's ``paper: {...}`` entry holds overrides for that profile only (e.g. the Pythia
        # counterpart of a suite model); every other entry applies under every profile
        for profile in PROFILE_KEYS:
            if isinstance(self.overrides.get(profile), dict):
                self.profiles[profile] = self.overrides.pop(profile)

    def for_profile(self, profile: str) -> dict[str, Any]:
        """The run's overrides under ``profile``."""
        return {**self.overrides, **self.profiles.get(profile, {})}

    @property
    def page(self) -> str:
        """The page it executes into (``book/<page>.ipynb``): the chapter's, or ``<chapter>--<run>``."""
        return self.chapter if self.main else f"{self.chapter}{RUN_SEP}{self.name}"

    @property
    def label(self) -> str:
        """``'chapter'`` or ``'chapter' (run 'name')``, for messages."""
        return f"{self.chapter!r}" + (f" (run {self.name!r})" if self.name else "")


def registry_runs(registry: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Every chapter's ``runs:`` in ``registry`` (chapter -> run name -> overrides, in order; chapters
    without runs are left out), checked for shape and names."""
    data = (yaml.safe_load(registry.read_text()) or {}) if registry.exists() else {}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for entry in data.get("chapters") or []:
        if "page" in entry:
            continue
        name = entry.get("name", "")
        if RUN_SEP in name:
            raise ParameterError(f"Chapter {name!r} in notebooks/chapters.yml: {RUN_SEP!r} is kept for run pages "
                                 f"(<chapter>{RUN_SEP}<run>), not chapter names.")
        runs = entry.get("runs")
        if runs is None:
            continue
        where = f"The runs of chapter {name!r} in notebooks/chapters.yml"
        if not isinstance(runs, dict) or not runs:
            raise ParameterError(f"{where} must map run names to parameter overrides, got {runs!r}.")
        for run, overrides in runs.items():
            if not isinstance(run, str) or not _RUN_NAME.fullmatch(run):
                raise ParameterError(f"{where} include {run!r}: a run name is letters, digits, '.', '_' and single "
                                     f"'-' ({RUN_SEP!r} separates chapter and run in page names).")
            if not isinstance(overrides or {}, dict):
                raise ParameterError(f"{where}: run {run!r} must map parameter names to values, got {overrides!r}.")
        out[name] = {run: dict(overrides or {}) for run, overrides in runs.items()}
    return out


def chapter_runs(chapter: str, table: dict[str, dict[str, dict[str, Any]]]) -> list[Run]:
    """The runs of ``chapter`` (main first); one unnamed main run for a chapter without runs."""
    runs = table.get(chapter)
    if not runs:
        return [Run(chapter)]
    return [Run(chapter, name, dict(over), i == 0) for i, (name, over) in enumerate(runs.items())]


def select_runs(chapter: str, table: dict[str, dict[str, dict[str, Any]]], names: Optional[list[str]]) -> list[Run]:
    """The runs of ``chapter`` called ``names`` (all when none), or one sentence naming its runs."""
    runs = chapter_runs(chapter, table)
    if not names:
        return runs
    known = {run.name: run for run in runs if run.name}
    missing = [n for n in names if n not in known]
    if missing:
        there = (f"its runs are {', '.join(known)}" if known else
                 "it has no runs (no runs: in notebooks/chapters.yml), only its main page")
        raise ParameterError(f"Chapter {chapter!r} has no run {missing[0]!r}; {there}.")
    return [known[n] for n in dict.fromkeys(names)]


def page_chapter(page: str) -> str:
    """The chapter a page belongs to (``algorithmic_min--min-2l-mlp`` -> ``algorithmic_min``)."""
    return page.split(RUN_SEP, 1)[0]


def orphan_pages(chapters: Iterable[str], layout: Layout) -> list[Path]:
    """Pages ``book/<chapter>--<run>.ipynb`` of registered chapters whose run is no longer registered."""
    table = registry_runs(layout.registry)
    found = []
    for chapter in chapters:
        pages = {run.page for run in chapter_runs(chapter, table)}
        found += [path for path in sorted(layout.book.glob(f"{chapter}{RUN_SEP}*.ipynb")) if path.stem not in pages]
    return found


def remove_orphans(chapters: Iterable[str], layout: Layout) -> list[str]:
    """Remove the pages of runs no longer registered, with their figures and failed notebooks;
    returns the removed page names."""
    removed = []
    for path in orphan_pages(chapters, layout):
        page = path.stem
        path.unlink()
        shutil.rmtree(layout.figures / page, ignore_errors=True)
        for stale in (layout.failed(page), layout.failed(page).with_suffix(".kernel.log")):
            stale.unlink(missing_ok=True)
        removed.append(page)
    return removed


# --------------------------------------------------------------------------------------------
# the cell at the top of each page: which run, what differs, links to the others
# --------------------------------------------------------------------------------------------

def _values(params: dict[str, Any], names: Iterable[str]) -> str:
    return ", ".join(f"`{k} = {params.get(k)!r}`" for k in names)


def _differing(params: dict[str, Any], main: dict[str, Any]) -> list[str]:
    return [k for k in dict.fromkeys([*params, *main]) if params.get(k) != main.get(k)]


def header_text(run: Run, runs: list[Run], ran: dict[str, dict[str, Any]]) -> str:
    """The Markdown of the cell on ``run``'s page: ``ran`` holds the parameters each existing page
    (by page name) ran with; runs without a page are not linked."""
    main = runs[0]
    base = ran.get(main.page)
    lines = []
    if run.main:
        lines.append(f"This page is **{run.name}**, the main run of this chapter.")
    else:
        own = ran.get(run.page, run.overrides)
        changed = _differing(own, base) if base is not None else list(run.overrides)
        if base is not None and changed:
            lines.append(f"This page is the run **{run.name}** of this chapter: it ran with {_values(own, changed)} "
                         f"where the main run, [{main.name}]({main.page}.ipynb), has {_values(base, changed)}.")
        else:
            lines.append(f"This page is the run **{run.name}** of this chapter"
                         + (f", with {_values(own, changed)}." if changed else "."))
    others = []
    linked = not run.main and base is not None and bool(_differing(ran.get(run.page, run.overrides), base))
    for other in runs:
        if other is run or other.page not in ran or (other.main and linked):
            continue
        note = " (main run)" if other.main else ""
        if not other.main and base is not None and _differing(ran[other.page], base):
            note = f" ({_values(ran[other.page], _differing(ran[other.page], base))})"
        others.append(f"[{other.name}]({other.page}.ipynb){note}")
    if others:
        lines.append("This chapter also ran on: " + "; ".join(others) + ".")
    return "*" + " ".join(lines) + "*"


def _set_header(nb: dict[str, Any], text: Optional[str]) -> bool:
    """Put (or, with ``text`` None, remove) the run cell after the Colab badge; True when it changed."""
    cells = nb.get("cells", [])
    at = next((i for i, c in enumerate(cells) if RUN_TAG in c.get("metadata", {}).get("tags", [])), None)
    if text is None:
        if at is None:
            return False
        del cells[at]
        return True
    if at is not None:
        if "".join(cells[at].get("source", "")) == text:
            return False
        cells[at]["source"] = text
        return True
    badge = next((i + 1 for i, c in enumerate(cells) if "colab-link" in c.get("metadata", {}).get("tags", [])), 0)
    cell = {"cell_type": "markdown", "metadata": {"tags": [RUN_TAG]}, "source": text}
    if any("id" in c for c in cells):  # nbformat 4.5 gives every cell an id
        cell["id"] = RUN_TAG
    cells.insert(badge, cell)
    return True


def _read(path: Path, only_with_cell: bool = False) -> Optional[dict[str, Any]]:
    """The notebook at ``path`` (None when missing or unreadable, or, with ``only_with_cell``, when it
    has no run cell: a page of a chapter without runs is parsed only to remove one)."""
    try:
        text = path.read_text()
        return None if only_with_cell and RUN_TAG not in text else json.loads(text)
    except (OSError, json.JSONDecodeError):
        return None


def update_run_links(chapters: Iterable[ChapterEntry], layout: Layout) -> list[str]:
    """Write the run cell of every existing page of ``chapters`` (and remove it from the page of a
    chapter that no longer has runs), without executing anything; returns the pages rewritten. The
    parameters compared are those each page ran with over the notebook's defaults."""
    table = registry_runs(layout.registry)
    written = []
    for entry in chapters:
        runs = chapter_runs(entry.name, table)
        books = {run.page: _read(layout.output(run.page), only_with_cell=not run.name) for run in runs}
        books = {page: nb for page, nb in books.items() if nb is not None}
        defaults = entry.declared if len(books) > 1 else {}
        ran = {page: {**defaults, **(nb.get("metadata", {}).get("circuits_book", {}).get("parameters") or {})}
               for page, nb in books.items()}
        for run in runs:
            nb = books.get(run.page)
            if nb is None:
                continue
            if _set_header(nb, header_text(run, runs, ran) if run.name else None):
                path = layout.output(run.page)
                tmp = path.with_suffix(".ipynb.links.tmp")
                tmp.write_text(json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n")
                tmp.replace(path)
                written.append(run.page)
    return written


__all__ = ["PROFILE_KEYS", "RUN_SEP", "RUN_TAG", "Run", "chapter_runs", "header_text", "orphan_pages", "page_chapter",
           "registry_runs", "remove_orphans", "select_runs", "update_run_links"]
