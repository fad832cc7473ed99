"""Real text available on every machine without a download: the Python standard library's sources.

Files are listed in sorted order and assigned to ``train`` or ``validation`` by a hash of their
relative path, so the split is deterministic and stable when files are added or removed.
"""
from __future__ import annotations

import hashlib
import os
import sysconfig
from pathlib import Path

from shared.errors import ParameterError

SPLITS = ("train", "validation")
_SKIP_DIRS = {"site-packages", "dist-packages", "test", "tests", "idlelib", "lib2to3", "__pycache__",
              "turtledemo", "ensurepip", "pydoc_data"}


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(split: str = "train", validation_share: float = 0.05) -> list[Path]:
    """Standard-library ``.py`` files of ``split`` (tests, IDLE and vendored code excluded)."""
    if split not in SPLITS:
        raise ParameterError(f"Unknown split {split!r}; choose one of {SPLITS}.")
    root = stdlib_root()
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS]
        found += [Path(folder) / n for n in names if n.endswith(".py") and not n.startswith("test_")]
    files = []
    for path in sorted(found):
        rel = path.relative_to(root)
        bucket = int(hashlib.sha256(rel.as_posix().encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        if (bucket < validation_share) == (split == "validation"):
            files.append(path)
    return files


def stdlib_text(split: str = "train", max_chars: int | None = None) -> list[str]:
    """Texts of the split's files (in sorted order), truncated to ``max_chars`` in total."""
    texts, total = [], 0
    for path in stdlib_files(split):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if max_chars is not None and total + len(text) > max_chars:
            text = text[: max_chars - total]
        texts.append(text)
        total += len(text)
        if max_chars is not None and total >= max_chars:
            break
    return texts


__all__ = ["SPLITS", "stdlib_files", "stdlib_root", "stdlib_text"]
