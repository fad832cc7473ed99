"""The build key: what a chapter's executed notebook depends on. A chapter re-executes only when one
of these parts changes:

* ``notebook`` — the chapter's ``.py`` source;
* ``parameters`` — the parameters it runs with, and the registered parameters of the chapters it
  ``reads:`` (a closing page that reads its siblings' results with their parameters);
* ``code`` — the ``shared`` modules its notebook imports, followed transitively
  (:mod:`shared.sources`; comments and layout do not count);
* ``models`` — the checkpoint files of the local zoo models its parameters name (``model_name``,
  ``*_model_name``, ``compare_with``, ``models``), hashed by content once per run, and, for a chapter
  that imports :mod:`shared.zoo.pilots`, the committed training records it reads (pilot records and the
  ``progress.json`` of the suite's runs in progress);
* ``config`` — the settings of ``_config.yml`` that reach an executed notebook (``repository``, from
  which the Colab badge is made); the rest only affects rendering, which is redone on every build;
* ``packages`` — the installed versions of torch and transformer-lens.

The key and its parts are stored in the executed notebook's metadata, so the build can say which
part changed. Each run of a chapter (:mod:`shared.build.runs`) has its own page and so its own key:
its parameters differ, and adding a run executes only that run.
"""
from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Optional

import yaml

from shared.build.layout import Layout
from shared.build.runs import chapter_runs, registry_runs
from shared.chapters.registry import ChapterEntry, load_registry
from shared.sources import file_closure, source_digest
from shared.zoo.pilots import RECORDS, progress_files
from shared.zoo.registry import local_model_dir, local_models

PACKAGES = ("torch", "transformer-lens")
MODEL_PARAMETERS = ("model_name", "compare_with", "models")  # and every ``*_model_name``
PARTS = ("notebook", "parameters", "code", "models", "config", "packages")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json_sha(obj: Any) -> str:
    return _sha(json.dumps(obj, sort_keys=True, default=str).encode())


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str]:
    """Installed version of each distribution (``"missing"`` when it is not installed)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def model_names(params: dict[str, Any]) -> list[str]:
    """The local zoo models named by the model parameters in ``params`` (pretrained and planted
    names are left out: their weights are not files of this repository)."""
    local = local_models()
    names: list[str] = []
    for key, value in params.items():
        if key in MODEL_PARAMETERS or key.endswith("_model_name"):
            for name in value if isinstance(value, list) else [value]:
                if isinstance(name, str) and name in local and name not in names:
                    names.append(name)
    return names


_FOLDER_DIGESTS: dict[str, str] = {}


def folder_digest(folder: Path) -> str:
    """SHA-256 over every file under ``folder`` (relative path and content), cached for this run."""
    folder = Path(folder)
    if str(folder) not in _FOLDER_DIGESTS:
        digest = hashlib.sha256()
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            digest.update(b"\0")
        _FOLDER_DIGESTS[str(folder)] = digest.hexdigest()
    return _FOLDER_DIGESTS[str(folder)]


def model_digest(name: str) -> str:
    """Content hash of a local model's cache folder (weights, saved steps, config, metrics). A model
    missing from the cache is trained first, as the chapter would do."""
    return folder_digest(local_model_dir(name))


def records_digest(modules: Iterable[Path]) -> dict[str, str]:
    """Digest of the training records read through :mod:`shared.zoo.pilots`, if ``modules`` include it."""
    if not any(Path(m).as_posix().endswith("shared/zoo/pilots.py") for m in modules):
        return {}
    files = sorted(RECORDS.glob("*.json")) + progress_files()
    return {"training records": _json_sha({p.name if p.parent == RECORDS else p.parent.name: _sha(p.read_bytes())
                                           for p in files})}


EXECUTION_SETTINGS = ("repository",)  # the parts of _config.yml an executed notebook depends on


def config_digest(config: Path) -> str:
    """Hash of the settings in ``config`` (``_config.yml``) that reach an executed notebook."""
    if not config.exists():
        return ""
    settings = yaml.safe_load(config.read_text()) or {}
    return _json_sha({key: settings.get(key) for key in EXECUTION_SETTINGS})


def _read_parameters(chapter: ChapterEntry, layout: Layout) -> dict[str, Any]:
    """The registered parameters (every profile and the smoke set) of the chapters ``chapter`` reads."""
    registry = load_registry(layout.registry, layout.root)
    return {name: {"params": registry[name].params, "smoke": registry[name].smoke} for name in chapter.reads}


def key_parts(chapter: ChapterEntry, params: dict[str, Any], layout: Layout) -> dict[str, str]:
    """The hash of each part of ``chapter``'s build key (see the module docstring). Models are looked
    up in the parameters the notebook actually runs with: its defaults with ``params`` over them."""
    modules = file_closure(chapter.notebook, layout.root)
    effective = {**chapter.declared, **params}
    return {
        "notebook": _sha(chapter.notebook.read_bytes()),
        "parameters": _json_sha(params if not chapter.reads else {**params, "reads": _read_parameters(chapter, layout)}),
        "code": source_digest(modules, layout.root),
        "models": _json_sha({**{name: model_digest(name) for name in model_names(effective)},
                             **records_digest(modules)}),
        "config": config_digest(layout.config),
        "packages": _json_sha(package_versions()),
    }


def build_key(parts: dict[str, str]) -> str:
    """One short key from the parts."""
    return _json_sha(parts)[:20]


def stored_metadata(path: Path) -> dict[str, Any]:
    """The build's metadata in an executed notebook (empty when missing or unreadable)."""
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text()).get("metadata", {}).get("circuits_book", {}) or {}
    except (OSError, json.JSONDecodeError):
        return {}


def stored_key(path: Path) -> Optional[str]:
    """The build key stored in an executed notebook, or ``None``."""
    return stored_metadata(path).get("build_key")


def changed_parts(old: dict[str, Any], parts: dict[str, str]) -> list[str]:
    """Which parts differ from those stored in ``old`` (all of them when none were stored)."""
    before = old.get("key_parts") or {}
    return [name for name in PARTS if before.get(name) != parts.get(name)]


def stale_pages(chapters: Iterable[ChapterEntry], layout: Layout) -> dict[str, str]:
    """The executed pages in ``layout.book`` (each chapter's page and those of its runs, by page
    name) that no longer match their sources, each with the reason: the build key recomputed with
    the parameters the page ran with differs from the stored one (its notebook, code, models, config
    or packages changed since, or it was stored by an older build), or whose last execution with the
    same key failed (``_build/failed/``). Pages not executed yet are not listed (the HTML leaves
    them out)."""
    stale = {}
    table = registry_runs(layout.registry)
    for chapter in chapters:
        for page in (run.page for run in chapter_runs(chapter.name, table)):
            output = layout.output(page)
            if not output.exists():
                continue
            meta = stored_metadata(output)
            if not meta.get("key_parts") or "parameters" not in meta:
                stale[page] = "stored by an older build"
                continue
            parts = key_parts(chapter, meta["parameters"], layout)
            if build_key(parts) != meta.get("build_key"):
                stale[page] = "changed: " + (", ".join(changed_parts(meta, parts)) or "build key")
            elif stored_key(layout.failed(page)) == meta.get("build_key"):
                stale[page] = "its last execution, with these very inputs, failed"
    return stale


__all__ = ["EXECUTION_SETTINGS", "MODEL_PARAMETERS", "PACKAGES", "PARTS", "build_key", "changed_parts",
           "config_digest", "folder_digest", "key_parts", "model_digest", "model_names", "package_versions",
           "stale_pages", "stored_key", "stored_metadata"]
