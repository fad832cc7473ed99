"""Runs (issue 19): one chapter notebook executed once per named set of parameters, each into its own
page listed under the chapter, with its own build key, links to its siblings and a Colab button that
opens the chapter's notebook. The fixture chapter is tiny (no models), so each execution takes seconds."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from shared.build import cli, layout as places, runs as run_pages
from shared.build.runs import RUN_TAG, chapter_runs, header_text, registry_runs
from shared.build.sphinx_assets import launch_chapter_notebook
from shared.chapters.registry import PROFILES, load_registry
from shared.errors import ParameterError

from fixtures.book import fixture_layout  # noqa: E402 (tests/ is on sys.path)

ROOT = Path(__file__).resolve().parent.parent


def set_runs(layout, runs) -> None:
    """Give the fixture chapter ``runs`` (None: none) in its registry."""
    data = yaml.safe_load(layout.registry.read_text())
    entry = next(e for e in data["chapters"] if e.get("name") == "tiny_chapter")
    entry.pop("runs", None)
    if runs is not None:
        entry["runs"] = runs
    layout.registry.write_text(yaml.safe_dump(data, sort_keys=False))


def header(page: Path) -> str:
    cells = json.loads(page.read_text())["cells"]
    found = [c for c in cells if RUN_TAG in c["metadata"].get("tags", [])]
    assert len(found) == 1 and cells[1] is found[0], "one run cell, right after the Colab badge"
    return "".join(found[0]["source"])


def toc_sections(layout) -> list:
    chapters = yaml.safe_load(layout.toc.read_text())["parts"][0]["chapters"]
    return next(c for c in chapters if c["file"] == "tiny_chapter").get("sections", [])


@pytest.fixture
def book(tmp_path, monkeypatch):
    layout = fixture_layout(tmp_path, cell_timeout=300)  # generous: the tests may share a loaded machine
    monkeypatch.setattr(places, "LAYOUT", layout)
    set_runs(layout, {"small": {}, "big": {"n": 6}})
    return layout


def test_runs_build_pages_links_and_toc_add_one_remove_one(book, capfd):
    layout = book
    main, big = layout.output("tiny_chapter"), layout.book / "tiny_chapter--big.ipynb"
    assert cli.main(["--no-html"]) == 0
    out, err = capfd.readouterr()
    assert err == "" and "[1/2] tiny_chapter: executing (not executed yet)" in out
    assert "[2/2] tiny_chapter--big: executing (not executed yet)" in out
    assert "We drew **4** points." in main.read_text() and "We drew **6** points." in big.read_text()
    assert "We drew **6**" not in main.read_text()
    meta_main, meta_big = (json.loads(p.read_text())["metadata"]["circuits_book"] for p in (main, big))
    assert (meta_main["run"], meta_main["parameters"]["n"]) == ("small", 4)
    assert (meta_big["run"], meta_big["parameters"]["n"]) == ("big", 6)
    assert meta_main["build_key"] != meta_big["build_key"]
    assert (layout.figures / "tiny_chapter" / "points.png").exists()
    assert (layout.figures / "tiny_chapter--big" / "points.png").exists(), "each run keeps its own figures"
    assert not (layout.build_dir / "run-figures" / "tiny_chapter--big").exists()
    assert toc_sections(layout) == [{"file": "tiny_chapter--big", "title": "big"}]
    assert "[big](tiny_chapter--big.ipynb) (`n = 6`)" in header(main)
    text = header(big)
    assert "run **big**" in text and "ran with `n = 6` where the main run, [small](tiny_chapter.ipynb), has `n = 4`" \
        in text
    assert "(main run)" not in text, "the main run is linked once"
    # a page that ran with other parameters also says so after its parameters cell (the Colab badge too)
    assert "Open this chapter in Colab" in big.read_text() and "notebooks/tiny_chapter.ipynb" in big.read_text()
    assert "*This page was built with `n = 6` in place of the default above.*" in big.read_text()

    set_runs(layout, {"small": {}, "big": {"n": 6}, "tiny": {"n": 2}})  # a third run: only it executes
    assert cli.main(["--no-html"]) == 0
    out = capfd.readouterr().out
    assert "[1/3] tiny_chapter: up to date" in out and "[2/3] tiny_chapter--big: up to date" in out
    assert "[3/3] tiny_chapter--tiny: executing (not executed yet)" in out and out.count("executing") == 1
    assert "We drew **2** points." in (layout.book / "tiny_chapter--tiny.ipynb").read_text()
    assert "[tiny](tiny_chapter--tiny.ipynb)" in header(main) and "[tiny](tiny_chapter--tiny.ipynb)" in header(big)
    assert [s["file"] for s in toc_sections(layout)] == ["tiny_chapter--big", "tiny_chapter--tiny"]

    assert cli.main(["--no-html", "--chapter", "tiny_chapter", "--run", "big", "--force"]) == 0
    out = capfd.readouterr().out
    assert "[1/1] tiny_chapter--big: executing (forced)" in out and out.count("executing") == 1

    set_runs(layout, {"small": {}, "tiny": {"n": 2}})  # a run removed: its page goes on the next build
    assert cli.main(["--no-html"]) == 0
    out = capfd.readouterr().out
    assert "book/tiny_chapter--big.ipynb: its run is no longer in" in out and "executing" not in out
    assert not big.exists() and not (layout.figures / "tiny_chapter--big").exists()
    assert "big" not in header(main) and [s["file"] for s in toc_sections(layout)] == ["tiny_chapter--tiny"]

    set_runs(layout, None)  # no runs at all: one page, as before, without a run cell
    assert cli.main(["--no-html"]) == 0
    assert "tiny_chapter: up to date" in capfd.readouterr().out
    assert not list(layout.book.glob("tiny_chapter--*")) and toc_sections(layout) == []
    assert not any(RUN_TAG in c["metadata"].get("tags", []) for c in json.loads(main.read_text())["cells"])


def test_unknown_run_is_one_sentence_naming_the_runs(book, capfd):
    assert cli.main(["--no-html", "--chapter", "tiny_chapter", "--run", "huge"]) == 2
    out, err = capfd.readouterr()
    assert err == "error: Chapter 'tiny_chapter' has no run 'huge'; its runs are small, big.\n"
    assert "executing" not in out and not list(book.book.glob("*.ipynb"))
    assert cli.main(["--no-html", "--run", "big"]) == 2
    assert "--run needs the --chapter whose run it is" in capfd.readouterr().err
    set_runs(book, None)
    assert cli.main(["--no-html", "--chapter", "tiny_chapter", "--run", "big"]) == 2
    assert "Chapter 'tiny_chapter' has no run 'big'; it has no runs" in capfd.readouterr().err


def test_list_shows_runs(book, capfd):
    assert cli.main(["--list"]) == 0
    out = capfd.readouterr().out
    assert re.search(r"\n  run small \(\S*book/tiny_chapter.ipynb, the main page\): \{'n': 4\}\n", out), out
    assert re.search(r"\n  run big \(\S*book/tiny_chapter--big.ipynb\): \{'n': 6\}\n", out), out


def test_unknown_run_of_a_real_chapter_from_the_command_line():
    proc = subprocess.run([sys.executable, "-m", "shared.build", "--chapter", "algorithmic_min", "--run", "nope",
                           "--no-html"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "executing" not in proc.stdout
    assert proc.stderr == "error: Chapter 'algorithmic_min' has no run 'nope'; its runs are min-1l-attn, min-2l-mlp.\n"


@pytest.mark.parametrize("runs, message", [
    ({"a--b": {}}, "include 'a--b': a run name is letters"),
    ({"-a": {}}, "include '-a'"),
    ({"a": [1]}, "run 'a' must map parameter names to values"),
    ([], "must map run names to parameter overrides"),
])
def test_bad_runs_are_refused(book, runs, message):
    set_runs(book, runs)
    with pytest.raises(ParameterError, match=re.escape(message)):
        registry_runs(book.registry)


def test_run_overrides_are_checked_before_anything_runs(book, capfd):
    set_runs(book, {"small": {}, "bad": {"n": 1000}})
    assert cli.main(["--no-html"]) == 2
    out, err = capfd.readouterr()
    assert "n must be an integer from 1 to 100, got 1000." in err and "executing" not in out


def test_registered_runs_have_valid_parameters_and_pages():
    """Every run in notebooks/chapters.yml checks under each profile; a suite run maps to its Pythia
    counterpart under the paper profile only."""
    table = registry_runs(ROOT / "notebooks" / "chapters.yml")
    chapters = load_registry()
    assert set(table) >= {"algorithmic_min", "algorithmic_median", "sequence_data", "seq_findings"}
    for name in table:
        runs = chapter_runs(name, table)
        assert runs[0].page == name and all(r.page == f"{name}--{r.name}" for r in runs[1:])
        for run in runs:
            for profile in PROFILES:
                chapters[name].parameters(profile, run.for_profile(profile))
    medium = {r.name: r for r in chapter_runs("sequence_data", table)}["suite-m"]
    assert chapters["sequence_data"].parameters("local", medium.for_profile("local"))["model_name"] == "suite-m-s0"
    assert chapters["sequence_data"].parameters("paper", medium.for_profile("paper"))["model_name"] == "pythia-160m"
    assert "paper" not in medium.overrides


def test_header_names_differences_and_only_existing_siblings():
    runs = chapter_runs("ch", {"ch": {"a": {}, "b": {"n": 2}, "c": {"n": 3}}})
    ran = {"ch": {"n": 1, "seed": 0}, "ch--b": {"n": 2, "seed": 0}}
    assert header_text(runs[0], runs, ran) == ("*This page is **a**, the main run of this chapter. "
                                               "This chapter also ran on: [b](ch--b.ipynb) (`n = 2`).*")
    assert header_text(runs[1], runs, ran) == (
        "*This page is the run **b** of this chapter: it ran with `n = 2` where the main run, [a](ch.ipynb), "
        "has `n = 1`.*")
    ran["ch--c"] = {"n": 3, "seed": 0}
    assert header_text(runs[2], runs, ran).endswith(
        "has `n = 1`. This chapter also ran on: [b](ch--b.ipynb) (`n = 2`).*")
    assert header_text(runs[1], runs, {"ch--b": {"n": 2}}) == \
        "*This page is the run **b** of this chapter, with `n = 2`.*"


def test_colab_button_of_a_run_page_opens_the_chapter_notebook():
    base = "https://colab.research.google.com/github/org/repo/blob/main/notebooks"

    def context(page: str) -> dict:
        return {"header_buttons": [
            {"type": "group", "label": "download-buttons", "buttons": [{"url": f"../_sources/{page}.ipynb"}]},
            {"type": "group", "label": "launch-buttons", "buttons": [{"text": "Colab", "url": f"{base}/{page}.ipynb"}]},
        ]}

    ctx = context("algorithmic_min--min-2l-mlp")
    launch_chapter_notebook(None, "algorithmic_min--min-2l-mlp", "page.html", ctx, None)
    assert ctx["header_buttons"][1]["buttons"][0]["url"] == f"{base}/algorithmic_min.ipynb"
    assert ctx["header_buttons"][0]["buttons"][0]["url"] == "../_sources/algorithmic_min--min-2l-mlp.ipynb"
    ctx = context("algorithmic_min")
    launch_chapter_notebook(None, "algorithmic_min", "page.html", ctx, None)
    assert ctx == context("algorithmic_min")


def test_the_rendered_run_page_links_its_siblings_and_opens_the_chapter_in_colab(book, capfd):
    """The whole build with HTML: both pages in the navigation, sibling links that resolve, and the
    run page's launch button on the chapter's committed notebook."""
    assert cli.main([]) == 0
    html = book.html
    page = (html / "tiny_chapter--big.html").read_text()
    main = (html / "tiny_chapter.html").read_text()
    assert 'href="tiny_chapter--big.html"' in main and 'href="tiny_chapter.html"' in page
    assert "blob/main/notebooks/tiny_chapter.ipynb" in page
    assert "notebooks/tiny_chapter--big.ipynb" not in page
    assert "_sources/tiny_chapter--big.ipynb" in page, "the download button still gives the executed run"
    assert run_pages.orphan_pages(["tiny_chapter"], book) == []
