"""Local models for the toy algorithmic chapters: find-min and find-median transformers.

Each model is a TransformerLens-native transformer without LayerNorm (so its circuits can be read
exactly from weights and activations) trained only on the answer prediction. ``algorithmic_model``
returns the registered name for any task setting, registering a new variant when the settings differ
from the shipped ones (its cache key then differs, and it trains on first use).
"""
from __future__ import annotations

from typing import Any

from shared.analysis.answer import accuracy
from shared.tasks.lists import check_task, make_data, test_set, training_lengths
from shared.zoo.registry import Checkpoints, LocalModel, local_models, register_local_model
from shared.zoo.train import train_loop

EXTRA_POSITIONS = 4  # positions beyond the training length, to probe longer lists


def train_algorithmic(bridge: Any, recipe: dict[str, Any], checkpoints: Checkpoints) -> dict[str, Any]:
    """Train on answer-only loss over fresh training-split batches; record loss and test accuracy."""
    lengths = training_lengths(recipe)
    width = recipe["n"] + 2

    def batches(step: int):
        data = make_data(recipe["task"], recipe["V"], recipe["batch_size"], lengths, "train",
                         recipe.get("repeats", False), seed=recipe["seed"] * 1_000_003 + step, width=width)
        return data.tokens, data.mask()

    held_out = test_set(recipe, count=500).prompts()
    curve: list[tuple[int, float]] = []
    every = max(1, recipe["steps"] // 25)

    def on_step(step: int, loss: float) -> None:
        if step % every == 0 or step == recipe["steps"]:
            curve.append((step, accuracy(bridge, held_out)))

    losses = train_loop(bridge, batches, recipe["steps"], lr=recipe["lr"], weight_decay=recipe["weight_decay"],
                        warmup=recipe.get("warmup", 100), seed=recipe["seed"], on_step=on_step,
                        desc=f"training {recipe['task']}")
    stride = max(1, len(losses) // 200)
    test = test_set(recipe).prompts()
    return {
        "loss_curve": [[i + 1, float(sum(losses[i:i + stride]) / len(losses[i:i + stride]))]
                       for i in range(0, len(losses), stride)],
        "test_accuracy_curve": curve,
        "final_loss": float(sum(losses[-50:]) / len(losses[-50:])),
        "test_accuracy": accuracy(bridge, test),
        "test_size": len(test),
    }


def algorithmic_spec(name: str, task: str, n: int, V: int, n_layers: int, attn_only: bool, *,
                     n_min: int = 2, seed: int = 0, steps: int = 3000, repeats: bool = False,
                     d_model: int = 64, n_heads: int = 4, batch_size: int = 128, lr: float = 3e-3,
                     description: str = "") -> LocalModel:
    """A :class:`LocalModel` for ``task`` over lists of ``n_min..n`` values from ``0..V-1``."""
    check_task(task, n, V, repeats, n_min)
    config = dict(n_layers=n_layers, d_model=d_model, n_heads=n_heads, d_head=d_model // n_heads,
                  d_vocab=V + 2, d_vocab_out=V + 2, n_ctx=n + 2 + EXTRA_POSITIONS, attn_only=attn_only,
                  normalization_type=None, act_fn="relu", d_mlp=4 * d_model, seed=seed,
                  positional_embedding_type="standard")
    recipe = dict(task=task, n=n, n_min=n_min, V=V, repeats=repeats, steps=steps, batch_size=batch_size,
                  lr=lr, weight_decay=0.1, warmup=100, seed=seed, test_size=2000,
                  extra_positions=EXTRA_POSITIONS)
    kind = "attention-only" if attn_only else "with MLPs"
    return LocalModel(name=name, config=config, recipe=recipe, trainer=train_algorithmic,
                      description=description or f"{task} of {n_min}-{n} values in 0..{V - 1}, "
                                                 f"{n_layers}-layer {kind}")


# The shipped models: (task, layers, attention-only) -> name.
SHIPPED: dict[str, dict[str, Any]] = {
    "min-1l-attn": dict(task="min", n=10, V=64, n_layers=1, attn_only=True, steps=1500, n_heads=1),
    "min-2l-mlp": dict(task="min", n=10, V=64, n_layers=2, attn_only=False, steps=1500),
    "median-1l-mlp": dict(task="median", n=9, V=32, n_layers=1, attn_only=False, steps=4000),
    "median-2l-mlp": dict(task="median", n=9, V=32, n_layers=2, attn_only=False, steps=4000),
}

for _name, _kw in SHIPPED.items():
    register_local_model(algorithmic_spec(_name, **_kw))


def algorithmic_model(task: str, n_layers: int, attn_only: bool, **settings: Any) -> str:
    """Name of the registered model for these settings (registering a variant if none matches)."""
    check_task(task, settings.get("n", 2), settings.get("V", 2), settings.get("repeats", False))
    for name, kw in SHIPPED.items():
        if kw["task"] == task and kw["n_layers"] == n_layers and kw["attn_only"] == attn_only:
            base = dict(kw)
            break
    else:
        base = dict(task=task, n=10 if task == "min" else 9, V=64 if task == "min" else 32,
                    n_layers=n_layers, attn_only=attn_only, steps=3000)
        name = f"{task}-{n_layers}l-{'attn' if attn_only else 'mlp'}"
    merged = {**base, **settings}
    spec = algorithmic_spec(name, **merged)
    if name in local_models() and local_models()[name] == spec:
        return name
    if merged != base:
        name = name + "-custom"
        spec = algorithmic_spec(name, **merged)
    register_local_model(spec)
    return name


__all__ = ["SHIPPED", "algorithmic_model", "algorithmic_spec", "train_algorithmic"]
