"""Content-keyed, atomically written cache folders (models, tokenizers, datasets)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from shared.paths import cache_dir


def config_key(obj: Any, length: int = 12) -> str:
    """Stable short hash of a JSON-serialisable object (dict keys sorted)."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def cached_dir(kind: str, name: str, key_obj: Any, build: Callable[[Path], None],
               rebuild: bool = False) -> Path:
    """Return ``<cache>/<kind>/<name>-<hash(key_obj)>``, building it first if missing.

    ``build(tmp)`` fills a temporary folder; it is renamed into place only when complete, so an
    interrupted build never leaves a half-written entry. ``key.json`` records what was hashed.
    """
    final = cache_dir() / kind / f"{name}-{config_key(key_obj)}"
    if final.exists() and not rebuild:
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        build(tmp)
        (tmp / "key.json").write_text(json.dumps(key_obj, sort_keys=True, indent=1, default=str))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


__all__ = ["cached_dir", "config_key"]
