"""The book build: registry and table of contents, parameter checks, build keys, incremental execution,
exported figures, twins synced in the edited direction, failures (exceptions, timeouts, dead kernels)
in one sentence, progress, stale pages kept out of the HTML, packaging. The rendered fixture book
itself is checked in tests/test_browser.py."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from shared import sources
from shared.build import cli, keys, layout as places, toc
from shared.build.execute import DEFAULT_CELL_TIMEOUT
from shared.build.layout import BuildError, Layout
from shared.build.twins import source_from_twin, sync_pair, twin_text
from shared.chapters import results
from shared.chapters.registry import PROFILES, check_value, load_contents, load_registry
from shared.errors import BookError, ParameterError

from fixtures.book import fixture_layout  # noqa: E402 (tests/ is on sys.path)

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shared.build", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.fixture
def fixture_book(tmp_path, monkeypatch):
    """The whole build pointed at a temporary book holding a copy of the fixture chapter (a 120 s
    cell timeout: generous, so that a busy machine does not time out its imports); returns its book folder."""
    layout = fixture_layout(tmp_path, cell_timeout=120)
    monkeypatch.setattr(places, "LAYOUT", layout)
    return layout.book


# --------------------------------------------------------------------------------------------
# the registry and the generated table of contents
# --------------------------------------------------------------------------------------------

def test_registry_is_consistent():
    chapters = load_registry()
    assert chapters, "no chapter registered"
    for chapter in chapters.values():
        assert chapter.notebook.exists(), chapter.notebook
        assert chapter.part, f"{chapter.name} has no part"
        for profile in PROFILES:
            chapter.parameters(profile)  # raises on unknown names, bad values or model names
        chapter.parameters("local", chapter.smoke)


def test_every_notebook_parameter_has_a_declared_type():
    """Each name in a notebook's parameters cell has a spec in chapters.yml, and its default fits it."""
    problems = []
    for chapter in load_registry().values():
        assert chapter.declared, f"{chapter.notebook} has no parameters cell"
        for name, default in chapter.declared.items():
            try:
                check_value(name, chapter.spec(name), default)
            except ParameterError as err:
                problems.append(f"{chapter.name}: {err}")
    assert not problems, "\n".join(problems)


def test_toc_is_generated_from_the_registry():
    """_toc.yml is committed and equal to what the build writes from notebooks/chapters.yml."""
    assert (ROOT / "_toc.yml").read_text() == toc.toc_text(Layout.at(ROOT)), \
        "_toc.yml is out of date: run python -m shared.build --no-html (it regenerates it)"
    contents = load_contents()
    files = [name for _, names in contents.parts for name in names]
    chapters = load_registry()
    assert set(chapters) <= set(files) and len(files) == len(set(files))
    for name in files:
        assert name in chapters or name in contents.generated or (ROOT / "book" / f"{name}.md").exists(), name


def test_committed_notebook_twins_match_sources():
    for chapter in load_registry().values():
        twin = chapter.notebook.with_suffix(".ipynb")
        advice = ("run python -m shared.build --sync (it copies your edit from whichever of the two files you "
                  "edited into the other, and stops if both were edited)")
        assert twin.exists(), f"{twin} is missing: {advice}"
        assert twin.read_text() == twin_text(chapter.notebook), f"{twin} and its .py differ: {advice}"
        assert all(not c.get("outputs") for c in json.loads(twin.read_text())["cells"])
        assert sources.notebook_parameters(twin) == chapter.declared


# --------------------------------------------------------------------------------------------
# parameter checks: one sentence, before anything executes
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, value, message", [
    ({"type": "int", "min": 0, "max": 10}, "abc", "p must be an integer, got 'abc'."),
    ({"type": "int", "min": 0, "max": 10}, 2.0, "p must be an integer, got 2.0."),
    ({"type": "int", "min": 0, "max": 10}, 11, "p must be an integer from 0 to 10, got 11."),
    ({"type": "int", "min": 1}, 0, "p must be an integer of at least 1, got 0."),
    ({"type": "float", "min": 0, "max": 1, "open_min": True}, 0, "p must be a number greater than 0 and at most 1"),
    ({"type": "bool"}, "yes", "p must be true or false, got 'yes'."),
    ({"type": "str", "choices": ["min", "median"]}, "max", "p must be one of 'min', 'median', got 'max'."),
    ({"type": "list", "of": "int", "min": 2, "max": 8, "min_len": 1}, [2, 9],
     "p must be a non-empty list of integers from 2 to 8, got [2, 9]."),
    ({"type": "list", "of": "int", "min_len": 1}, 3, "p must be a non-empty list of integers, got 3."),
    ({"type": "list", "of": "planted", "min_len": 1}, [], "p must be a non-empty list of planted model names"),
    ({"type": "list", "of": "sequence_task"}, ["months", "nope"], "Unknown sequence task 'nope' in p; choose from"),
    ({"type": "list", "of": "sequence_task"}, ["months", "months"], "p lists 'months' twice."),
    ({"type": "model"}, "gpt7", "Unknown model 'gpt7'"),
])
def test_check_value_says_what_is_wrong_in_one_sentence(spec, value, message):
    with pytest.raises(BookError) as err:
        check_value("p", spec, value)
    assert message in str(err.value) and len(str(err.value).splitlines()) == 1


def test_check_value_returns_normalised_values():
    assert check_value("p", {"type": "float"}, 1) == 1.0 and isinstance(check_value("p", {"type": "float"}, 1), float)
    assert check_value("p", {"type": "list", "of": "int"}, (1, 2)) == [1, 2]


def test_bad_parameters_raise_one_sentence(fixture_book):
    chapter = cli.registry()["tiny_chapter"]
    with pytest.raises(ParameterError, match="has no parameter 'size'; its parameters are n, fail, hang, die, seed"):
        chapter.parameters("local", {"size": 3})
    with pytest.raises(ParameterError, match="n must be an integer, got 'abc'"):
        chapter.parameters("local", {"n": "abc"})
    with pytest.raises(ParameterError, match="Unknown profile 'papr'"):
        chapter.parameters("papr")


@pytest.mark.parametrize("args, message", [
    (["--chapter", "no_such_chapter"], "Unknown chapter 'no_such_chapter'"),
    (["--profile", "nonsense"], "Unknown profile 'nonsense'"),
    (["--param", "no_such_param=1"], "No selected chapter has a parameter 'no_such_param'"),
    (["--param", "model_name=gpt7"], "Unknown model 'gpt7'"),
    (["--chapter", "seq_knockouts", "--param", "seed=abc"], "seed must be an integer, got 'abc'."),
    (["--chapter", "seq_knockouts", "--param", "n_prompts=1"], "n_prompts must be an integer from"),
    (["--chapter", "seq_knockouts", "--param", "task_names=[numerals, nope]"], "Unknown sequence task 'nope'"),
    (["--chapter", "circuit_methods", "--param", "models=[]"], "models must be a non-empty list of planted"),
    (["--chapter", "seq_knockouts", "--param", "seed=[1"], "--param seed has a value that is not valid YAML"),
])
def test_cli_errors_are_one_line_before_anything_executes(args, message):
    proc = run_cli(*args, "--no-html")
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "executing" not in proc.stdout and "synced" not in proc.stdout


def test_cli_lists_chapters():
    proc = run_cli("--list")
    assert proc.returncode == 0, proc.stderr
    for name in load_registry():
        assert f"{name}: notebooks/{name}.py" in proc.stdout


# --------------------------------------------------------------------------------------------
# build keys: what re-executes a chapter
# --------------------------------------------------------------------------------------------

def _copy_sources(dest: Path) -> None:
    """The parts of the repository a build key reads: shared/*.py, the notebooks, the registry, config."""
    def skip(folder: str, names: list[str]) -> list[str]:
        return [n for n in names if n in ("checkpoints", "__pycache__")
                or (not n.endswith(".py") and not (Path(folder) / n).is_dir())]

    shutil.copytree(ROOT / "shared", dest / "shared", ignore=skip)
    (dest / "notebooks").mkdir()
    for path in list((ROOT / "notebooks").glob("*.py")) + [ROOT / "notebooks" / "chapters.yml"]:
        shutil.copy(path, dest / "notebooks" / path.name)
    shutil.copy(ROOT / "_config.yml", dest / "_config.yml")


def test_build_key_follows_the_import_graph(tmp_path):
    """Editing a module only the algorithmic chapters import re-keys only them; a comment anywhere,
    or code no chapter imports, re-keys nothing; a notebook re-keys itself; in _config.yml, a rendering
    setting re-keys nothing and the repository (the Colab badge) all."""
    _copy_sources(tmp_path)
    layout = Layout.at(tmp_path)
    chapters = load_registry(layout.registry, tmp_path)
    params = {name: ch.parameters("local") for name, ch in chapters.items()}

    def current() -> dict[str, str]:
        return {name: keys.build_key(keys.key_parts(ch, params[name], layout)) for name, ch in chapters.items()}

    def edit(path: Path, text: str, at_start: bool = False) -> None:
        old = path.read_text()
        path.write_text(text + old if at_start else old + text)

    closures = {name: set(sources.file_closure(ch.notebook, tmp_path)) for name, ch in chapters.items()}
    users = {m: {n for n, c in closures.items() if m in c} for m in set().union(*closures.values())}
    algorithmic = {name for name in chapters if name.startswith("algorithmic")}
    only_algorithmic = sorted(m for m, u in users.items() if u == algorithmic)
    assert only_algorithmic, "no module is imported by the algorithmic chapters alone"
    module = next((m for m in only_algorithmic if m.startswith("shared.plots.")), only_algorithmic[0])
    everything = sorted(".".join(p.relative_to(tmp_path).with_suffix("").parts).removesuffix(".__init__")
                        for p in (tmp_path / "shared").rglob("*.py"))
    unused = [m for m in ["shared.build.cli", *everything] if m not in users]  # the build, once nothing imports it
    assert unused, "every module is imported by some chapter"

    before = current()
    edit(sources.module_file(module, tmp_path), "\n\ndef _added_by_a_test():\n    return 1\n")
    after = current()
    assert {n for n in chapters if after[n] != before[n]} == algorithmic, module

    before = after
    edit(sources.module_file("shared.errors", tmp_path), "# a comment, then a blank line\n\n", at_start=True)
    edit(sources.module_file(unused[0], tmp_path), "\n\nSOMETHING_NEW = 1\n")
    assert current() == before

    edit(chapters["seq_knockouts"].notebook, "\n# %%\nprint('one more cell')\n")
    after = current()
    assert {n for n in chapters if after[n] != before[n]} == {"seq_knockouts"}

    edit(layout.config, "\n# edited\nhtml_extra_setting: 1\n")
    assert current() == after
    layout.config.write_text(layout.config.read_text().replace("branch: main", "branch: other"))
    final = current()
    assert all(final[n] != after[n] for n in chapters)



def test_a_closing_page_is_re_keyed_when_a_chapter_it_reads_changes_its_parameters(tmp_path):
    """training_findings reads its siblings' registered parameters: editing training_performance's
    ``local`` parameters in the registry re-keys the closing page too (and no other chapter), even though
    the page's own parameters did not change; a chapter that is not in its ``reads:`` cannot be read."""
    _copy_sources(tmp_path)
    layout = Layout.at(tmp_path)
    registry = tmp_path / "notebooks" / "chapters.yml"

    def current() -> dict[str, str]:
        chapters = load_registry(layout.registry, tmp_path)
        return {name: keys.build_key(keys.key_parts(ch, ch.parameters("local"), layout))
                for name, ch in chapters.items() if name != "training_performance"}

    assert "training_performance" in load_registry(layout.registry, tmp_path)["training_findings"].reads
    before = current()
    text = registry.read_text()
    assert "min_gt_gain: 0.05," in text
    registry.write_text(text.replace("min_gt_gain: 0.05,", "min_gt_gain: 0.06,", 1))
    after = current()
    assert {n for n in after if after[n] != before[n]} == {"training_findings"}
    registry.write_text(text.replace("reads: [training_performance,", "reads: [no_such_chapter,", 1))
    with pytest.raises(ParameterError, match="reads unknown chapters"):
        load_registry(layout.registry, tmp_path)

def test_key_parts_name_models_and_packages():
    chapter = load_registry()["seq_knockouts"]
    params = chapter.parameters("local")
    assert keys.model_names(params) == ["suite-l-s0"]
    assert keys.model_names({"model_name": "gpt2-small", "compare_with": ["seq-lm"], "models": ["induction"]}) \
        == ["seq-lm"]
    assert set(keys.package_versions()) == {"torch", "transformer-lens"}
    parts = keys.key_parts(chapter, params, Layout.at(ROOT))
    assert list(parts) == list(keys.PARTS) and all(parts.values())
    assert keys.changed_parts({"key_parts": {**parts, "models": "x"}}, parts) == ["models"]


def test_sources_follow_packages_relative_and_named_imports(tmp_path):
    closure = sources.module_closure(["shared.zoo.registry"])
    assert {"shared", "shared.zoo", "shared.zoo.seq_lm", "shared.zoo.cache"} <= set(closure)  # ZOO_MODULES named
    pkg = tmp_path / "shared" / "sub"
    pkg.mkdir(parents=True)
    (tmp_path / "shared" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from . import a\n")
    (pkg / "a.py").write_text("from .b import thing\n")
    (pkg / "b.py").write_text("def thing():\n    from shared import c\n")
    (tmp_path / "shared" / "c.py").write_text("")
    (tmp_path / "shared" / "unused.py").write_text("")
    assert sources.module_closure(["shared.sub"], tmp_path) == ["shared", "shared.c", "shared.sub", "shared.sub.a",
                                                                "shared.sub.b"]


def test_cached_json_is_keyed_by_model_parameters_and_code(tmp_path, monkeypatch):
    monkeypatch.setenv("CIRCUITS_BOOK_CACHE", str(tmp_path))
    bridge = SimpleNamespace(book_model_name="m", book_model_description="d", cfg=None)
    calls = []

    def compute():
        calls.append(1)
        return {"x": 1.5}

    assert results.cached_json("demo", bridge, {"a": 1}, compute, module="shared.engine.graph") == {"x": 1.5}
    assert results.cached_json("demo", bridge, {"a": 1}, compute, module="shared.engine.graph") == {"x": 1.5}
    assert len(calls) == 1
    results.cached_json("demo", bridge, {"a": 2}, compute, module="shared.engine.graph")
    results.cached_json("demo", bridge, {"a": 1}, compute, module="shared.engine.batch")
    assert len(calls) == 3
    assert results.code_key("shared.engine.graph") != results.code_key("shared.engine.batch")
    assert len(list((tmp_path / "results").glob("demo-*/result.json"))) == 3  # the redirected cache's results/


def test_results_are_cached_outside_the_shipped_checkpoints(tmp_path, monkeypatch):
    """Without a redirected cache, results go to the local cache (``CIRCUITS_BOOK_LOCAL_CACHE``), never into
    ``shared/checkpoints``, whose size is the shipped models' budget."""
    from shared.paths import results_dir, shipped_cache_dir
    monkeypatch.delenv("CIRCUITS_BOOK_CACHE", raising=False)
    monkeypatch.setenv("CIRCUITS_BOOK_LOCAL_CACHE", str(tmp_path / "local"))
    bridge = SimpleNamespace(book_model_name="m", book_model_description="d", cfg=None)
    assert results.cached_json("demo", bridge, {"a": 1}, lambda: {"x": 2}, module="shared.engine.graph") == {"x": 2}
    assert results_dir() == tmp_path / "local" / "results"
    assert len(list(results_dir().glob("demo-*/result.json"))) == 1
    assert not (shipped_cache_dir() / "results").exists() or not any((shipped_cache_dir() / "results").glob("demo-*"))


# --------------------------------------------------------------------------------------------
# executing chapters
# --------------------------------------------------------------------------------------------

def test_incremental_build_overrides_figures_progress_and_quiet_stderr(fixture_book, capfd):
    """Executes only what changed; shows each cell as it starts (cell n of m, seconds so far) on
    stdout; stderr stays empty: no kernel warnings (TCP without encryption, ...), no tqdm bars."""
    figures = places.LAYOUT.figures / "tiny_chapter"
    assert cli.main(["--no-html"]) == 0
    out, err = capfd.readouterr()
    assert err == "", f"stderr must stay empty on success, got: {err!r}"
    assert "executing (not executed yet)" in out and "executed in" in out
    cells = re.findall(r"tiny_chapter: cell (\d+) of (\d+), \d+ s: (.*)", out)
    assert [int(n) for n, _, _ in cells] == list(range(1, 9)) and {m for _, m, _ in cells} == {"8"}, out
    assert cells[4][2] == "if fail:", "each progress line names the cell by its first line of code"
    assert (fixture_book.parent / "_toc.yml").exists()
    output = fixture_book / "tiny_chapter.ipynb"
    text = output.read_text()
    assert "We drew **4** points." in text and "Open this chapter in Colab" in text
    meta = keys.stored_metadata(output)
    assert set(meta["figures"]) == {"points.png", "points.svg"} and set(meta["key_parts"]) == set(keys.PARTS)
    assert (figures / "points.png").exists()
    assert cli.main(["--no-html"]) == 0
    assert "up to date" in capfd.readouterr().out
    (figures / "points.svg").unlink()
    assert cli.main(["--no-html"]) == 0
    assert "an exported figure is missing or changed" in capfd.readouterr().out
    assert (figures / "points.svg").exists()
    assert cli.main(["--no-html", "--param", "n=5"]) == 0
    assert "executing (changed: parameters)" in capfd.readouterr().out
    assert "We drew **5** points." in output.read_text()


@pytest.mark.parametrize("param, message", [
    ("fail=true", "failed in cell 5 of 8 (`if fail:`) (ValueError: asked to fail); the failed notebook is "),
    ("hang=true", "timed out in cell 5 of 8 (`if fail:`): no result after 20 s (its cell_timeout in "),
    ("die=true", "stopped in cell 5 of 8 (`if fail:`): its kernel died (a crash in native code, out of memory, "),
])
def test_a_failure_is_one_sentence_naming_chapter_and_cell(tmp_path, monkeypatch, capfd, param, message):
    """An exception, a cell over the chapter's cell_timeout and a dead kernel (os._exit) each stop the
    build with one sentence on stderr naming the chapter and the cell; the notebook as far as it ran
    is kept in _build/failed/ and the published output is left alone."""
    # the hanging cell must time out, the cells before it not, also on a busy machine (imports: ~3 s idle)
    layout = fixture_layout(tmp_path, cell_timeout=20 if param == "hang=true" else 120)
    monkeypatch.setattr(places, "LAYOUT", layout)
    start = time.time()
    assert cli.main(["--no-html", "--param", param]) == 2
    out, err = capfd.readouterr()
    assert err.startswith("error: Chapter 'tiny_chapter' ") and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "\x1b[" not in err, err
    assert "cell 5 of 8" in out and "cell 6 of 8" not in out
    failed = layout.failed("tiny_chapter")
    assert layout.relative(failed) in err and "We drew **4** points." in failed.read_text()
    assert not layout.output("tiny_chapter").exists(), "a failed run must not replace the output"
    assert time.time() - start < 90


def test_cell_timeout_comes_from_the_registry(tmp_path, monkeypatch):
    from shared.build.execute import cell_timeout

    layout = fixture_layout(tmp_path, cell_timeout=7)
    monkeypatch.setattr(places, "LAYOUT", layout)
    assert cell_timeout(cli.registry()["tiny_chapter"]) == 7
    assert cell_timeout(load_registry()["seq_knockouts"]) == DEFAULT_CELL_TIMEOUT >= 900
    layout.registry.write_text(layout.registry.read_text().replace("cell_timeout: 7", "cell_timeout: soon"))
    with pytest.raises(BuildError, match="cell_timeout of chapter 'tiny_chapter' .* must be a whole number"):
        cell_timeout(cli.registry()["tiny_chapter"])


def test_clean_outputs_drop_stderr_collapse_progress_and_merge_only_adjacent_prints():
    import nbformat

    from shared.build.clean import clean_outputs

    def stream(name: str, text: str):
        return nbformat.v4.new_output("stream", name=name, text=text)

    table = nbformat.v4.new_output("display_data", data={"text/plain": f"{ROOT}/table"})
    outputs = [stream("stdout", "label\rstep 1\rstep 2\n"), stream("stderr", "TqdmWarning: IProgress not found"),
               stream("stdout", "next\n"), table, stream("stdout", f"saved {ROOT}/figures/x.png\n")]
    cleaned = clean_outputs(outputs, ROOT)
    assert [o["output_type"] for o in cleaned] == ["stream", "display_data", "stream"]
    assert cleaned[0]["text"] == "step 2\nnext\n" and cleaned[2]["text"] == "saved figures/x.png\n"
    assert cleaned[1]["data"]["text/plain"] == "table"


# --------------------------------------------------------------------------------------------
# the .ipynb twins: an edit in either file is kept
# --------------------------------------------------------------------------------------------

@pytest.fixture
def pair(tmp_path, monkeypatch):
    """A synced .py / .ipynb pair (a copy of a real chapter) under tmp_path/notebooks."""
    monkeypatch.setattr(places, "LAYOUT", Layout.at(tmp_path))
    py = tmp_path / "notebooks" / "demo.py"
    py.parent.mkdir()
    shutil.copy(ROOT / "notebooks" / "framework_2l.py", py)
    assert sync_pair(py) == "wrote notebooks/demo.ipynb from notebooks/demo.py"
    assert sync_pair(py) is None
    return py


def _edit_twin_as_colab_does(twin: Path, heading: str, strip_record: bool = False) -> None:
    nb = json.loads(twin.read_text())
    cell = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    cell["source"] = [heading]
    nb["metadata"]["colab"] = {"provenance": []}
    if strip_record:
        del nb["metadata"]["circuits_book"]
    for c in nb["cells"]:
        c["metadata"]["colab"] = {"base_uri": "https://localhost:8080/"}
        if c["cell_type"] == "code":
            c["outputs"], c["execution_count"] = [{"output_type": "stream", "name": "stdout", "text": ["x\n"]}], 1
    twin.write_text(json.dumps(nb, indent=1))


def test_an_edit_of_the_twin_is_synced_into_the_py(pair):
    """Editing only the .ipynb (a contributor working in Colab) and building keeps the edit: the .py
    is rewritten from it (no Colab metadata), even when the .py looks newer."""
    twin = pair.with_suffix(".ipynb")
    _edit_twin_as_colab_does(twin, "# Edited in Colab")
    os.utime(pair, (time.time() + 60, time.time() + 60))  # the record decides, not the clock
    assert sync_pair(pair) == "synced notebooks/demo.py from notebooks/demo.ipynb, which was edited"
    import jupytext

    text = pair.read_text()
    assert "base_uri" not in text and "provenance" not in text and "outputs" not in text
    edited, original = jupytext.reads(text, fmt="py:percent"), jupytext.read(ROOT / "notebooks" / "framework_2l.py")
    assert edited.cells[0].source == "# Edited in Colab"
    assert [(c.source, c.metadata) for c in edited.cells[1:]] == [(c.source, c.metadata) for c in original.cells[1:]]
    assert twin.read_text() == twin_text(pair) and sync_pair(pair) is None


def test_an_edit_of_the_py_is_synced_into_the_twin(pair):
    pair.write_text(pair.read_text() + "\n# %%\nprint('added')\n")
    assert sync_pair(pair) == "synced notebooks/demo.ipynb from notebooks/demo.py"
    assert "print('added')" in source_from_twin(pair.with_suffix(".ipynb").read_text(), pair)


def test_a_twin_resaved_without_edits_keeps_the_py(pair):
    twin = pair.with_suffix(".ipynb")
    before = pair.read_text()
    nb = json.loads(twin.read_text())
    for c in nb["cells"]:
        if c["cell_type"] == "code":
            c["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["x\n"]}]
    twin.write_text(json.dumps(nb))
    assert "outputs or metadata only" in sync_pair(pair)
    assert pair.read_text() == before and twin.read_text() == twin_text(pair)


def test_a_twin_without_its_record_is_synced_when_it_is_newer(pair):
    twin = pair.with_suffix(".ipynb")
    _edit_twin_as_colab_does(twin, "# Edited elsewhere", strip_record=True)
    os.utime(pair, (time.time() - 60, time.time() - 60))
    assert "which was edited" in sync_pair(pair) and "# # Edited elsewhere" in pair.read_text()


def test_both_edited_stops_the_build_before_anything_runs(tmp_path, monkeypatch, capfd):
    layout = fixture_layout(tmp_path)
    monkeypatch.setattr(places, "LAYOUT", layout)
    assert cli.main(["--sync"]) == 0
    py = tmp_path / "notebooks" / "tiny_chapter.py"
    twin = py.with_suffix(".ipynb")
    _edit_twin_as_colab_does(twin, "# Edited in Colab")
    py.write_text(py.read_text() + "\n# %%\nprint('edited here too')\n")
    py_text, twin_before = py.read_text(), twin.read_text()
    capfd.readouterr()
    assert cli.main(["--no-html"]) == 2
    out, err = capfd.readouterr()
    assert f"Both {py} and {twin} were edited since they were last synced" in err
    assert len(err.strip().splitlines()) == 1 and "executing" not in out
    assert py.read_text() == py_text and twin.read_text() == twin_before, "neither edit may be lost"


# --------------------------------------------------------------------------------------------
# the HTML: never from stale or failed chapters, never half-written
# --------------------------------------------------------------------------------------------

def test_html_refuses_stale_chapters_and_a_failed_render_keeps_the_published_book(tmp_path, monkeypatch, capfd):
    layout = fixture_layout(tmp_path, names=("tiny_chapter", "tiny_other"))
    monkeypatch.setattr(places, "LAYOUT", layout)
    assert cli.main([]) == 0
    page = layout.html / "tiny_other.html"
    published = page.read_text()
    other = tmp_path / "notebooks" / "tiny_other.py"
    other.write_text(other.read_text() + "\n# %%\nprint('a new cell')\n")
    capfd.readouterr()

    assert cli.main(["--chapter", "tiny_chapter"]) == 2
    out, err = capfd.readouterr()
    assert "tiny_chapter: up to date" in out and "HTML rendered" not in out
    assert err.startswith("error: Not rendering the HTML: 1 executed chapter(s) no longer match their sources, "
                          "tiny_other (changed: notebook); run python -m shared.build --chapter tiny_other."), err
    assert len(err.strip().splitlines()) == 1 and page.read_text() == published

    layout.failed("tiny_chapter").parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(layout.output("tiny_chapter"), layout.failed("tiny_chapter"))  # as if it had just failed
    assert "tiny_chapter (its last execution, with these very inputs, failed)" in str(
        pytest.raises(BuildError, cli.refuse_stale).value)
    layout.failed("tiny_chapter").unlink()

    assert cli.main(["--chapter", "tiny_other"]) == 0
    published = page.read_text()
    assert "a new cell" in published
    intro = layout.book / "intro.md"
    intro.write_text(intro.read_text() + "\nSee {doc}`no_such_page`.\n")  # a warning: the strict render fails
    capfd.readouterr()
    assert cli.main(["--chapter", "tiny_other"]) == 2
    out, err = capfd.readouterr()
    assert "jupyter-book failed" in err and "the published HTML was left as it was" in err, err
    assert len(err.strip().splitlines()) == 1 and "\x1b[" not in err
    assert page.read_text() == published and (layout.html / "index.html").exists()
    assert not list(layout.build_dir.glob(".html-*")), "no half-written copy is left behind"


# --------------------------------------------------------------------------------------------
# notebooks on Colab and the package
# --------------------------------------------------------------------------------------------

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
    import zipfile

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
    assert "shared/sources.py" in names and "shared/build/keys.py" in names
    assert any(n.startswith("shared/checkpoints/models/suite-s-s0-") and n.endswith("model.safetensors") for n in names)
    assert not any("/results/" in n for n in names), "the result cache must not be packaged"
    meta = wheel.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "Requires-Dist: transformer-lens" in meta and "Requires-Dist: circuitsvis" in meta


def test_ci_installs_what_the_readme_says():
    """Each install of the README's install command is in .ci/run, and so is its test command."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme[readme.index("## Two commands"):], re.S)
    install, test = blocks[0].strip(), blocks[1].strip()
    ci = [" ".join(line.replace("$SUDO ", "").replace(" -q", "").split())
          for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    steps = [" ".join(step.replace("sudo ", "").split()) for step in install.split("&&")]
    installs = [step for step in steps if " install " in step or step.startswith(("python3 -m venv", "apt-get"))]
    assert len(installs) == 5, installs
    for step in installs:
        assert any(step in line for line in ci), f".ci/run does not run {step!r}"
    assert test.replace(" -q", "") in ci and "export CI=true" in ci
