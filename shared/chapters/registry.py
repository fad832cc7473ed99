"""The chapter registry ``notebooks/chapters.yml``: the book's table of contents (parts, chapters and
pages), each chapter's parameters per profile, and the type and range of every chapter parameter,
declared once and checked before any model loads.

A parameter's spec is a mapping with ``type`` — ``int``, ``float``, ``bool``, ``str``, ``model`` (a
model name :func:`shared.zoo.registry.check_model_name` accepts), ``sequence_task`` (a task of
:mod:`shared.tasks.sequences`), ``planted`` (a planted model) or ``list`` (with ``of``: the type of
its items) — and optionally ``min``/``max`` (inclusive; ``open_min: true`` makes the lower bound
exclusive), ``choices``, and for lists ``min_len``/``max_len`` and ``unique`` (default true). The
top-level ``parameters:`` table holds the specs shared by all chapters; a chapter's own ``types:``
entry is merged over them for that chapter.

Outside a checkout (the package installed on Colab) there is no ``notebooks/chapters.yml``:
:func:`chapter_entry` then returns ``None`` and a notebook runs with its own defaults unchecked.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from shared.errors import ParameterError
from shared.paths import REPO_ROOT
from shared.sources import notebook_parameters
from shared.tasks.sequences import TASKS
from shared.zoo.planted import PLANTED
from shared.zoo.registry import check_model_name

REGISTRY = REPO_ROOT / "notebooks" / "chapters.yml"
PROFILES = ("local", "paper")
KINDS = ("int", "float", "bool", "str", "model", "sequence_task", "planted", "list")
SPEC_KEYS = ("type", "of", "min", "max", "open_min", "choices", "min_len", "max_len", "unique")


@dataclass
class ChapterEntry:
    """One registered chapter: its notebook, table-of-contents part, parameters and their types.

    ``types`` holds the chapter's own ``types:`` entries and ``table`` the shared ``parameters:``
    table; :meth:`spec` merges the two for one parameter.
    """

    name: str
    notebook: Path
    part: str = ""
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    smoke: dict[str, Any] = field(default_factory=dict)
    types: dict[str, dict[str, Any]] = field(default_factory=dict)
    title: str = ""
    table: dict[str, dict[str, Any]] = field(default_factory=dict)
    reads: tuple[str, ...] = ()  # chapters whose registered parameters this one reads (part of its build key)

    @property
    def declared(self) -> dict[str, Any]:
        """The notebook's ``parameters`` cell: names and literal defaults (empty without the file)."""
        return notebook_parameters(self.notebook) if self.notebook.exists() else {}

    def spec(self, name: str) -> dict[str, Any]:
        """The type and range of parameter ``name`` (chapter ``types:`` merged over the table)."""
        if name not in self.types and name not in self.table:
            known = list(self.declared) or sorted(set(self.types) | {k for p in self.params.values() for k in p})
            if name in known:
                raise ParameterError(f"Parameter {name!r} of chapter {self.name!r} has no declared type: add it "
                                     f"to the parameters table of notebooks/chapters.yml.")
            raise ParameterError(f"Chapter {self.name!r} has no parameter {name!r}; its parameters are "
                                 f"{', '.join(known)}.")
        return {**self.table.get(name, {}), **self.types.get(name, {})}

    def parameters(self, profile: str = "local", overrides: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        """The ``local`` parameters, the ``profile`` ones merged over them, then ``overrides``;
        every value checked against its spec and every name against the notebook's parameters cell."""
        if profile not in PROFILES:
            raise ParameterError(f"Unknown profile {profile!r}; choose one of {', '.join(PROFILES)}.")
        merged = {**self.params.get("local", {}), **self.params.get(profile, {}), **(overrides or {})}
        declared = self.declared
        unknown = [key for key in merged if declared and key not in declared]
        if unknown:
            raise ParameterError(f"Chapter {self.name!r} has no parameter {', '.join(map(repr, unknown))}; "
                                 f"its parameters are {', '.join(declared)}.")
        return check_parameters(self, merged)


@dataclass(frozen=True)
class Contents:
    """The table of contents: the landing page and, per part caption, its pages in order."""

    root: str
    parts: list[tuple[str, list[str]]]
    generated: list[str]  # pages the build writes (e.g. ``models``), not files in book/


def _read(path: Optional[Path] = None) -> dict[str, Any]:
    return yaml.safe_load((path or REGISTRY).read_text()) or {}


def _check_spec(name: str, spec: Any) -> None:
    if not isinstance(spec, dict):
        raise ParameterError(f"The spec of parameter {name!r} in notebooks/chapters.yml must be a mapping, "
                             f"got {spec!r}.")
    extra = sorted(set(spec) - set(SPEC_KEYS))
    kinds = [spec.get("type"), spec.get("of")] if spec.get("type") == "list" else [spec.get("type")]
    bad = [k for k in kinds if k is not None and k not in KINDS] or (["list"] if spec.get("of") == "list" else [])
    if extra or bad:
        raise ParameterError(f"The spec of parameter {name!r} in notebooks/chapters.yml has "
                             f"{'unknown key ' + repr(extra[0]) if extra else 'unknown type ' + repr(bad[0])}; "
                             f"keys are {', '.join(SPEC_KEYS)} and types {', '.join(KINDS)}.")


def load_registry(path: Optional[Path] = None, root: Path = REPO_ROOT) -> dict[str, ChapterEntry]:
    """Every chapter of ``notebooks/chapters.yml`` (or ``path``), in book order; notebook paths are
    relative to ``root``. Entries with ``page:`` (pages without a notebook) are not chapters."""
    data = _read(path)
    table = data.get("parameters") or {}
    for name, spec in table.items():
        _check_spec(name, spec)
    out: dict[str, ChapterEntry] = {}
    for entry in data.get("chapters") or []:
        if "page" in entry:
            continue
        if Path(entry["notebook"]).stem != entry["name"]:
            raise ParameterError(f"Chapter {entry['name']!r} must be named after its notebook {entry['notebook']!r}.")
        own = entry.get("types") or {}
        for name, spec in own.items():
            _check_spec(name, spec)
        out[entry["name"]] = ChapterEntry(entry["name"], root / entry["notebook"], entry.get("part", ""),
                                          entry.get("params", {}), entry.get("smoke", {}), own,
                                          entry.get("title", ""), table, tuple(entry.get("reads") or ()))
    for entry in out.values():
        unknown = [name for name in entry.reads if name not in out]
        if unknown:
            raise ParameterError(f"Chapter {entry.name!r} reads unknown chapters {unknown} (its reads: list).")
    return out


def load_contents(path: Optional[Path] = None) -> Contents:
    """The table of contents declared in ``notebooks/chapters.yml``: ``root`` (the landing page),
    ``parts`` (key: caption, in book order) and each chapter's or page's ``part`` key."""
    data = _read(path)
    captions = data.get("parts") or {}
    parts: dict[str, list[str]] = {key: [] for key in captions}
    generated = []
    for entry in data.get("chapters") or []:
        name = entry.get("page") or entry.get("name")
        if entry.get("part") not in parts:
            raise ParameterError(f"{name!r} in notebooks/chapters.yml needs a part, one of {', '.join(parts)}; "
                                 f"got {entry.get('part')!r}.")
        parts[entry["part"]].append(name)
        if entry.get("generated"):
            generated.append(name)
    return Contents(data.get("root", "intro"), [(captions[k], files) for k, files in parts.items() if files],
                    generated)


def chapter_entry(name: str) -> Optional[ChapterEntry]:
    """The registered chapter ``name``, or ``None`` (a notebook outside the registry, or no registry)."""
    if not REGISTRY.exists():
        return None
    return load_registry().get(name)


# --------------------------------------------------------------------------------------------
# checking values against specs
# --------------------------------------------------------------------------------------------

_ONE = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
        "model": "a model name", "sequence_task": "a sequence task name", "planted": "a planted model name"}
_MANY = {"int": "integers", "float": "numbers", "bool": "true/false values", "str": "strings",
         "model": "model names", "sequence_task": "sequence task names", "planted": "planted model names"}


def _range_text(spec: dict[str, Any]) -> str:
    lo, hi, open_lo = spec.get("min"), spec.get("max"), spec.get("open_min")
    if lo is not None and hi is not None:
        return f" greater than {lo} and at most {hi}" if open_lo else f" from {lo} to {hi}"
    if lo is not None:
        return f" greater than {lo}" if open_lo else f" of at least {lo}"
    return f" of at most {hi}" if hi is not None else ""


def _list_text(spec: dict[str, Any], ranged: bool = True) -> str:
    lo, hi = spec.get("min_len", 0), spec.get("max_len")
    items = _MANY.get(spec.get("of", "str"), "items") + (_range_text(spec) if ranged else "")
    if hi is not None:
        return f"a list of {lo} to {hi} {items}"
    if lo == 1:
        return f"a non-empty list of {items}"
    return f"a list of at least {lo} {items}" if lo > 1 else f"a list of {items}"


def _known(spec: dict[str, Any]) -> Optional[list[Any]]:
    """The allowed values of a spec (``None``: any value of the type)."""
    kind = spec.get("type", "str")
    if spec.get("choices") is not None:
        return list(spec["choices"])
    if kind == "sequence_task":
        return list(TASKS)
    if kind == "planted":
        return list(PLANTED)
    return None


def _fits_type(kind: str, value: Any) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, str)


def _fits_range(spec: dict[str, Any], value: Any) -> bool:
    lo, hi = spec.get("min"), spec.get("max")
    if lo is not None and (value < lo or (spec.get("open_min") and value == lo)):
        return False
    return hi is None or value <= hi


def _check_scalar(name: str, spec: dict[str, Any], value: Any, shown: Any, where: str) -> Any:
    kind = spec.get("type", "str")
    if not _fits_type(kind, value):
        raise ParameterError(f"{name} must be {where or _ONE.get(kind, kind)}, got {shown!r}.")
    if kind in ("int", "float") and not _fits_range(spec, value):
        raise ParameterError(f"{name} must be {where or _ONE[kind] + _range_text(spec)}, got {shown!r}.")
    known = _known(spec)
    if known is not None and value not in known:
        if kind == "str":
            raise ParameterError(f"{name} must be one of {', '.join(map(repr, known))}, got {value!r}.")
        raise ParameterError(f"Unknown {kind.replace('_', ' ')} {value!r} in {name}; choose from "
                             f"{', '.join(map(str, known))}.")
    if kind == "model":
        check_model_name(value)
    return float(value) if kind == "float" else value


def check_value(name: str, spec: dict[str, Any], value: Any) -> Any:
    """``value`` if it fits ``spec`` (a float parameter comes back as ``float``, a list as ``list``);
    otherwise one :class:`ParameterError` sentence naming the parameter, e.g.
    ``seed must be an integer, got 'abc'.``"""
    if spec.get("type", "str") != "list":
        return _check_scalar(name, spec, value, value, "")
    if not isinstance(value, (list, tuple)):
        raise ParameterError(f"{name} must be {_list_text(spec, ranged=False)}, got {value!r}.")
    if not spec.get("min_len", 0) <= len(value) <= spec.get("max_len", len(value)):
        raise ParameterError(f"{name} must be {_list_text(spec, ranged=False)}, got {list(value)!r}.")
    item = {"type": spec.get("of", "str"), **{k: spec[k] for k in ("min", "max", "open_min", "choices") if k in spec}}
    items = [_check_scalar(name, item, v, list(value), _list_text(spec)) for v in value]
    if spec.get("unique", True):
        repeated = [v for i, v in enumerate(items) if v in items[:i]]
        if repeated:
            raise ParameterError(f"{name} lists {repeated[0]!r} twice.")
    return items


def check_parameters(chapter: ChapterEntry, params: dict[str, Any]) -> dict[str, Any]:
    """Check every parameter of ``chapter`` against its declared spec; unknown names are refused."""
    return {key: check_value(key, chapter.spec(key), value) for key, value in params.items()}


__all__ = ["KINDS", "PROFILES", "REGISTRY", "ChapterEntry", "Contents", "chapter_entry", "check_parameters",
           "check_value", "load_contents", "load_registry"]
