"""What a piece of code depends on inside ``shared``: the import graph, read from source with ``ast``,
and a digest of the modules it reaches. The book build keys each chapter with it (a chapter
re-executes only when code it actually imports changes) and so does the chapters' result cache.

Rules of the walk, starting from a notebook or a module:

* ``import shared.a.b`` and ``from shared.a import b`` reach ``shared.a.b`` (when ``b`` is a module)
  and every package on the way (``shared``, ``shared.a``: their ``__init__`` runs on import);
  relative imports are resolved against the importing module; imports inside functions count too;
* a string constant that is exactly the dotted name of a ``shared`` module (such as the zoo's
  ``ZOO_MODULES``, imported with ``importlib``) counts as an import;
* the walk follows every reached module, transitively; modules outside ``shared`` are not followed
  (installed packages enter the build key by version instead).

The digest hashes each module's syntax tree, not its text, so editing a comment or the layout of a
line changes nothing, while any change to code or docstrings does. Standard library only.
"""
from __future__ import annotations

import ast
import hashlib
import json
import re
from pathlib import Path
from typing import Iterable, Optional

from shared.paths import PACKAGE_DIR

PACKAGE = "shared"
DEFAULT_ROOT = PACKAGE_DIR.parent  # the folder that holds the ``shared`` package
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")
_CELL = re.compile(r"^# %%(.*)$")
_TAGS = re.compile(r"tags\s*=\s*\[([^\]]*)\]")


def module_file(name: str, root: Path = DEFAULT_ROOT) -> Optional[Path]:
    """The source file of module ``name`` under ``root`` (a package's ``__init__.py``), or ``None``."""
    base = root.joinpath(*name.split("."))
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _parse(text: str, origin: str) -> ast.Module:
    try:
        return ast.parse(text)
    except SyntaxError:  # a notebook cell with IPython syntax: parse what can be parsed, cell by cell
        if not origin.endswith(".py"):
            raise
    cells, current = [], []
    for line in text.splitlines():
        if _CELL.match(line) and current:
            cells.append("\n".join(current))
            current = []
        current.append(line)
    cells.append("\n".join(current))
    body = []
    for cell in cells:
        try:
            body += ast.parse(cell).body
        except SyntaxError:
            continue
    return ast.Module(body=body, type_ignores=[])


def _candidates(tree: ast.Module, package: str) -> set[str]:
    """Dotted names this tree may import (resolved; whether they are modules is checked later)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[:len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _DOTTED.match(node.value):
            out.add(node.value)
    return out


def imports_of(text: str, package: str = "", origin: str = "<source>",
               root: Path = DEFAULT_ROOT) -> set[str]:
    """The ``shared`` modules (and their parent packages) that source ``text`` imports directly.

    ``package`` is the package of the importing module (for relative imports); ``origin`` names
    the source in errors (a ``.py`` origin is parsed cell by cell if it has notebook magics).
    """
    found: set[str] = set()
    for name in _candidates(_parse(text, origin), package):
        if name != PACKAGE and not name.startswith(PACKAGE + "."):
            continue
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if module_file(prefix, root) is not None:
                found.add(prefix)
    return found


def module_closure(start: Iterable[str], root: Path = DEFAULT_ROOT) -> list[str]:
    """Every ``shared`` module reached from the modules ``start``, transitively (sorted)."""
    seen: set[str] = set()
    todo = [m for m in start if module_file(m, root) is not None]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name, root)
        parents = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        todo += sorted((_module_imports(name, path, root) | parents) - seen)
    return sorted(seen)


_IMPORTS: dict[tuple[Path, int, int, Path], frozenset[str]] = {}


def _module_imports(name: str, path: Path, root: Path) -> frozenset[str]:
    stat = path.stat()
    key = (path, stat.st_mtime_ns, stat.st_size, root)
    if key not in _IMPORTS:
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        _IMPORTS[key] = frozenset(imports_of(path.read_text(), package, str(path), root))
    return _IMPORTS[key]


def file_closure(path: Path, root: Path = DEFAULT_ROOT) -> list[str]:
    """The ``shared`` modules a script or notebook (``.py`` percent format) reaches, transitively."""
    return module_closure(imports_of(Path(path).read_text(), origin=str(path), root=root), root)


_TREES: dict[tuple[Path, int, int], str] = {}


def module_fingerprint(name: str, root: Path = DEFAULT_ROOT) -> str:
    """A hash of module ``name``'s syntax tree (comments and layout do not count)."""
    path = module_file(name, root)
    if path is None:
        raise ModuleNotFoundError(f"No module {name!r} under {root}.")
    stat = path.stat()
    key = (path, stat.st_mtime_ns, stat.st_size)
    if key not in _TREES:
        tree = ast.dump(ast.parse(path.read_text(), str(path)), include_attributes=False)
        _TREES[key] = hashlib.sha256(tree.encode()).hexdigest()
    return _TREES[key]


def source_digest(modules: Iterable[str], root: Path = DEFAULT_ROOT) -> str:
    """One hash of the modules ``modules`` (names and syntax trees), independent of their order."""
    table = {name: module_fingerprint(name, root) for name in sorted(set(modules))}
    return hashlib.sha256(json.dumps(table, sort_keys=True).encode()).hexdigest()


def notebook_parameters(path: Path) -> dict[str, object]:
    """The names assigned in a notebook's ``parameters``-tagged cell, with their literal defaults
    (``None`` for a value that is not a literal). Reads Jupytext percent ``.py`` files and ``.ipynb``."""
    path = Path(path)
    if path.suffix == ".ipynb":
        cells = [cell for cell in json.loads(path.read_text())["cells"]
                 if "parameters" in cell.get("metadata", {}).get("tags", [])]
        source = "".join(cells[0]["source"]) if cells else None
    else:
        source, inside = None, False
        lines: list[str] = []
        for line in path.read_text().splitlines():
            header = _CELL.match(line)
            if header:
                if inside:
                    break
                tags = _TAGS.search(header.group(1))
                inside = bool(tags) and '"parameters"' in tags.group(1)
                continue
            if inside:
                lines.append(line)
        source = "\n".join(lines) if inside else None
    if source is None:
        return {}
    out: dict[str, object] = {}
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        for target in targets:
            if isinstance(target, ast.Name):
                try:
                    out[target.id] = ast.literal_eval(node.value) if node.value is not None else None
                except (ValueError, TypeError, SyntaxError):
                    out[target.id] = None
    return out


__all__ = ["DEFAULT_ROOT", "PACKAGE", "file_closure", "imports_of", "module_closure", "module_file",
           "module_fingerprint", "notebook_parameters", "source_digest"]
