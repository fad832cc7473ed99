"""``python -m benchmarks.peers --setup``: the peer environment ``.venv-peers/`` in one command.

auto-circuit 1.0.1 imports ``HookedTransformer``, which TransformerLens 4 (the book's) no longer has,
and pins ``kaleido==0.2.1``, so it gets a virtual environment of its own. A plain ``pip install
auto-circuit`` resolves TransformerLens 4 and newer pyarrow/jax that want numpy 2, which
TransformerLens 2 excludes; the steps below are the set that imports and patches (checked with torch
2.13.0 on CPU). Each step is one pip call; a step that fails stops with one sentence naming the
package that could not be had."""
from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path
from typing import Optional, Sequence

from benchmarks.peers.client import PEER_VENV

STEPS: tuple[tuple[str, ...], ...] = (
    ("torch==2.13.0",),
    ("auto-circuit==1.0.1",),
    ("transformer-lens<3",),
    ("pyarrow<17", "datasets<3", "jax<0.5", "jaxlib<0.5", "ml-dtypes<0.5", "chex<0.1.88"),
)
CHECK = ("from importlib.metadata import version; from auto_circuit.utils.graph_utils import patchable_model; "
         "from auto_circuit.prune_algos.ACDC import acdc_prune_scores; print(version('transformer-lens'))")


def setup(target: Path = PEER_VENV, steps: Sequence[Sequence[str]] = STEPS, quiet: bool = True) -> Optional[str]:
    """Create ``target`` and install the steps; returns None on success, else the sentence to print."""
    if not (target / "bin" / "python").exists():
        venv.EnvBuilder(with_pip=True).create(target)
    pip = [str(target / "bin" / "python"), "-m", "pip", "install"] + (["-q"] if quiet else [])
    for step in steps:
        print(f"installing {' '.join(step)} into {target.name}", flush=True)
        done = subprocess.run(pip + list(step), capture_output=quiet, text=True)
        if done.returncode != 0:
            tail = (done.stderr or "").strip().splitlines()[-1:] if quiet else []
            return (f"pip could not install {' '.join(step)} into {target} (exit code {done.returncode}"
                    f"{': ' + tail[0] if tail else ''}); the peer comparison needs it.")
    check = subprocess.run([str(target / "bin" / "python"), "-c", CHECK], capture_output=True, text=True)
    if check.returncode != 0:
        last = (check.stderr.strip().splitlines() or ["no message"])[-1]
        return f"auto-circuit was installed into {target} but does not import ({last})."
    print(f"{target} is ready: auto-circuit 1.0.1 with TransformerLens {check.stdout.strip()}.")
    return None


def main(target: Path = PEER_VENV) -> int:
    problem = setup(target)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    return 0


__all__ = ["CHECK", "STEPS", "main", "setup"]
