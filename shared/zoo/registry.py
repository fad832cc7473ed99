"""The model zoo: one ``load_model`` for self-trained toy models, local HF folders and hub models.

* Local toy models are registered with :func:`register_local_model` (by the chapter modules listed
  in ``ZOO_MODULES``). They are trained on first use, seeded, and cached on disk as safetensors
  under a folder keyed by a hash of their full config and training recipe.
* A path to a Hugging Face model folder loads through ``TransformerBridge.boot_transformers``.
* A pretrained hub name (``gpt2-small``, ``pythia-160m``, any ``org/name``) loads through the same
  call; offline this raises :class:`ModelUnavailableError` naming the parameter to change.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from safetensors.torch import load_file, save_file

from shared.zoo.cache import cached_dir, config_key
from shared.zoo.gqa import ungroup_kv_heads
from shared.errors import ModelUnavailableError, ParameterError, UnknownModelError
from shared.paths import revision_folder

# Modules whose import registers local models (kept lazy: importing them may be slow).
ZOO_MODULES: tuple[str, ...] = (
    "shared.zoo.attn_only",
    "shared.zoo.lists",
    "shared.zoo.seq_lm",
    "shared.zoo.suite", "shared.zoo.families",
    "shared.zoo.compiled",  # Tracr-compiled programs (compiling again needs tracr)
)

# Friendly names for pretrained hub models used in the papers the book follows.
PRETRAINED: dict[str, str] = {
    "gpt2-small": "gpt2",
    "gpt2": "gpt2",
    "gpt2-medium": "gpt2-medium",
    "pythia-70m": "EleutherAI/pythia-70m",
    "pythia-160m": "EleutherAI/pythia-160m",
    "pythia-410m": "EleutherAI/pythia-410m",
    "pythia-1.4b": "EleutherAI/pythia-1.4b",
    "llama-2-7b": "meta-llama/Llama-2-7b-hf",
    "attn-only-1l-pretrained": "NeelNanda/Attn_Only_1L512W_C4_Code",
    "attn-only-2l-pretrained": "NeelNanda/Attn_Only_2L512W_C4_Code",
    "pythia-70m-seed1": "EleutherAI/pythia-70m-seed1",
    "pythia-160m-seed1": "EleutherAI/pythia-160m-seed1",
}

# ------------------------------------------------- pretrained counterparts of the local suite
# The `paper` profile runs the chapters built on the local suite (shared/zoo/suite.py) on Pythia
# models of the same rank. Given one of these Pythia names, `step=` counts steps of the local suite's
# schedule and loads the Pythia revision at the same fraction of training (nearest saved one);
# `revision=` still names a Pythia revision directly. Pythia's seed variants change both the initial
# weights and the data order (the suite's seeds change only the weights).
SUITE_PRETRAINED: dict[str, str] = {
    "suite-s-s0": "pythia-70m", "suite-s-s1": "pythia-70m-seed1",
    "suite-m-s0": "pythia-160m", "suite-m-s1": "pythia-160m-seed1",
    "suite-l-s0": "pythia-410m",
}
# Pythia's saved revisions: step0, powers of two up to 512, then every 1000 steps to the end.
PYTHIA_STEPS: tuple[int, ...] = (0,) + tuple(2 ** k for k in range(10)) + tuple(range(1000, 143_001, 1000))


def pythia_revision(step: int, total: int) -> str:
    """The Pythia revision nearest to ``step / total`` of its training, e.g. ``"step18000"``."""
    target = step / total * PYTHIA_STEPS[-1]
    return f"step{min(PYTHIA_STEPS, key=lambda s: (abs(s - target), s))}"


def _counterpart_revision(name: str, step: Optional[int], revision: Optional[str]) -> Optional[str]:
    """``revision`` for a pretrained ``name``, or the one ``step`` maps to for a suite counterpart."""
    if step is None:
        return revision
    suites = [suite for suite, pretrained in SUITE_PRETRAINED.items() if pretrained == name]
    if not suites:
        raise ParameterError(f"step= applies to local models and to the suite's pretrained counterparts "
                             f"({', '.join(sorted(set(SUITE_PRETRAINED.values())))}); for {name!r} pass "
                             f"revision='stepN' instead.")
    if revision is not None:
        raise ParameterError(f"Give step= or revision= for {name!r}, not both.")
    total = local_models()[suites[0]].recipe["steps"]
    if not 0 <= step <= total:
        raise ParameterError(f"step counts the local suite's training steps (0 to {total}) for {name!r}; "
                             f"got {step}.")
    return pythia_revision(step, total)
# ------------------------------------------------------------------------------------------------


@dataclass
class Checkpoints:
    """Handed to a trainer: saves intermediate weights as ``steps/step_XXXXXXX.safetensors``."""

    folder: Path
    bridge: Any
    saved: list[int] = field(default_factory=list)
    dtype: Optional[torch.dtype] = None  # e.g. torch.float16: files half the size (training stays float32)

    def save(self, step: int) -> None:
        (self.folder / "steps").mkdir(exist_ok=True)
        save_file(_weights(self.bridge, self.dtype), str(self.folder / "steps" / f"step_{step:07d}.safetensors"))
        self.saved.append(step)


@dataclass(frozen=True)
class LocalModel:
    """A self-trained model: native config, training recipe and the functions that build it.

    ``trainer(bridge, recipe, checkpoints) -> metrics`` trains the freshly booted bridge in place.
    ``tokenizer(recipe) -> tokenizer | None`` returns the (cached) tokenizer, or ``None`` for models
    that take raw token ids. With ``build_folder(config, recipe, folder) -> metrics`` instead of a
    trainer, the model is a Hugging Face folder (weights and tokenizer) booted like a pretrained one.
    """

    name: str
    description: str
    config: dict[str, Any]
    recipe: dict[str, Any]
    trainer: Callable[[Any, dict[str, Any], Checkpoints], dict[str, Any]]
    tokenizer: Optional[Callable[[dict[str, Any]], Any]] = None
    version: int = 1  # bump when the trainer's code changes meaningfully
    save_dtype: Optional[torch.dtype] = None  # dtype of the saved files (None: as trained)
    build_folder: Optional[Callable[[dict[str, Any], dict[str, Any], Path], dict[str, Any]]] = None
    cache_name: Optional[str] = None  # the name in its cache key and folder, when it differs from ``name``

    def cache_key(self, config: Optional[dict[str, Any]] = None, recipe: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        """The key of its cache folder (``<cache name>-<hash of this key>``) for these settings (default: its own)."""
        return {"name": self.cache_name or self.name, "version": self.version,
                "config": self.config if config is None else config, "recipe": self.recipe if recipe is None else recipe}


_LOCAL: dict[str, LocalModel] = {}
_zoo_loaded = False


def register_local_model(spec: LocalModel) -> LocalModel:
    _LOCAL[spec.name] = spec
    return spec


def local_models() -> dict[str, LocalModel]:
    """All registered local models, importing the zoo modules on first call."""
    global _zoo_loaded
    if not _zoo_loaded:
        for module in ZOO_MODULES:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as err:  # a chapter module not written yet
                if err.name != module:
                    raise
        _zoo_loaded = True
    return _LOCAL


def _weights(bridge: Any, dtype: Optional[torch.dtype] = None) -> dict[str, torch.Tensor]:
    """The model's tensors (cast to ``dtype`` if given), each stored once (the bridge names some
    tensors several times)."""
    seen: set[int] = set()
    out = {}
    for key, value in bridge.original_model.state_dict().items():
        if value.data_ptr() not in seen:
            seen.add(value.data_ptr())
            cast = dtype is not None and value.is_floating_point()
            out[key] = (value.detach().to(dtype) if cast else value.detach()).contiguous().clone()
    return out


def _with_aliases(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Fill in state-dict keys that name the same tensor as a stored key (files may store each once)."""
    own = module.state_dict()
    stored = {own[k].data_ptr(): k for k in state if k in own}
    for key, value in own.items():
        if key not in state and value.data_ptr() in stored:
            state[key] = state[stored[value.data_ptr()]]
    return state


def _type_name(value: Any) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


def _check_override(spec: LocalModel, key: str, default: Any, value: Any) -> None:
    """One sentence if an override's type differs from the setting's default (before any training)."""
    if default is None or value is None:
        return
    ok = isinstance(value, type(default)) and not (isinstance(value, bool) and not isinstance(default, bool))
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if isinstance(default, (list, tuple)) and isinstance(value, (list, tuple)):
        ok = True
    if not ok:
        raise ParameterError(f"Setting {key!r} of model {spec.name!r} must be {_type_name(default)} like "
                             f"{default!r}, got {value!r}.")


def _split_overrides(spec: LocalModel, overrides: dict[str, Any]) -> tuple[dict, dict]:
    config, recipe = dict(spec.config), dict(spec.recipe)
    for key, value in overrides.items():
        if key in recipe:
            _check_override(spec, key, recipe[key], value)
            recipe[key] = value
        elif key in config or key in _native_config_fields():
            _check_override(spec, key, config.get(key), value)
            config[key] = value
        else:
            raise ParameterError(f"Model {spec.name!r} has no setting {key!r}; its settings are "
                                 f"{sorted(set(config) | set(recipe))}.")
    return config, recipe


def _native_config_fields() -> set[str]:
    from transformer_lens.config import TransformerBridgeConfig

    return {f.name for f in dataclasses.fields(TransformerBridgeConfig)}


def boot_native(config: dict[str, Any], tokenizer: Any = None, device: str = "cpu",
                dtype: Optional[torch.dtype] = None):
    """Build a TransformerLens-native bridge (random weights, seeded by ``config['seed']``)."""
    import transformer_lens.model_bridge.sources.native  # noqa: F401  (attaches boot_native)
    from transformer_lens.model_bridge import TransformerBridge

    return TransformerBridge.boot_native(dict(config), tokenizer=tokenizer, device=device, dtype=dtype)


def local_model_dir(name: str, **overrides: Any) -> Path:
    """Cache folder of a local model (trains it first if needed)."""
    return _local_entry(name, overrides, retrain=False)[0]


def _drop_final_step_copy(folder: Path, metrics: dict[str, Any]) -> None:
    """Remove the last checkpoint file when it is byte-identical to ``model.safetensors`` (the final
    weights are then stored once) and record its step as ``metrics["final_step"]``."""
    steps = sorted((folder / "steps").glob("step_*.safetensors"))
    if steps and steps[-1].read_bytes() == (folder / "model.safetensors").read_bytes():
        metrics["final_step"] = int(steps[-1].stem.split("_")[1])
        steps[-1].unlink()


def _local_entry(name: str, overrides: dict[str, Any], retrain: bool) -> tuple[Path, LocalModel, dict, dict]:
    spec = local_models()[name]
    config, recipe = _split_overrides(spec, overrides)
    key = spec.cache_key(config, recipe)

    def build(tmp: Path) -> Any:
        if spec.build_folder is not None:
            start = time.time()
            metrics = dict(spec.build_folder(config, recipe, tmp), train_seconds=round(time.time() - start, 1))
            return (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1, sort_keys=True, default=float))
        tokenizer = spec.tokenizer(recipe) if spec.tokenizer else None
        torch.manual_seed(int(recipe.get("seed", config.get("seed", 0))))
        bridge = boot_native(config, tokenizer=tokenizer)
        start = time.time()
        metrics = spec.trainer(bridge, recipe, Checkpoints(tmp, bridge, dtype=spec.save_dtype))
        metrics["train_seconds"] = round(time.time() - start, 1)
        save_file(_weights(bridge, spec.save_dtype), str(tmp / "model.safetensors"))
        _drop_final_step_copy(tmp, metrics)
        (tmp / "config.json").write_text(json.dumps(config, indent=1, sort_keys=True))
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1, sort_keys=True, default=float))

    folder = cached_dir("models", key["name"], key, build, rebuild=retrain)
    return folder, spec, config, recipe


def checkpoint_steps(name: str, **overrides: Any) -> list[int]:
    """Training steps at which intermediate weights of a local model were saved."""
    folder = local_model_dir(name, **overrides)
    saved = {int(p.stem.split("_")[1]) for p in (folder / "steps").glob("step_*.safetensors")}
    final = json.loads((folder / "metrics.json").read_text()).get("final_step")
    return sorted(saved | ({final} if final is not None else set()))


def model_metrics(name: str, **overrides: Any) -> dict[str, Any]:
    """Training metrics (validation loss, accuracy, time) recorded when a local model was trained."""
    return json.loads((local_model_dir(name, **overrides) / "metrics.json").read_text())


def load_model(name: str, *, step: Optional[int] = None, retrain: bool = False,
               device: str = "cpu", revision: Optional[str] = None, ungroup_kv: bool = False, **overrides: Any):
    """Return a TransformerLens 4 ``TransformerBridge`` for ``name``.

    ``name`` is a registered local model (``overrides`` change its config or recipe and so its
    cache key; ``step`` picks an intermediate checkpoint; ``retrain`` forces training), a path to a
    Hugging Face model folder, or a pretrained hub name (``revision`` selects a training
    checkpoint, e.g. ``"step1000"`` for Pythia). ``ungroup_kv`` gives every query head of a
    grouped-query-attention model its own copy of its group's key/value weights (the outputs do not
    change; edge-level methods need it); it does nothing to other models.
    """
    if not isinstance(name, (str, Path)) or not str(name):
        raise ParameterError(f"The model name must be a non-empty string, got {name!r}.")
    name = str(name)
    if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
        raise ParameterError(f"step must be an integer training step, got {step!r}.")
    if name in local_models():
        folder, spec, config, recipe = _local_entry(name, overrides, retrain)
        if spec.build_folder is not None:
            if step is not None:  # only the final weights are kept
                raise ParameterError(f"Model {name!r} has no checkpoints but its final weights; leave step unset.")
            bridge = _boot_hf(str(folder), device=device, revision=None, ungroup_kv=ungroup_kv)
            _label(bridge, name, f"local {spec.description}, cache {folder.name}" + _ungrouped_note(bridge))
            return bridge
        tokenizer = spec.tokenizer(recipe) if spec.tokenizer else None
        bridge = boot_native(config, tokenizer=tokenizer, device=device)
        weights = folder / "model.safetensors"
        if step is not None:
            weights = folder / "steps" / f"step_{step:07d}.safetensors"
            if not weights.exists() and step == json.loads((folder / "metrics.json").read_text()).get("final_step"):
                weights = folder / "model.safetensors"  # the last checkpoint is the final weights, stored once
            if not weights.exists():
                raise ParameterError(
                    f"Model {name!r} has no checkpoint at step {step}; saved steps are "
                    f"{checkpoint_steps(name, **overrides)}."
                )
        bridge.original_model.load_state_dict(
            _with_aliases(bridge.original_model, load_file(str(weights), device=device)))
        bridge.eval()
        _label(bridge, name, f"local toy model {name!r} ({spec.description}), cache {folder.name}"
               + (f", checkpoint step {step}" if step is not None else ""))
        return bridge
    if overrides:
        raise ParameterError(f"Settings {sorted(overrides)} only apply to local models, not {name!r}.")
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise UnknownModelError(f"Folder {str(path)!r} is not a Hugging Face model (no config.json).")
        bridge = _boot_hf(str(path), device=device, revision=None, ungroup_kv=ungroup_kv)
        _label(bridge, name, f"Hugging Face model folder {str(path)!r}" + _ungrouped_note(bridge))
        return bridge
    if name in PRETRAINED or "/" in name:
        hub_id = PRETRAINED.get(name, name)
        revision = _counterpart_revision(name, step, revision)
        mirror = revision_folder(hub_id, revision)  # a local copy of that revision, if one is kept
        bridge = _boot_hf(str(mirror or hub_id), device=device, revision=None if mirror else revision,
                          ungroup_kv=ungroup_kv)
        _label(bridge, name, f"pretrained {hub_id!r}" + (f" at revision {revision}" if revision else "")
               + _ungrouped_note(bridge))
        return bridge
    check_model_name(name)
    raise AssertionError("unreachable")


def check_model_name(name: str) -> None:
    """Raise :class:`UnknownModelError` unless ``name`` is a local, pretrained or folder model."""
    if not isinstance(name, str) or not name:
        raise ParameterError(f"The model name must be a non-empty string, got {name!r}.")
    if name in local_models() or name in PRETRAINED or "/" in name or Path(name).expanduser().is_dir():
        return
    raise UnknownModelError(f"Unknown model {name!r}: use a local model ({', '.join(sorted(local_models())) or 'none'}), "
                            f"a pretrained name ({', '.join(sorted(PRETRAINED))}), a hub id 'org/name' or a model folder.")


def _boot_hf(name_or_dir: str, device: str, revision: Optional[str], ungroup_kv: bool = False):
    from transformer_lens.model_bridge import TransformerBridge

    try:
        if not ungroup_kv:
            return TransformerBridge.boot_transformers(name_or_dir, device=device, revision=revision)
        from transformers import AutoModelForCausalLM
        hf_model = AutoModelForCausalLM.from_pretrained(name_or_dir, revision=revision, attn_implementation="eager",
                                                        dtype=torch.float32)  # float16 folders too
        groups = ungroup_kv_heads(hf_model)
        bridge = TransformerBridge.boot_transformers(name_or_dir, hf_model=hf_model, device=device, revision=revision)
        bridge._book_ungrouped_from = groups
        return bridge
    except (OSError, ConnectionError, TimeoutError) as err:
        if Path(name_or_dir).is_dir():
            raise
        raise ModelUnavailableError(
            f"Pretrained model {name_or_dir!r} cannot be downloaded here (no internet access and not in "
            f"the local Hugging Face cache); set the notebook parameter `model_name` to a local model "
            f"such as one of {sorted(local_models())}."
        ) from err


def _ungrouped_note(bridge: Any) -> str:
    kv = getattr(bridge, "_book_ungrouped_from", None)
    return f", its {kv} key/value heads ungrouped to one per query head (same outputs)" if kv else ""


def _label(bridge: Any, name: str, description: str) -> None:
    bridge.book_model_name = name
    bridge.book_model_description = description


def describe(bridge: Any) -> str:
    """One line naming the model a notebook ran on and its shape."""
    cfg = bridge.cfg
    shape = (f"{cfg.n_layers} layers, {cfg.n_heads} heads/layer, d_model {cfg.d_model}, "
             f"vocab {cfg.d_vocab}, {'attention-only' if cfg.attn_only else 'with MLPs'}")
    return f"{getattr(bridge, 'book_model_description', getattr(cfg, 'model_name', '?'))} — {shape}"


__all__ = ["PRETRAINED", "PYTHIA_STEPS", "SUITE_PRETRAINED", "ZOO_MODULES", "Checkpoints", "LocalModel", "boot_native", "check_model_name", "checkpoint_steps", "describe", "load_model", "local_model_dir", "local_models", "model_metrics", "pythia_revision", "register_local_model", "ungroup_kv_heads"]
