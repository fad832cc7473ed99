"""The common steps of the toy algorithmic chapters (find-min, find-median): opening the chapter,
showing the held-out data and its checks, the training record, and attention on sample lists."""
from __future__ import annotations

from typing import Any

import torch
from IPython.display import display

from shared.tasks import lists as alg
from shared.errors import ParameterError
from shared.chapters.common import open_model, say


def start_chapter(task: str, chapter_task: str, *, n: int, V: int, n_layers: int, attn_only: bool, seed: int,
                  steps: int, n_prompts: int) -> tuple[str, dict[str, Any], Any]:
    """Check the parameters (one sentence each, before any training), pick the zoo model these
    settings name (trained on first use if they differ from a shipped one), load it and print the run.
    Returns the model name, its training recipe and the model."""
    from shared.zoo.registry import local_models
    from shared.zoo.lists import algorithmic_model

    if task != chapter_task:
        other = {"min": "algorithmic_min", "median": "algorithmic_median"}.get(task, "another chapter")
        raise ParameterError(f"This chapter studies the task {chapter_task!r}; use {other} for {task!r}.")
    if not 10 <= n_prompts <= 20000:
        raise ParameterError(f"n_prompts must lie between 10 and 20000, got {n_prompts}.")
    model_name = algorithmic_model(task, n_layers, attn_only, n=n, V=V, seed=seed, steps=steps)
    model = open_model(model_name, seed, task=task, n=n, V=V, n_layers=n_layers, attn_only=attn_only, steps=steps,
                       n_prompts=n_prompts)
    return model_name, local_models()[model_name].recipe, model


def show_data(recipe: dict[str, Any], data: alg.AlgoData, seed: int, shown: int = 3) -> None:
    """Print a few held-out lists with their answers and state the generator and split checks."""
    for i in range(shown):
        print(" ".join(data.labels(i)), "->", int(data.answers[i]))
    checks = alg.data_checks(recipe, data, seed=seed)
    say(f"The generator disagrees with the brute-force reference on **{checks['wrong']}** of {checks['checked']} "
        f"held-out lists, and **{checks['overlap']}** of {checks['train_lists']} training lists share a multiset "
        f"with the held-out set.")


def show_training(model: Any, model_name: str, recipe: dict[str, Any], data: alg.AlgoData) -> float:
    """Plot the recorded training curves and state the held-out accuracy now and at training time."""
    from shared.zoo.registry import model_metrics

    metrics = model_metrics(model_name)
    alg.plot_training(metrics, title=model_name)
    acc = alg.accuracy(model, data)
    say(f"After {recipe['steps']} steps ({metrics['train_seconds']} s on CPU) the model answers **{acc:.2%}** of "
        f"{len(data)} held-out lists correctly (recorded at training time on {metrics['test_size']} lists: "
        f"{metrics['test_accuracy']:.2%}).")
    return acc


def show_attention(model: Any, data: alg.AlgoData, count: int = 3) -> None:
    """Interactive attention patterns of every head on the first ``count`` lists (up to the answer)."""
    from shared.plots.widgets import attention_patterns

    sample = data.subset(torch.arange(count))
    patterns = alg.run_cache(model, sample, lambda k: k.endswith("hook_pattern"))
    for i in range(count):
        L = int(sample.lengths[i]) + 1
        pattern = torch.cat([patterns[f"blocks.{l}.attn.hook_pattern"][i, :, :L, :L] for l in range(model.cfg.n_layers)])
        display(attention_patterns(sample.labels(i), pattern, alg.head_names(model)))


__all__ = ["show_attention", "show_data", "show_training", "start_chapter"]
