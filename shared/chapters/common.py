"""Small helpers every chapter notebook uses: run report, seeding, prose from results."""
from __future__ import annotations

import random
import sys
from typing import Any

import numpy as np
import torch
from IPython.display import Markdown, display

from shared.zoo.registry import describe


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


def open_model(model_name: str, seed: int, ungroup_kv: bool = False, **params: Any) -> Any:
    """Seed every generator, load ``model_name`` and print what the chapter runs on (the model and
    ``params``). Call it after the parameter checks, which must not wait for a model to load."""
    from shared.zoo.registry import load_model

    seed_everything(seed)
    model = load_model(model_name, ungroup_kv=ungroup_kv)
    report_run(model, model_name=model_name, **params, seed=seed)
    return model


def say(text: str) -> None:
    """Show prose whose numbers and names were computed in this run (Markdown)."""
    display(Markdown(text))
