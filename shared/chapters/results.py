"""Results a chapter computes once and reuses: stored as JSON in the results cache
(:func:`shared.paths.results_dir`: ``~/.cache/circuits-book/results/<kind>-<hash>/result.json``, outside
the shipped ``shared/checkpoints``), keyed by the model, the parameters and
the code that computes them.

The code part of the key is the digest (:func:`shared.sources.source_digest`) of the module that
calls :func:`cached_json` and every ``shared`` module it imports, transitively — the same rule the
book build uses for chapters — so an edit elsewhere in ``shared`` does not throw the cache away,
and an edit to code the result depends on always does.
"""
from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from shared.paths import results_dir
from shared.sources import PACKAGE, module_closure, source_digest
from shared.zoo.cache import cached_dir


def model_key(bridge: Any) -> dict[str, Any]:
    """What identifies a model for result caching: its book name and description (which holds
    the local cache folder, itself a hash of config and recipe). A mapping is taken as the key itself
    (``model`` and ``description``), so a cached result can be looked up without loading the model."""
    if isinstance(bridge, Mapping):
        return {"model": bridge["model"], "description": bridge["description"]}
    return {"model": getattr(bridge, "book_model_name", getattr(bridge.cfg, "model_name", "?")),
            "description": getattr(bridge, "book_model_description", "")}


@lru_cache(maxsize=None)
def code_key(module: str) -> str:
    """Digest of ``module`` and the ``shared`` modules it imports, transitively (once per process)."""
    return source_digest(module_closure([module]))


def _caller_module(depth: int) -> str:
    name = sys._getframe(depth + 1).f_globals.get("__name__", "")
    if name == PACKAGE or name.startswith(PACKAGE + "."):
        return name
    return __name__  # a notebook or script: only this module's own imports can be followed


def cached_json(kind: str, bridge: Any, params: Mapping[str, Any], compute: Callable[[], Any],
                module: Optional[str] = None) -> Any:
    """``compute()`` once per model, ``params`` and version of the code, stored as JSON.

    ``module`` (default: the calling module) names the code the result depends on: its source and
    that of every ``shared`` module it imports key the cache entry. Call it from a ``shared``
    module, where ``compute`` is defined; code defined in a notebook is not part of the key.
    """
    code = code_key(module or _caller_module(1))

    def build(tmp: Path) -> None:
        (tmp / "result.json").write_text(json.dumps(compute(), indent=1, default=float))

    key = {**model_key(bridge), **dict(params), "code": code[:16]}
    folder = cached_dir("results", kind, key, build, folder=results_dir())
    return json.loads((folder / "result.json").read_text())


__all__ = ["cached_json", "code_key", "model_key"]
