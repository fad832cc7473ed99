"""Content-keyed cache folders (models, tokenizers, results), written atomically and checked on load.

Each entry is ``<cache>/<kind>/<name>-<hash of its key>/`` with a ``key.json`` that records the key
and the sha256 of every file written (``"sha256"``). An entry is verified against those digests
the first time a process uses it; a damaged entry raises :class:`~shared.errors.CheckpointError`
naming the file and the fix. Retraining an entry that ships with the book writes the new entry to
the local cache (:func:`shared.paths.local_cache_dir`) instead of replacing the shipped one.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Optional

from shared.errors import CheckpointError
from shared.paths import cache_dir, is_shipped, local_cache_dir

_VERIFIED: set[Path] = set()


def config_key(obj: Any, length: int = 12) -> str:
    """Stable short hash of a JSON-serialisable object (dict keys sorted)."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def file_digests(folder: Path) -> dict[str, str]:
    """sha256 of every file below ``folder`` except ``key.json``, by relative path."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "key.json"}


def verify(folder: Path, kind: str = "entry") -> None:
    """Check every file recorded in ``folder/key.json`` against its sha256 (once per process).
    Entries written before digests were recorded are accepted as they are."""
    folder = Path(folder)
    if folder in _VERIFIED:
        return
    record = json.loads((folder / "key.json").read_text()) if (folder / "key.json").exists() else {}
    recorded = record.get("sha256", {}) if isinstance(record, dict) else {}
    for rel, digest in recorded.items():
        path = folder / rel
        problem = None
        if not path.is_file():
            problem = "is missing"
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problem = "does not match its recorded sha256 (corrupted or truncated)"
        if problem:
            fix = "call load_model(..., retrain=True)" if kind == "models" else "build it again"
            raise CheckpointError(f"The cached {kind[:-1] if kind.endswith('s') else kind} {folder.name!r} is "
                                  f"damaged: {rel} {problem}; delete the folder {folder} or {fix}.")
    _VERIFIED.add(folder)


def record_digests(folder: Path) -> None:
    """Add the sha256 of every file to an existing entry's ``key.json`` (for entries made before)."""
    key = json.loads((folder / "key.json").read_text())
    key["sha256"] = file_digests(folder)
    (folder / "key.json").write_text(json.dumps(key, sort_keys=True, indent=1, default=str))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_orphans(parent: Path) -> list[Path]:
    """Remove ``.tmp-*-<pid>`` folders in ``parent`` left by writers that are no longer running."""
    removed = []
    for tmp in parent.glob(".tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def cached_dir(kind: str, name: str, key_obj: dict[str, Any], build: Callable[[Path], None],
               rebuild: bool = False, folder: Optional[Path] = None) -> Path:
    """Return ``<cache>/<kind>/<name>-<hash(key_obj)>`` (``folder`` instead of ``<cache>/<kind>`` if
    given), building it first if missing.

    ``build(tmp)`` fills a temporary folder; it is renamed into place only when complete, so an
    interrupted build never leaves a half-written entry. ``key.json`` records the key and the sha256
    of every file. With ``rebuild``, an entry that ships with the book is rebuilt into the local
    cache instead, so the shipped files are never replaced.
    """
    final = (folder or cache_dir() / kind) / f"{name}-{config_key(key_obj)}"
    if final.exists() and not rebuild:
        verify(final, kind)
        return final
    if rebuild and final.exists() and is_shipped(final):
        final = local_cache_dir() / kind / final.name
        print(f"Rebuilding {name!r} into {final} (the shipped copy in shared/checkpoints stays as it is).")
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_orphans(final.parent)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        build(tmp)
        record = {**key_obj, "sha256": file_digests(tmp)}
        (tmp / "key.json").write_text(json.dumps(record, sort_keys=True, indent=1, default=str))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _VERIFIED.add(final)
    return final


__all__ = ["cached_dir", "clean_orphans", "config_key", "file_digests", "record_digests", "verify"]
