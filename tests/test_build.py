"""The book build: registry, parameters, incremental execution, errors, HTML."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from shared.build import cli as build
from shared.errors import ParameterError

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shared.build", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.fixture
def fixture_book(tmp_path, monkeypatch):
    """A registry with the tiny fixture chapter, executing into a temporary book folder."""
    registry = tmp_path / "chapters.yml"
    registry.write_text(yaml.safe_dump({"chapters": [
        {"name": "tiny_chapter", "notebook": "tests/fixtures/tiny_chapter.py",
         "params": {"local": {"n": 4}}, "smoke": {"n": 2}}]}))
    book_dir = tmp_path / "book"
    book_dir.mkdir()
    monkeypatch.setattr(build, "REGISTRY", registry)
    monkeypatch.setattr(build, "BOOK_DIR", book_dir)
    monkeypatch.setattr(build, "sync_pair", lambda notebook: False)  # fixtures have no committed twin
    return book_dir


def test_registry_is_consistent():
    chapters = build.load_registry()
    toc_files = {e["file"] for part in yaml.safe_load((ROOT / "_toc.yml").read_text())["parts"]
                 for e in part["chapters"]}
    for chapter in chapters.values():
        assert chapter.notebook.exists(), chapter.notebook
        assert chapter.name in toc_files, f"{chapter.name} is not in _toc.yml"
        for profile in build.PROFILES:
            chapter.parameters(profile)  # raises on unknown parameters or model names
        chapter.parameters("local", chapter.smoke)


def test_committed_notebook_twins_match_sources():
    import jupytext

    for chapter in build.load_registry().values():
        twin = chapter.notebook.with_suffix(".ipynb")
        assert twin.exists(), f"{twin} is missing: run python -m shared.build"
        expected = jupytext.writes(build.read_source(chapter.notebook), fmt="ipynb")
        assert twin.read_text() == expected, f"{twin} is out of date: run python -m shared.build"
        assert all(not c.get("outputs") for c in json.loads(twin.read_text())["cells"])


def test_incremental_build_and_overrides(fixture_book, capsys):
    assert build.main(["--no-html"]) == 0
    out = capsys.readouterr().out
    assert "executed in" in out
    executed = json.loads((fixture_book / "tiny_chapter.ipynb").read_text())
    text = json.dumps(executed)
    assert "We drew **4** points." in text and "Open this chapter in Colab" in text
    assert build.main(["--no-html"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert build.main(["--no-html", "--param", "n=5"]) == 0
    assert "executed in" in capsys.readouterr().out
    assert "We drew **5** points." in (fixture_book / "tiny_chapter.ipynb").read_text()


def test_failing_notebook_names_the_cell(fixture_book, capsys):
    assert build.main(["--no-html", "--param", "fail=true"]) == 2
    err = capsys.readouterr().err
    assert "failed in cell" in err and "ValueError: asked to fail" in err
    assert not (fixture_book / "tiny_chapter.ipynb").exists(), "a failed run must not replace the output"


def test_bad_parameters_raise_one_sentence(fixture_book):
    chapter = build.load_registry()["tiny_chapter"]
    with pytest.raises(ParameterError, match="has no parameter 'size'; its parameters are n, fail, seed"):
        chapter.parameters("local", {"size": 3})
    with pytest.raises(ParameterError, match="Unknown profile 'papr'"):
        chapter.parameters("papr")


@pytest.mark.parametrize("args, message", [
    (["--chapter", "no_such_chapter"], "Unknown chapter 'no_such_chapter'"),
    (["--profile", "nonsense"], "Unknown profile 'nonsense'"),
    (["--param", "no_such_param=1"], "No selected chapter has a parameter 'no_such_param'"),
    (["--param", "model_name=gpt7"], "Unknown model 'gpt7'"),
])
def test_cli_errors_are_one_line(args, message):
    if args[:2] == ["--param", "model_name=gpt7"] and not build.load_registry():
        pytest.skip("no chapter registered yet")
    proc = run_cli(*args, "--no-html")
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_html_render_of_a_small_book(fixture_book, tmp_path):
    build.main(["--no-html"])
    (fixture_book / "intro.md").write_text((ROOT / "book" / "intro.md").read_text())
    (fixture_book / "models.md").write_text("# Models\n")
    toc = tmp_path / "toc.yml"
    toc.write_text(yaml.safe_dump({"format": "jb-book", "root": "intro",
                                   "chapters": [{"file": "models"}, {"file": "tiny_chapter"}]}))
    html = build.render_html(fixture_book, tmp_path / "out", toc=toc)
    page = (html / "tiny_chapter.html").read_text()
    assert "colab.research.google.com/github/circuits-book/circuits-book/blob/main/notebooks/tiny_chapter.ipynb" in page
    assert "CircuitsVis.render" in page and (html / "_static" / "circuitsvis.js").exists()
    assert "<img" in page, "the matplotlib figure must be inline"


def test_every_chapter_opens_with_the_colab_install_cell():
    """The first code cell of each chapter is the hidden Colab cell, installing this repository."""
    import jupytext

    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    for path in sorted((ROOT / "notebooks").glob("*.py")):
        first = next(c for c in jupytext.read(path).cells if c.cell_type == "code")
        assert first.metadata.get("tags") == ["remove-cell"], path.name
        assert f"pip\", \"install -q git+{url}\"" in first.source, path.name


def test_package_for_colab_carries_checkpoints_and_dependencies(tmp_path):
    """`pip install git+<repo>` (the Colab cell) gets the shared package, the shipped checkpoints and
    the requirements: checked on a wheel built from this checkout."""
    import subprocess
    import sys
    import zipfile

    import shutil

    src = tmp_path / "src"  # a copy, so the build leaves nothing in the checkout
    shutil.copytree(ROOT / "shared", src / "shared", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "requirements.txt", "README.md"):
        shutil.copy(ROOT / name, src / name)
    stray = src / "shared" / "checkpoints" / "results" / "x" / "result.json"  # a local result cache entry
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_text("{}")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(src)], check=True, capture_output=True)
    wheel = zipfile.ZipFile(next(tmp_path.glob("circuits_book-*.whl")))
    names = wheel.namelist()
    assert "shared/__init__.py" in names and "shared/engine/graph.py" in names and "shared/zoo/text/bpe.py" in names
    assert any(n.startswith("shared/checkpoints/models/seq-lm-") and n.endswith("model.safetensors") for n in names)
    assert not any("/results/" in n for n in names), "the result cache must not be packaged"
    meta = wheel.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "Requires-Dist: transformer-lens" in meta and "Requires-Dist: circuitsvis" in meta
