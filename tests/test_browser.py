"""The built book as a reader meets it: the fixture chapter and the intro are built once (execution and
jupyter-book, into a temporary folder), their HTML and downloadable notebook are read, and both pages
are opened in headless Chromium (Debian's ``chromium`` driven by ``playwright``) with the browser
check of ``python -m shared.build --check``. The check itself is tested on small hand-written pages.

Without Chromium or playwright the browser tests are skipped, except in CI (``CI=true``), where they
fail with a sentence saying what to install.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from shared.build import browser, cli, layout as places

from fixtures.book import ROOT, fixture_layout  # noqa: E402 (tests/ is on sys.path)


def need_browser() -> None:
    missing = browser.missing_browser()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI runs the browser check, but: {missing}")
        pytest.skip(missing)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The fixture chapter (run with n=4) and the intro, executed and rendered; returns the layout."""
    layout = fixture_layout(tmp_path_factory.mktemp("book"))
    saved, places.LAYOUT = places.LAYOUT, layout
    try:
        assert cli.main([]) == 0
    finally:
        places.LAYOUT = saved
    return layout


def article(layout) -> str:
    page = (layout.html / "tiny_chapter.html").read_text()
    return page[page.index("<article"):page.index("</article>")]


# --------------------------------------------------------------------------------------------
# the rendered page and the notebook a reader downloads
# --------------------------------------------------------------------------------------------

def test_each_output_stands_next_to_its_label(built):
    """A label printed before each table or view of a loop stays next to it (streams are not merged
    across other outputs)."""
    html = article(built)

    def order(*needles: str) -> list[int]:
        found, at = [], 0
        for needle in needles:
            at = html.index(needle, at)
            found.append(at)
        return found

    order("label of alpha", "<table", "label of beta", "<table")
    order("prompt of gamma", 'id="cv-', "prompt of delta", 'id="cv-')
    assert html.index("label of beta") > html.index("<table"), "both labels printed above both tables"


def test_injected_parameters_cell_is_hidden_and_the_values_are_named(built):
    html = article(built)
    assert "# Parameters" not in html, "papermill's injected cell reads as a duplicate of the parameters cell"
    assert html.count("fail</span> <span class=\"o\">=</span>") == 1, "one parameters cell is shown"
    text = re.sub(r"<[^>]+>", "", html)
    assert "This page was built with n = 4 in place of the default above." in text


def test_downloadable_notebook_is_clean(built):
    """_sources/<chapter>.ipynb: no stderr (tqdm warnings and bars), no carriage-return fragments,
    no path of this machine; adjacent prints are one output."""
    text = (built.html / "_sources" / "tiny_chapter.ipynb").read_text()
    for unwanted in ("TqdmWarning", "IProgress", ".venv", str(ROOT), "input_path", "\\r", "counting:"):
        assert unwanted not in text, unwanted
    nb = json.loads(text)
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert not [o for o in outputs if o.get("name") == "stderr"]
    for cell in nb["cells"]:
        kinds = [o["output_type"] for o in cell.get("outputs", [])]
        assert all(not (a == b == "stream") for a, b in zip(kinds, kinds[1:])), kinds


def test_scripts_and_maths_are_local_and_each_script_appears_once(built):
    for name in ("intro.html", "tiny_chapter.html"):
        page = (built.html / name).read_text()
        head = page[:page.index("</head>")]
        assert head.count("const THEBE_JS_URL") <= 1, f"{name}: an inline script is repeated"
        assert not re.findall(r'<script[^>]+src="(?:https?:)?//', page), f"{name} loads a script from the network"
    assert 'src="_static/mathjax/tex-chtml.js"' in (built.html / "tiny_chapter.html").read_text()
    assert (built.html / "_static" / "mathjax" / "tex-chtml.js").exists()
    assert (built.html / "_static" / "circuitsvis.js").exists()


def test_colab_link_figure_and_view_are_in_the_page(built):
    page = (built.html / "tiny_chapter.html").read_text()
    assert "colab.research.google.com/github/circuits-book/circuits-book/blob/main/" in page
    assert "CircuitsVis.render" in page and "<img" in article(built), "the matplotlib figure must be inline"


# --------------------------------------------------------------------------------------------
# in the browser
# --------------------------------------------------------------------------------------------

def test_fixture_chapter_and_intro_pass_the_browser_check(built):
    """No console error, no request off the machine, formulas typeset by the local MathJax, the
    circuitsvis views drawn, the figure loaded, wide tables in a scroll container."""
    need_browser()
    assert browser.check_pages(built.html, ["intro.html", "tiny_chapter.html"]) == []


PAGE = ('<!doctype html><html><head><meta charset="utf-8"><title>t</title></head><body style="margin:0">'
        '<main><article class="bd-article" style="width: 600px; margin-left: 100px">{}</article></main></body></html>')
PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGA"
       "hKmMIQAAAABJRU5ErkJggg==")
WIDE = "<table><tr>" + "".join(f"<td>column_number_{i}</td>" for i in range(40)) + "</tr></table>"


def write_site(html: Path) -> None:
    """Hand-written pages, each with known problems (or none)."""
    pages = {
        "index.html": '<meta http-equiv="Refresh" content="0; url=good.html" />',
        "console.html": PAGE.format('<p>text</p><script>console.error("boom")</script>'),
        "remote.html": PAGE.format('<p>text</p><script src="https://cdn.example.org/lib.js"></script>'),
        "chapter.html": PAGE.format('<p>no figure</p><div id="cv-empty"></div>'
                                    '<span class="math notranslate nohighlight">\\(A = W_V W_O\\)</span>'
                                    + WIDE + "<pre>" + "x" * 300 + "</pre>"),
        "good.html": PAGE.format(f'<img src="{PNG}" width="50" height="50"><div id="cv-full">'
                                 '<div style="height: 40px">drawn</div></div>'
                                 f'<div style="overflow-x: auto">{WIDE}</div>'
                                 '<pre style="overflow-x: auto">' + "y" * 300 + "</pre>"),
    }
    (html / "_sources").mkdir(parents=True)
    for name, text in pages.items():
        (html / name).write_text(text)
    for chapter in ("chapter", "good"):
        (html / "_sources" / f"{chapter}.ipynb").write_text("{}")


def test_browser_check_reports_each_kind_of_problem_one_line_each(tmp_path, monkeypatch, capsys):
    need_browser()
    layout = fixture_layout(tmp_path)
    monkeypatch.setattr(places, "LAYOUT", layout)
    write_site(layout.html)
    monkeypatch.setattr(browser, "WIDGET_WAIT_S", 1)
    assert cli.main(["--check"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"browser check: {len(lines) - 1} problem(s) in 5 page(s) of {layout.relative(layout.html)}"
    problems = lines[:-1]
    expected = [
        "chapter.html: chapter page without a figure",
        "chapter.html: circuitsvis view cv-empty still empty after 1 s",
        "chapter.html: formula not typeset (raw TeX): \\(A = W_V W_O\\)",
        "chapter.html: table wider than the content column (",
        "chapter.html: pre wider than the content column (",
        "console.html: console error: boom",
        "remote.html: request to a non-local address: https://cdn.example.org/lib.js",
    ]
    assert len(problems) == len(expected), "\n".join(problems)
    for line, start in zip(problems, expected):
        assert line.startswith(start), (line, start)
    assert "column 600 px) without a scroll container" in problems[3]
    assert not [p for p in problems if p.startswith("good.html")]


def test_missing_browser_is_one_sentence(monkeypatch, tmp_path):
    monkeypatch.setenv("CHROMIUM_PATH", str(tmp_path / "no-chromium"))
    assert "apt-get install -y chromium" in browser.missing_browser()
    (tmp_path / "index.html").write_text("<p>x</p>")
    with pytest.raises(places.BuildError, match="^The browser check needs Chromium"):
        browser.check_pages(tmp_path)
