"""The layout rules of ``shared/`` (see the README's layout section), checked by parsing the source:
each module imports only its own layer and the layers below it, imports sit at module level
(except optional heavy dependencies), every module declares ``__all__``, and none grows too long."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT / "shared"
# lower layers first; the foundation (errors, paths, sources) may be imported by every layer
LAYERS = ["foundation", "engine", "analysis", "tasks", "zoo", "plots", "chapters", "build"]
FOUNDATION = {"shared", "shared.errors", "shared.paths", "shared.sources"}
# third-party packages the engine may use besides the standard library
ENGINE_THIRD_PARTY = {"torch", "transformer_lens", "tqdm"}
# optional or heavy dependencies that may be imported inside a function (only when needed);
# transformer_lens takes ~5 s to import, so the build's command line loads it only to boot a model;
# tracr (with jax) is not a dependency at all: only compiling the Tracr models again needs it
LAZY_OK = {"circuitsvis", "transformers", "tokenizers", "papermill", "jupytext", "nbformat", "playwright",
           "IPython", "sphinx", "jupyter_book", "transformer_lens", "tracr"}
MAX_LINES = 420


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(SHARED.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def layer_of(module: str) -> int:
    if module in FOUNDATION:
        return 0
    return LAYERS.index(module.split(".")[1])


def imports(tree: ast.AST, package: str) -> list[tuple[str, ast.stmt]]:
    """(absolute module name, node) for every import statement in the tree."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base == "shared" or (base.startswith("shared.") and not node.module):
                found += [(f"{base}.{a.name}", node) for a in node.names]
            else:
                found.append((base, node))
    return found


def target_module(name: str, known: dict[str, Path]) -> str:
    """The shared module an import refers to (``from shared.plots import figures`` -> shared.plots.figures)."""
    while name not in known and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def test_every_module_is_in_a_layer():
    for name in modules():
        assert name in FOUNDATION or name.split(".")[1] in LAYERS, f"{name} is outside the layers {LAYERS}"


def test_no_module_imports_a_higher_layer():
    known = modules()
    bad = []
    for name, path in known.items():
        tree = ast.parse(path.read_text())
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for target, _ in imports(tree, package):
            if target.split(".")[0] != "shared":
                continue
            target = target_module(target, known)
            if layer_of(target) > layer_of(name):
                bad.append(f"{name} ({LAYERS[layer_of(name)]}) imports {target} ({LAYERS[layer_of(target)]})")
    assert not bad, "imports of a higher layer:\n" + "\n".join(bad)


def test_engine_uses_only_torch_transformer_lens_and_itself():
    stdlib = set(__import__("sys").stdlib_module_names)
    bad = []
    for name, path in modules().items():
        if layer_of(name) != 1:
            continue
        for target, _ in imports(ast.parse(path.read_text()), name):
            top = target.split(".")[0]
            if top not in stdlib and top not in ENGINE_THIRD_PARTY and top != "shared" and top != "__future__":
                bad.append(f"{name} imports {target}")
    assert not bad, "\n".join(bad)


def test_imports_sit_at_module_level():
    bad = []
    for name, path in modules().items():
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for target, node in imports(fn, name):
                if target.split(".")[0] not in LAZY_OK:
                    bad.append(f"{name}:{node.lineno} imports {target} inside {fn.name}()")
    assert not bad, "imports inside functions (move them to the top of the module):\n" + "\n".join(bad)


@pytest.mark.parametrize("name", [n for n in modules() if not n.endswith("__main__")])
def test_module_declares_all_and_is_short(name):
    path = modules()[name]
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_LINES, f"{path.relative_to(ROOT)} has {len(text.splitlines())} lines"
    tree = ast.parse(text)
    declared = [n for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign)) and any(
        isinstance(t, ast.Name) and t.id == "__all__" for t in (n.targets if isinstance(n, ast.Assign) else [n.target]))]
    assert declared, f"{path.relative_to(ROOT)} has no __all__"
    if name != "shared.build":  # importing the build's package runs nothing either, but keep it cheap
        module = importlib.import_module(name)
        missing = [n for n in module.__all__ if not hasattr(module, n)]
        assert not missing, f"{name}.__all__ names {missing}, which it does not define"


def test_layer_check_catches_a_violation(tmp_path):
    """The checker itself: an engine module importing the zoo is reported."""
    tree = ast.parse("from shared.zoo.registry import load_model\n")
    (target, _), = imports(tree, "shared.engine")
    assert layer_of(target_module(target, {**modules()})) > layer_of("shared.engine.graph")
