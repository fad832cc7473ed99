"""What every chapter notebook calls: :func:`open_chapter` (check parameters, seed, load the model,
say what the chapter runs on, export its figures) and :func:`say` (prose computed in the run)."""
from __future__ import annotations

import random
import sys
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch
from IPython.display import Markdown, display

from shared.chapters.registry import chapter_entry, check_parameters
from shared.plots.figures import export_to
from shared.zoo.registry import describe, load_model


def in_colab() -> bool:
    return "google.colab" in sys.modules


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def report_run(model: Any, **params: Any) -> None:
    """Print which model the notebook ran on and with which parameters."""
    print(f"Model: {describe(model)}")
    if params:
        print("Parameters: " + ", ".join(f"{k}={v!r}" for k, v in params.items()))
    print(f"torch {torch.__version__}, device {next(model.parameters()).device}")


@dataclass
class OpenedChapter:
    """A chapter after :func:`open_chapter`: its checked parameters and, if it names one, its model."""

    name: str
    params: dict[str, Any]
    model: Optional[Any] = None
    extra: dict[str, Any] = field(default_factory=dict)


def open_chapter(name: str, *, load: bool = True, ungroup_kv: bool = False, **params: Any) -> OpenedChapter:
    """Open chapter ``name``: check ``params`` against their types and ranges in
    ``notebooks/chapters.yml`` (one sentence for a bad value, before anything heavy), seed every
    generator with ``params['seed']``, export figures to ``figures/<name>/``, and, when ``load`` and a
    ``model_name`` parameter are given, load that model and print it with the parameters."""
    entry = chapter_entry(name)
    if entry is not None:
        params = check_parameters(entry, params)
    seed_everything(int(params.get("seed", 0)))
    export_to(name)
    model = None
    if load and "model_name" in params:
        model = load_model(params["model_name"], ungroup_kv=ungroup_kv)
        report_run(model, **params)
    else:
        print("Parameters: " + ", ".join(f"{k}={v!r}" for k, v in params.items()))
    return OpenedChapter(name, params, model)


def say(text: str) -> None:
    """Show prose whose numbers and names were computed in this run (Markdown)."""
    display(Markdown(text))


__all__ = ["OpenedChapter", "in_colab", "open_chapter", "report_run", "say", "seed_everything"]

