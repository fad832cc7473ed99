"""The chapter registry ``notebooks/chapters.yml``: chapters, their parameters per profile, and the
type and range of every chapter parameter, declared once and checked before any model loads.

A parameter's spec is a mapping with ``type`` — ``int``, ``float``, ``bool``, ``str``, ``model`` (a
model name :func:`shared.zoo.registry.check_model_name` accepts), ``sequence_task`` (a task of
:mod:`shared.tasks.sequences`), ``planted`` (a planted model) or ``list`` (with ``of``: the type of
its items) — and optionally ``min``/``max`` (inclusive; ``open_min: true`` makes the lower bound
exclusive), ``choices``, ``min_len``/``max_len`` for lists. The top-level ``parameters:`` table holds
the specs shared by all chapters; a chapter's own ``types:`` entry overrides them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from shared.errors import ParameterError
from shared.paths import REPO_ROOT
from shared.tasks.sequences import TASKS
from shared.zoo.planted import PLANTED
from shared.zoo.registry import check_model_name

REGISTRY = REPO_ROOT / "notebooks" / "chapters.yml"
PROFILES = ("local", "paper")


@dataclass
class ChapterEntry:
    """One registered chapter: its notebook, table-of-contents part, parameters and their types."""

    name: str
    notebook: Path
    part: str = ""
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    smoke: dict[str, Any] = field(default_factory=dict)
    types: dict[str, dict[str, Any]] = field(default_factory=dict)
    title: str = ""

    def spec(self, name: str) -> dict[str, Any]:
        if name not in self.types:
            raise ParameterError(f"Chapter {self.name!r} has no parameter {name!r}; its parameters are "
                                 f"{', '.join(self.types)}.")
        return self.types[name]


def _read(path: Optional[Path] = None) -> dict[str, Any]:
    return yaml.safe_load((path or REGISTRY).read_text()) or {}


def load_registry(path: Optional[Path] = None) -> dict[str, ChapterEntry]:
    """Every chapter of ``notebooks/chapters.yml`` (or ``path``), in book order."""
    data = _read(path)
    shared_types = data.get("parameters") or {}
    out: dict[str, ChapterEntry] = {}
    for entry in data.get("chapters") or []:
        if Path(entry["notebook"]).stem != entry["name"]:
            raise ParameterError(f"Chapter {entry['name']!r} must be named after its notebook {entry['notebook']!r}.")
        params = entry.get("params", {})
        names = list(dict.fromkeys([k for profile in params.values() for k in profile] + list(entry.get("smoke", {}))))
        types = {}
        for key in names:
            spec = (entry.get("types") or {}).get(key, shared_types.get(key))
            if spec is None:
                raise ParameterError(f"Parameter {key!r} of chapter {entry['name']!r} has no declared type in "
                                     f"notebooks/chapters.yml.")
            types[key] = {**shared_types.get(key, {}), **(entry.get("types") or {}).get(key, {})}
        out[entry["name"]] = ChapterEntry(entry["name"], REPO_ROOT / entry["notebook"], entry.get("part", ""),
                                          params, entry.get("smoke", {}), types, entry.get("title", ""))
    return out


def chapter_entry(name: str) -> Optional[ChapterEntry]:
    """The registered chapter ``name`` or ``None`` (a notebook run outside the registry)."""
    return load_registry().get(name)


# --------------------------------------------------------------------------------------------
# checking values against specs
# --------------------------------------------------------------------------------------------

_ARTICLE = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
            "model": "a model name", "sequence_task": "a sequence task name", "planted": "a planted model name",
            "list": "a list"}


def _range_text(spec: dict[str, Any]) -> str:
    lo, hi = spec.get("min"), spec.get("max")
    if lo is not None and hi is not None:
        if spec.get("open_min"):
            return f" in ({lo}, {hi}]"
        return f" from {lo} to {hi}"
    if lo is not None:
        return f" {'above' if spec.get('open_min') else 'of at least'} {lo}"
    if hi is not None:
        return f" of at most {hi}"
    return ""


def _fail(name: str, spec: dict[str, Any], value: Any) -> None:
    kind = spec.get("type", "str")
    text = _ARTICLE.get(kind, kind)
    if kind == "list":
        text = f"a list of {spec.get('of', 'str').replace('_', ' ')} values"
        bounds = [spec.get("min_len"), spec.get("max_len")]
        if bounds[0] is not None:
            text += f" with at least {bounds[0]} item{'s' if bounds[0] != 1 else ''}"
    raise ParameterError(f"{name} must be {text}{_range_text(spec)}, got {value!r}.")


def _known(kind: str) -> Optional[list[str]]:
    """The allowed values of the name-like types (``None``: any string is checked elsewhere)."""
    if kind == "sequence_task":
        return list(TASKS)
    if kind == "planted":
        return list(PLANTED)
    return None


def check_value(name: str, spec: dict[str, Any], value: Any) -> Any:
    """``value`` if it fits ``spec``; otherwise one :class:`ParameterError` sentence."""
    kind = spec.get("type", "str")
    if kind == "list":
        if not isinstance(value, (list, tuple)):
            _fail(name, spec, value)
        if len(value) < spec.get("min_len", 0) or len(value) > spec.get("max_len", 10 ** 9):
            _fail(name, spec, value)
        item = {"type": spec.get("of", "str"), **{k: v for k, v in spec.items() if k in ("min", "max", "choices")}}
        items = [check_value(name, item, v) for v in value]
        if spec.get("unique", True) and len(set(map(str, items))) != len(items):
            raise ParameterError(f"{name} repeats an item: {list(value)!r}.")
        return list(items)
    if kind == "bool":
        if not isinstance(value, bool):
            _fail(name, spec, value)
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(name, spec, value)
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(name, spec, value)
        value = float(value)
    elif not isinstance(value, str):
        _fail(name, spec, value)
    if kind in ("int", "float"):
        lo, hi = spec.get("min"), spec.get("max")
        if lo is not None and (value < lo or (spec.get("open_min") and value == lo)) or hi is not None and value > hi:
            _fail(name, spec, value)
    known = spec.get("choices") or _known(kind)
    if known is not None and value not in known:
        raise ParameterError(f"Unknown {kind.replace('_', ' ') if kind != 'str' else name} {value!r} for {name}; "
                             f"choose one of {', '.join(map(str, known))}.")
    if kind == "model":
        check_model_name(value)
    return value


def check_parameters(chapter: ChapterEntry, params: dict[str, Any]) -> dict[str, Any]:
    """Check every parameter of ``chapter`` against its declared spec; unknown names are refused."""
    return {key: check_value(key, chapter.spec(key), value) for key, value in params.items()}


__all__ = ["PROFILES", "REGISTRY", "ChapterEntry", "chapter_entry", "check_parameters", "check_value",
           "load_registry"]
