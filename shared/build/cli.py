"""Build the book: execute each chapter notebook with papermill, then render HTML with jupyter-book.

    python -m shared.build                      # every chapter, profile "local", then HTML
    python -m shared.build --chapter NAME       # one chapter (repeatable), all its runs
    python -m shared.build --chapter NAME --run RUN  # one run of a chapter (repeatable)
    python -m shared.build --profile paper      # pretrained models (needs the internet)
    python -m shared.build --param seed=1       # override a notebook parameter
    python -m shared.build --list               # chapters, their runs and parameters
    python -m shared.build --sync               # only sync the .ipynb twins with their .py sources
    python -m shared.build --check              # open the built book in headless Chromium, list problems

Chapters, their parameters per profile and the table of contents live in ``notebooks/chapters.yml``
(read by :mod:`shared.chapters.registry`; the build writes ``_toc.yml`` from it). Every parameter is
checked against its declared type before anything executes. A chapter is re-executed only when its
build key changes (:mod:`shared.build.keys`: its notebook, parameters, the ``shared`` code it
imports, its models' checkpoints, ``_config.yml``, torch / transformer-lens versions) or a figure it
exported is missing; executed notebooks go to ``book/<chapter>.ipynb``, figures to
``figures/<chapter>/`` and the HTML to ``_build/html``. A chapter with ``runs:`` executes once per run,
each run into its own page with its own key (:mod:`shared.build.runs`: ``book/<chapter>--<run>.ipynb``
for every run but the first); the page of a run removed from the registry is removed. The HTML is
rendered only when every executed page in ``book/`` still matches its sources
(:func:`shared.build.keys.stale_pages`), so a page is never published from an older version of its
notebook or code.

Progress goes to stdout; stderr carries only the one-sentence error of a failed build (exit code 2;
``--check`` exits 1 when it finds problems).
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Optional

import yaml

from shared.build import layout as places
from shared.build.browser import check_pages
from shared.build.execute import cell_timeout, execute, figures_intact
from shared.build.html import render_html
from shared.build.keys import build_key, changed_parts, key_parts, stale_pages, stored_metadata
from shared.build.runs import Run, page_chapter, registry_runs, remove_orphans, select_runs, update_run_links
from shared.build.twins import sync_pair
from shared.build.layout import BuildError
from shared.build.toc import write_models_page, write_toc
from shared.chapters.registry import PROFILES, ChapterEntry, load_registry
from shared.errors import BookError, ParameterError


def registry() -> dict[str, ChapterEntry]:
    """The chapters of the current layout's registry, in book order."""
    return load_registry(places.LAYOUT.registry, places.LAYOUT.root)


def select(chapters: dict[str, ChapterEntry], names: Optional[list[str]]) -> list[ChapterEntry]:
    """The chapters called ``names`` (all when none), or one sentence naming an unknown one."""
    if not names:
        return list(chapters.values())
    missing = [n for n in names if n not in chapters]
    if missing:
        raise BuildError(f"Unknown chapter {missing[0]!r}; chapters are {', '.join(chapters)}.")
    return [chapters[n] for n in names]


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``--param key=value`` items as a mapping (values read as YAML: ``3``, ``true``, ``[a, b]``)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ParameterError(f"--param expects key=value, got {item!r}.")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ParameterError(f"--param {key.strip()} has a value that is not valid YAML: {value!r}.") from None
    return out


Plan = tuple[ChapterEntry, Run, dict]


def plan(chapters: list[ChapterEntry], profile: str, overrides: dict[str, Any],
         runs: Optional[list[str]] = None) -> list[Plan]:
    """Each run of each chapter (only the runs called ``runs`` when given) with its checked
    parameters: the profile's, the run's overrides over them, then ``overrides``, each of which goes
    to the chapters that declare it (one no selected chapter declares is refused). Raises before
    anything executes."""
    if profile not in PROFILES:
        raise ParameterError(f"Unknown profile {profile!r}; choose one of {', '.join(PROFILES)}.")
    declared = {ch.name: ch.declared for ch in chapters}
    unused = [k for k in overrides if not any(k in declared[ch.name] for ch in chapters)]
    if unused:
        raise ParameterError(f"No selected chapter has a parameter {unused[0]!r}.")
    table = registry_runs(places.LAYOUT.registry)
    selected = [(ch, r) for ch in chapters for r in select_runs(ch.name, table, runs)]  # unknown runs first
    return [(ch, r, ch.parameters(profile, {**r.for_profile(profile),
                                            **{k: v for k, v in overrides.items() if k in declared[ch.name]}}))
            for ch, r in selected]


def run(plans: list[Plan], force: bool = False) -> None:
    """Execute the runs whose build key changed (all with ``force``), printing why and how long."""
    layout = places.LAYOUT
    total = time.time()
    timeouts = {ch.name: cell_timeout(ch) for ch, _, _ in plans}  # a bad setting stops the build before it runs
    for ch in {ch.name: ch for ch, _, _ in plans}.values():  # every twin first: an edit that cannot be synced
        synced = sync_pair(ch.notebook)  # stops the build before it runs
        if synced:
            print(synced)
    for i, (ch, r, params) in enumerate(plans, 1):
        parts = key_parts(ch, params, layout)
        key = build_key(parts)
        output = layout.output(r.page)
        old = stored_metadata(output)
        figures = layout.figures / r.page
        tag = f"[{i}/{len(plans)}] {r.page}"
        if not force and old.get("build_key") == key and figures_intact(figures, old.get("figures")):
            print(f"{tag}: up to date")
            continue
        if force:
            reason = "forced"
        elif not old:
            reason = "not executed yet"
        elif old.get("build_key") == key:
            reason = "an exported figure is missing or changed"
        elif not old.get("key_parts"):
            reason = "stored by an older build"
        else:
            reason = "changed: " + (", ".join(changed_parts(old, parts)) or "build key")
        print(f"{tag}: executing ({reason}) with {params} ...", flush=True)
        seconds = execute(ch, params, output, key, parts=parts, figures=figures, timeout=timeouts[ch.name], run=r)
        print(f"{tag}: executed in {seconds:.1f} s", flush=True)
    print(f"notebooks done in {time.time() - total:.1f} s")


def refuse_stale() -> None:
    """Raise when an executed page in ``book/`` no longer matches its sources (or just failed)."""
    stale = stale_pages(registry().values(), places.LAYOUT)
    if stale:
        names = ", ".join(f"{name} ({why})" for name, why in stale.items())
        chapters = list(dict.fromkeys(page_chapter(page) for page in stale))
        rebuild = " ".join(f"--chapter {name}" for name in chapters) if len(chapters) <= 3 else "(the whole book)"
        raise BuildError(f"Not rendering the HTML: {len(stale)} executed chapter(s) no longer match their sources, "
                         f"{names}; run python -m shared.build {rebuild}.")


def check(names: Optional[list[str]]) -> int:
    """Open the built pages (all, or those of ``names``) in headless Chromium; print one line per problem."""
    html = places.LAYOUT.html
    table = registry_runs(places.LAYOUT.registry)
    pages = [f"{r.page}.html" for name in names for r in select_runs(name, table, None)] if names else None
    problems = check_pages(html, pages)
    for problem in problems:
        print(problem)
    checked = len(pages) if pages else len(list(html.glob("*.html")))
    print(f"browser check: {len(problems)} problem(s) in {checked} page(s) of {places.LAYOUT.relative(html)}")
    return 1 if problems else 0


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.build", description=__doc__.splitlines()[0])
    parser.add_argument("--chapter", action="append", help="build only this chapter (repeatable)")
    parser.add_argument("--run", action="append", metavar="RUN",
                        help="build only this run of the --chapter (repeatable; see --list)")
    parser.add_argument("--profile", default="local", help="parameter profile: local (default) or paper")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="override a notebook parameter (YAML value)")
    parser.add_argument("--force", action="store_true", help="re-execute even if up to date")
    parser.add_argument("--no-html", action="store_true", help="execute notebooks only")
    parser.add_argument("--list", action="store_true", help="list chapters, their runs and parameters")
    parser.add_argument("--sync", action="store_true", help="only sync the .ipynb twins and _toc.yml")
    parser.add_argument("--check", action="store_true",
                        help="open the built HTML (all pages, or those of --chapter) in headless Chromium")
    args = parser.parse_args(argv)
    layout = places.LAYOUT
    try:
        if args.profile not in PROFILES:
            raise ParameterError(f"Unknown profile {args.profile!r}; choose one of {', '.join(PROFILES)}.")
        chapters = select(registry(), args.chapter)
        if args.run and not args.chapter:
            raise ParameterError("--run needs the --chapter whose run it is (python -m shared.build --list shows "
                                 "the runs).")
        if args.check:
            return check(args.chapter)
        overrides = parse_overrides(args.param)
        if args.list:
            table = registry_runs(layout.registry)
            for ch in chapters:
                print(f"{ch.name}: {layout.relative(ch.notebook)} {ch.parameters(args.profile)}")
                for r in select_runs(ch.name, table, None):
                    if r.name:
                        where = layout.relative(layout.output(r.page)) + (", the main page" if r.main else "")
                        print(f"  run {r.name} ({where}): {ch.parameters(args.profile, r.for_profile(args.profile))}")
            return 0
        if args.sync:
            for ch in chapters:
                print(sync_pair(ch.notebook) or f"{layout.relative(ch.notebook)}: in sync")
            write_toc(layout)
            return 0
        plans = plan(chapters, args.profile, overrides, args.run)
        if write_toc(layout):
            print(f"wrote {layout.relative(layout.toc)} from {layout.relative(layout.registry)}")
        everything = registry()
        for page in remove_orphans(everything, layout):
            print(f"removed {layout.relative(layout.output(page))}: its run is no longer in "
                  f"{layout.relative(layout.registry)}")
        run(plans, args.force)
        update_run_links(everything.values(), layout)
        if not args.no_html:
            write_models_page(registry(), layout)
            refuse_stale()
            render_html()
    except BookError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


__all__ = ["BuildError", "Plan", "check", "execute", "load_registry", "main", "parse_overrides", "plan",
           "refuse_stale", "registry", "render_html", "run", "select"]

if __name__ == "__main__":
    sys.exit(main())
