"""The local model suite ``suite-<size>-s<seed>``: GPT-2-style language models of three sizes, trained alike.

Like Pythia on a small scale: every model reads the same generated documents in the same order
(:mod:`shared.zoo.text.suite_corpus`, data seed 0) with one shared byte-level BPE tokenizer, for the
same number of steps; the seed changes only the initial weights. Checkpoints are saved at step 0, at
powers of two from 2, then every ``linear_every`` steps (log-spaced early, linear late), as float16 files;
for each one ``metrics.json`` records step, tokens seen, training loss (mean of the steps since the
previous checkpoint) and validation loss (fixed batches from a part of the stream training never
reaches). Abilities are measured by ``python -m shared.zoo.suite_report`` on held-out forms only.

=====  ======  =======  ==========  ====================  =====  =============
size   layers  d_model  heads       non-embedding params  lr     seeds
=====  ======  =======  ==========  ====================  =====  =============
s      2       64       2 of d 32   99 k                  3e-3   0, 1
m      3       96       3 of d 32   333 k                 2.5e-3 0, 1
l      4       128      4 of d 32   790 k                 2e-3   0
=====  ======  =======  ==========  ====================  =====  =============

All: MLP width 4 x d_model, GELU, LayerNorm, learned positions, context 128, vocabulary 2048,
batch 32 x 128 tokens, 1600 steps (6.6 M tokens), AdamW with 100 warmup steps and a cosine decay.
In 15% of the rows (seeded per step) the text is replaced by BOS and a span of random tokens repeated
to the end of the row: without them no induction head formed within 600 steps (prefix matching
0.01 on repeated random tokens at 2.5 M tokens, with heads of width 16 and repeats only in the text).
"""
from __future__ import annotations

import dataclasses
import os
import platform
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from shared.errors import ParameterError
from shared.paths import cache_dir
from shared.zoo.cache import config_key
from shared.zoo.registry import Checkpoints, LocalModel, local_models, register_local_model
from shared.zoo.text.suite_corpus import DEFAULT_MIX, step_batch, suite_tokenizer
from shared.zoo.train import evaluate_loss, train_loop

SIZES: dict[str, dict[str, Any]] = {
    "s": dict(n_layers=2, d_model=64, n_heads=2, d_head=32, lr=3e-3),
    "m": dict(n_layers=3, d_model=96, n_heads=3, d_head=32, lr=2.5e-3),
    "l": dict(n_layers=4, d_model=128, n_heads=4, d_head=32, lr=2e-3),
}
SEEDS: dict[str, tuple[int, ...]] = {"s": (0, 1), "m": (0, 1), "l": (0,)}
BASE_CONFIG = dict(d_vocab=2048, n_ctx=128, attn_only=False, act_fn="gelu", normalization_type="LN",
                   positional_embedding_type="standard")
RECIPE = dict(steps=1600, batch_size=32, warmup=100, linear_every=200, data_seed=0, vocab_size=2048,
              val_batches=8, mix=dict(DEFAULT_MIX), random_share=0.15)
# Version 3, trained for hours by ``python -m shared.zoo.train_suite`` (resumable): dense IOI scenes
# (document kind "ioi"), a warmup-stable-decay schedule and four times the tokens and more.
SUITE_MIX = {"sequence": 0.2, "story": 0.12, "ioi": 0.33, "years": 0.17, "prose": 0.08, "repeat": 0.1}
RECIPE_V3 = dict(RECIPE, steps=8000, warmup=200, schedule="wsd", decay_share=0.2, linear_every=250, probe_every=250,
                 mix=SUITE_MIX)
RECIPES = {2: RECIPE, 3: RECIPE_V3}
# The checkpoints of version 3 that are committed and shipped (24 of the 40 saved): log-spaced early, every
# 250 steps where the pilots saw induction and IOI appear (1 to 3.5 k steps), sparser late. The others
# stay in the local cache (the shipped-size budget, README "Training the suite").
SHIPPED_STEPS_V3 = (0, 2, 8, 32, 128, 250, 500, 750, 1000, 1250, 1500, 1750, 2000, 2250, 2500, 2750, 3000, 3500,
                    4000, 5000, 6000, 6500, 7000, 8000)
REGISTERED_VERSION = 2  # what load_model("suite-...") serves: the shipped models of this version
VALIDATION_OFFSET = 10 ** 9  # validation batches are stream steps 10^9, 10^9 + 1, ...: never trained on
DEFAULT_MODEL = "suite-l-s0"


def suite_name(size: str, seed: int) -> str:
    return f"suite-{size}-s{seed}"


def suite_names() -> list[str]:
    """Every model of the suite, smallest first."""
    return [suite_name(size, seed) for size in SIZES for seed in SEEDS[size]]


def trained_folder(name: str) -> Optional[Path]:
    """The cache folder of local model ``name`` (default settings) if it is trained, else None; never trains."""
    key = local_models()[name].cache_key()
    folder = cache_dir() / "models" / f"{key['name']}-{config_key(key)}"
    return folder if (folder / "model.safetensors").exists() else None


def checkpoint_schedule(steps: int, linear_every: int) -> list[int]:
    """Step 0, the powers of two from 2 below ``linear_every``, then every ``linear_every`` steps up to
    ``steps`` (16 checkpoints for the suite's recipe)."""
    if steps < 1 or linear_every < 1:
        raise ParameterError(f"steps and linear_every must be positive, got {steps} and {linear_every}.")
    early = [0] + [2 ** k for k in range(1, 32) if 2 ** k < min(linear_every, steps)]
    return sorted(set(early + list(range(linear_every, steps + 1, linear_every)) + [steps]))


def _tokenizer(recipe: dict[str, Any]) -> Any:
    return suite_tokenizer(vocab_size=recipe["vocab_size"])


def batches(tokenizer: Any, recipe: dict[str, Any], n_ctx: int):
    """``batch(step) -> (tokens, None)`` of the recipe's stream, as :func:`train_loop` expects."""
    def batch(step: int) -> tuple[torch.Tensor, None]:
        share = recipe.get("random_share_early", recipe["random_share"]) if step < recipe.get("early_steps", 0) \
            else recipe["random_share"]
        return step_batch(tokenizer, step, recipe["batch_size"], n_ctx, recipe["data_seed"], recipe["mix"],
                          share), None
    return batch


def validation_batches(tokenizer: Any, recipe: dict[str, Any], n_ctx: int) -> list[tuple[torch.Tensor, None]]:
    batch = batches(tokenizer, recipe, n_ctx)
    return [batch(VALIDATION_OFFSET + i) for i in range(recipe["val_batches"])]


def pretrain(bridge: Any, recipe: dict[str, Any], checkpoints: Optional[Checkpoints] = None,
             steps: Optional[int] = None, desc: str = "suite") -> dict[str, Any]:
    """Train ``bridge`` on the recipe's stream, saving and logging every scheduled checkpoint.

    ``steps`` (default: the recipe's) stops early with the same learning-rate schedule as long as
    it stays within the warmup, which is how the tests retrain the first checkpoints.
    """
    total = recipe["steps"] if steps is None else steps
    if steps is not None and steps > min(recipe["warmup"], recipe["steps"]):
        raise ParameterError(f"A shortened run follows the full schedule only within the warmup "
                             f"({recipe['warmup']} steps); got steps={steps}.")
    tok, n_ctx = bridge.tokenizer, bridge.cfg.n_ctx
    schedule = [s for s in checkpoint_schedule(recipe["steps"], recipe["linear_every"]) if s <= total]
    validation = validation_batches(tok, recipe, n_ctx)
    log: list[dict[str, Any]] = []
    losses: list[float] = []

    def checkpoint(step: int, loss: Optional[float] = None) -> None:
        if loss is not None:
            losses.append(loss)
        if step not in schedule:
            return
        since = losses[log[-1]["step"]:] if log else []
        log.append(dict(step=step, tokens=step * recipe["batch_size"] * n_ctx,
                        train_loss=float(np.mean(since)) if since else None,
                        val_loss=evaluate_loss(bridge, validation), seconds=round(time.time() - started, 1),
                        load=round(os.getloadavg()[0], 2)))
        if checkpoints is not None:
            checkpoints.save(step)

    started, cpu_started = time.time(), time.process_time()
    checkpoint(0)
    train_loop(bridge, batches(tok, recipe, n_ctx), total, lr=recipe["lr"], warmup=recipe["warmup"],
               seed=recipe["seed"], on_step=checkpoint, desc=desc, **schedule_of(recipe))
    return dict(checkpoints=log, tokens_seen=total * recipe["batch_size"] * n_ctx, steps=total,
                final_val_loss=log[-1]["val_loss"], threads=torch.get_num_threads(),
                cpu_seconds=round(time.process_time() - cpu_started, 1),
                torch=torch.__version__, machine=platform.machine())


def schedule_of(recipe: dict[str, Any]) -> dict[str, Any]:
    """The learning-rate schedule settings of a recipe (version 2 recipes: cosine)."""
    return dict(schedule=recipe.get("schedule", "cosine"), decay_share=recipe.get("decay_share", 0.2))


def suite_spec(name: str, version: int) -> LocalModel:
    """The model ``name`` of the suite as recipe ``version`` defines it (see ``RECIPES``)."""
    size, seed = name.split("-")[1], int(name.split("-s")[-1])
    if size not in SIZES or seed not in SEEDS[size] or version not in RECIPES:
        raise ParameterError(f"{name!r} (version {version}) is not in the suite; it is {', '.join(suite_names())}, "
                             f"versions {sorted(RECIPES)}.")
    shape = dict(SIZES[size])
    lr = shape.pop("lr")
    config = dict(BASE_CONFIG, **shape, d_mlp=4 * shape["d_model"], seed=seed)
    return LocalModel(name=name, description=f"suite model, size {size}, seed {seed}: {shape['n_layers']}-layer "
                                             f"GPT-2-style LM on the suite's generated corpus",
                      config=config, recipe=dict(RECIPES[version], lr=lr, seed=seed), trainer=_trainer(name),
                      tokenizer=_tokenizer, version=version, save_dtype=torch.float16)


def _trainer(name: str):
    def train(bridge: Any, recipe: dict[str, Any], checkpoints: Checkpoints) -> dict[str, Any]:
        return pretrain(bridge, recipe, checkpoints, desc=name)
    return train


def _not_on_first_use(name: str):
    def refuse(bridge: Any, recipe: dict[str, Any], checkpoints: Checkpoints) -> dict[str, Any]:
        raise ParameterError(f"{name} is not trained here yet; it trains for hours with `python -m "
                             f"shared.zoo.train_suite --models {name.split('@')[0]}`, not on first use.")
    return refuse


def _register() -> None:
    for name in suite_names():
        register_local_model(suite_spec(name, REGISTERED_VERSION))
        if REGISTERED_VERSION < 3:  # the next suite, while it trains: "suite-l-s0@v3" (same cache folder)
            spec = suite_spec(name, 3)
            register_local_model(dataclasses.replace(spec, name=f"{name}@v3", cache_name=name,
                                                     trainer=_not_on_first_use(f"{name}@v3"),
                                                     description=spec.description + ", version 3"))


_register()


__all__ = ["BASE_CONFIG", "DEFAULT_MODEL", "RECIPE", "RECIPES", "RECIPE_V3", "REGISTERED_VERSION", "SEEDS", "SHIPPED_STEPS_V3", "SIZES",
           "SUITE_MIX", "VALIDATION_OFFSET", "batches", "checkpoint_schedule", "pretrain", "schedule_of", "suite_name",
           "suite_names", "suite_spec", "trained_folder", "validation_batches"]
