"""Helpers of the ``tokenizer_pitfalls`` chapter: loading several model families (memory first) and
its prompts."""
from __future__ import annotations

from typing import Any, Sequence

from shared.errors import ModelUnavailableError, ParameterError
from shared.tasks.sequences import SeqPrompt, generate, get_task
from shared.zoo.families import memory_line
from shared.zoo.registry import describe, load_model


def load_models(names: Sequence[str], parameter: str = "model_names") -> dict[str, Any]:
    """Print the memory each model's weights need, then load them all (grouped key/value heads
    ungrouped); a model that cannot be downloaded stops with one sentence naming ``parameter``."""
    for name in names:
        print(memory_line(name))
    models = {}
    for name in names:
        try:
            models[name] = load_model(name, ungroup_kv=True)
        except ModelUnavailableError as err:
            raise ModelUnavailableError(f"Model {name!r} cannot be downloaded here (no internet access and not "
                                        f"in the local cache); set the parameter `{parameter}` to local models "
                                        f"such as ['suite-m-s0', 'family-llama-m', 'family-neox-m'].") from err
        print(f"Model: {describe(models[name])}")
    return models


def prompts_past(task: str, n_prompts: int, seed: int, least: int = 10, n_members: int = 3) -> list[SeqPrompt]:
    """Up to ``n_prompts`` bare-template prompts of ``task`` whose answer is a number of at least ``least``."""
    starts = get_task(task).starts(n_members)
    pool = generate(task, "bare", n_members=n_members, n_prompts=len(starts), seed=seed)
    chosen = [p for p in pool if p.answer.isdigit() and int(p.answer) >= least][:n_prompts]
    if not chosen:
        raise ParameterError(f"Task {task!r} has no answer of at least {least} with {n_members} members shown.")
    return chosen


__all__ = ["load_models", "prompts_past"]
