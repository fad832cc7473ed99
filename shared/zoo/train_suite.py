"""``python -m shared.zoo.train_suite``: train the model suite for hours, in the background, resumably.

Every process on the project's machines may be ended without warning, so the suite trains in pieces:

* the full training state (float32 weights, AdamW moments, random state, step) is written atomically to
  ``<local cache>/training/<model>-<key>/`` every ``--save-minutes`` and at every scheduled checkpoint
  (:func:`shared.zoo.train.save_state`: a kill, even mid-save, leaves the last complete state);
* the float16 checkpoints and ``progress.json`` (losses, tokens/s, held-out probes every ``probe_every``
  steps) go to ``shared/checkpoints/training/<model>-<key>/``, which is committed between sessions;
* started again, a model continues exactly where its state stopped (bit-identical to an uninterrupted
  run, ``tests/test_train_suite.py``). Without a local state (a new machine) it continues from its last
  committed float16 checkpoint with a fresh optimizer, and ``progress.json`` records that discontinuity;
* a finished model becomes a model folder like any trained by ``load_model`` (``steps/``,
  ``model.safetensors``, ``metrics.json``), written atomically; an unfinished run never replaces one.

``--pilot NAME --set key=value ...`` trains a variant (config or recipe overrides) the same way into
``<local cache>/pilots/``, for the pilot table (``--report``). Nothing here runs in the book's build or CI.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from safetensors.torch import load_file, save_file

from shared.errors import BookError, ParameterError
from shared.paths import cache_dir, local_cache_dir, shipped_cache_dir
from shared.tasks.abilities import training_probe
from shared.zoo.cache import cached_dir, config_key
from shared.zoo.registry import LocalModel, _split_overrides, _weights, _with_aliases, boot_native
from shared.zoo.suite import (REGISTERED_VERSION, SHIPPED_STEPS_V3, batches, checkpoint_schedule, schedule_of, suite_names, suite_spec,
                              validation_batches)
from shared.zoo.train import evaluate_loss, load_state, save_state, train_loop

NEXT_VERSION = max(REGISTERED_VERSION + 1, 3)


class Run:
    """One model's (or pilot's) resumable training: its spec, settings, folders and progress record."""

    def __init__(self, name: str, version: int = NEXT_VERSION, pilot: Optional[str] = None,
                 overrides: Optional[dict[str, Any]] = None, root: Optional[Path] = None):
        self.spec: LocalModel = suite_spec(name, version)
        self.config, self.recipe = _split_overrides(self.spec, overrides or {})
        self.key = {"name": name, "version": version, "config": self.config, "recipe": self.recipe}
        self.name, self.pilot = name, pilot
        label = f"{pilot}-{config_key(self.key)}" if pilot else f"{name}-{config_key(self.key)}"
        kind = "pilots" if pilot else "training"
        local, shipped = (root / "local", root / "shipped") if root else (local_cache_dir(), shipped_cache_dir())
        self.state_dir = local / kind / label                                 # float32 state: never committed
        self.record_dir = (local if pilot else shipped) / kind / label
        self.tokens_per_step = self.recipe["batch_size"] * self.config["n_ctx"]
        self.schedule = checkpoint_schedule(self.recipe["steps"], self.recipe["linear_every"])
        # the checkpoints committed with the record (all of a pilot's, which stay local anyway)
        self.shipped = set(self.schedule) if pilot or version != 3 else \
            (set(SHIPPED_STEPS_V3) & set(self.schedule)) | {self.recipe["steps"]}   # the final weights always

    # ----------------------------------------------------------------------------- progress record
    def progress(self) -> dict[str, Any]:
        path = self.record_dir / "progress.json"
        if path.exists():
            return json.loads(path.read_text())
        return dict(model=self.name, pilot=self.pilot, key=self.key, log=[], probes=[], discontinuities=[],
                    sessions=[])

    def write_progress(self, progress: dict[str, Any]) -> None:
        self.record_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.record_dir / f".tmp-progress-{os.getpid()}.json"
        tmp.write_text(json.dumps(progress, indent=1, sort_keys=True, default=float))
        os.replace(tmp, self.record_dir / "progress.json")

    def step_path(self, step: int) -> Path:
        """Where checkpoint ``step`` is written: the committed record if it ships, else the local state folder."""
        return (self.record_dir if step in self.shipped else self.state_dir) / "steps" / f"step_{step:07d}.safetensors"

    def saved_steps(self) -> list[int]:
        return sorted(int(p.stem.split("_")[1]) for folder in {self.record_dir, self.state_dir}
                      for p in (folder / "steps").glob("step_*.safetensors"))

    def model_folder(self) -> Path:
        """Where the finished model goes (the folder ``load_model`` reads for this version)."""
        return (local_cache_dir() if self.pilot else cache_dir()) / "models" / f"{self.name}-{config_key(self.key)}"

    def finished(self) -> bool:
        if self.pilot:
            return self.progress()["log"][-1:] != [] and self.progress()["log"][-1]["step"] == self.recipe["steps"]
        return (self.model_folder() / "model.safetensors").exists()

    # ---------------------------------------------------------------------------------- training
    def train(self, deadline: float = float("inf"), save_minutes: float = 5.0, autocast: bool = False,
              log_every: float = 60.0, stop_after: Optional[int] = None) -> bool:
        """Train until done, until ``deadline`` (a time.time()) or for ``stop_after`` more steps, the state
        saved at the end either way; returns whether the model is finished."""
        if self.finished():
            return True
        tokenizer = self.spec.tokenizer(self.recipe)
        torch.manual_seed(int(self.recipe["seed"]))
        bridge = boot_native(self.config, tokenizer=tokenizer)
        progress = self.progress()
        if not self.pilot and progress["log"] and progress["log"][-1]["step"] == self.recipe["steps"]:
            return self._rebuild(bridge, progress)  # trained elsewhere: the committed record is complete
        resume, start = self._resume_point(bridge, progress)
        validation = validation_batches(tokenizer, self.recipe, self.config["n_ctx"])
        session = dict(started=time.strftime("%Y-%m-%d %H:%M:%S"), from_step=start, threads=torch.get_num_threads(),
                       autocast=autocast)
        progress["sessions"].append(session)
        losses: list[float] = []
        clock = dict(saved=time.time(), logged=time.time(), start=time.time(), step=start)
        last = self.recipe["steps"] if stop_after is None else min(self.recipe["steps"], start + stop_after)
        if start == 0 and 0 not in self.saved_steps():
            self._checkpoint(bridge, 0, progress, losses, validation)

        def on_state(step: int, state) -> None:
            scheduled = step in self.schedule
            if scheduled:
                self._checkpoint(bridge, step, progress, losses, validation)
            if step % self.recipe.get("probe_every", 10 ** 9) == 0:
                self._probe(bridge, step, progress)
            now = time.time()
            if scheduled or now - clock["saved"] > 60 * save_minutes or step == last or now > deadline:
                save_state(self.state_dir, state(), extra=dict(model=self.name, pilot=self.pilot))
                session.update(to_step=step, seconds=round(now - clock["start"], 1))
                self.write_progress(progress)
                clock["saved"] = now
            if now - clock["logged"] > log_every or step == last:
                self._print(step, progress, (step - clock["step"]) * self.tokens_per_step / (now - clock["logged"]))
                clock.update(logged=now, step=step)
            if now > deadline:
                raise _Deadline()

        def on_step(step: int, loss: float) -> None:
            losses.append(loss)

        try:
            train_loop(bridge, batches(tokenizer, self.recipe, self.config["n_ctx"]), self.recipe["steps"],
                       lr=self.recipe["lr"], warmup=self.recipe["warmup"], seed=self.recipe["seed"], on_step=on_step,
                       desc=self.pilot or self.name, resume=resume, on_state=on_state, autocast=autocast,
                       stop_after=None if stop_after is None else last - start, **schedule_of(self.recipe))
        except _Deadline:
            print(f"{self.pilot or self.name}: stopped at the deadline; state saved, run the same command to continue.")
            return False
        if last < self.recipe["steps"]:
            return False
        if not self.pilot:  # a pilot's record is its progress.json and checkpoints
            self._finish(bridge, progress)
        return True

    def _resume_point(self, bridge: Any, progress: dict[str, Any]) -> tuple[Optional[dict[str, Any]], int]:
        loaded = load_state(self.state_dir)
        if loaded is not None:
            state, pointer = loaded
            print(f"{self.pilot or self.name}: resuming from the saved training state at step {pointer['step']}.")
            return state, int(pointer["step"])
        saved = [s for s in self.saved_steps() if s > 0]
        if not saved:
            return None, 0
        step = saved[-1]
        weights = load_file(str(self.step_path(step)))
        model = bridge.original_model
        model.load_state_dict(_with_aliases(model, {k: v.float() for k, v in weights.items()}))
        progress["discontinuities"].append(dict(
            step=step, reason="no local training state (new machine): continued from the committed float16 "
                              "checkpoint with a new AdamW state (moments zero)"))
        progress["log"] = [row for row in progress["log"] if row["step"] <= step]
        progress["probes"] = [row for row in progress["probes"] if row["step"] <= step]
        print(f"{self.pilot or self.name}: no training state here; continuing from the float16 checkpoint at step "
              f"{step} with a new optimizer state (recorded in progress.json).")
        return dict(step=step, model={k: v.detach().clone() for k, v in model.state_dict().items()}), step

    def _rebuild(self, bridge: Any, progress: dict[str, Any]) -> bool:
        """Write the model folder of a run whose committed record is complete (a new machine, or the folder
        deleted): the final weights are its last shipped checkpoint."""
        final = self.record_dir / "steps" / f"step_{self.recipe['steps']:07d}.safetensors"
        model = bridge.original_model
        model.load_state_dict(_with_aliases(model, {k: v.float() for k, v in load_file(str(final)).items()}))
        print(f"{self.name}: its training record is complete; writing its model folder from it.")
        self._finish(bridge, progress)
        return True

    def _checkpoint(self, bridge: Any, step: int, progress: dict[str, Any], losses: list[float],
                    validation: list) -> None:
        path = self.step_path(step)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{path.name}")
        save_file(_weights(bridge, torch.float16), str(tmp))
        os.replace(tmp, path)
        previous = progress["log"][-1]["step"] if progress["log"] else 0
        recent = losses[-(step - previous):] if step > previous and losses else []
        progress["log"] = [row for row in progress["log"] if row["step"] != step] + [dict(
            step=step, tokens=step * self.tokens_per_step, train_loss=sum(recent) / len(recent) if recent else None,
            val_loss=evaluate_loss(bridge, validation), time=time.strftime("%Y-%m-%d %H:%M:%S"))]
        bridge.original_model.train()

    def _probe(self, bridge: Any, step: int, progress: dict[str, Any]) -> None:
        bridge.original_model.eval()
        row = dict(step=step, tokens=step * self.tokens_per_step, **training_probe(bridge))
        bridge.original_model.train()
        progress["probes"] = [r for r in progress["probes"] if r["step"] != step] + [row]

    def _print(self, step: int, progress: dict[str, Any], tokens_per_second: float) -> None:
        total = self.recipe["steps"]
        eta = (total - step) * self.tokens_per_step / max(tokens_per_second, 1.0)
        probe = progress["probes"][-1] if progress["probes"] else None
        held = (f"IOI ABBA {probe['ioi_abba_share']:.0%}/{probe['ioi_abba_ld']:+.2f} BABA {probe['ioi_baba_share']:.0%}/"
                f"{probe['ioi_baba_ld']:+.2f}, induction {probe['induction_top1']:.0%}, greater-than "
                f"{probe['gt_prob_diff']:.2f}, sequences {probe['seq_heldout']:.0%} (held-out, step {probe['step']})"
                if probe else "no probe yet")
        val = progress["log"][-1]["val_loss"] if progress["log"] else float("nan")
        print(f"[{time.strftime('%H:%M:%S')}] {self.pilot or self.name} step {step}/{total} "
              f"({step * self.tokens_per_step / 1e6:.1f} M tokens), {tokens_per_second / 1e3:.1f} k tokens/s, "
              f"ETA {eta / 60:.0f} min, val loss {val:.3f}; {held}", flush=True)

    def _finish(self, bridge: Any, progress: dict[str, Any]) -> None:
        """Write the finished model folder atomically (steps, final float16 weights, metrics)."""
        seconds = sum(s.get("seconds", 0) for s in progress["sessions"])
        metrics = dict(checkpoints=progress["log"], probes=progress["probes"], discontinuities=progress["discontinuities"],
                       sessions=progress["sessions"], tokens_seen=self.recipe["steps"] * self.tokens_per_step,
                       steps=self.recipe["steps"], final_val_loss=progress["log"][-1]["val_loss"],
                       train_seconds=seconds, threads=torch.get_num_threads(), torch=torch.__version__)

        def build(tmp: Path) -> None:
            (tmp / "steps").mkdir()
            for step in sorted(self.shipped):
                shutil.copyfile(self.step_path(step), tmp / "steps" / f"step_{step:07d}.safetensors")
            save_file(_weights(bridge, torch.float16), str(tmp / "model.safetensors"))
            final = tmp / "steps" / f"step_{self.recipe['steps']:07d}.safetensors"
            if final.exists() and final.read_bytes() == (tmp / "model.safetensors").read_bytes():
                final.unlink()
                metrics["final_step"] = self.recipe["steps"]
            (tmp / "config.json").write_text(json.dumps(self.config, indent=1, sort_keys=True))
            (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1, sort_keys=True, default=float))

        folder = self.model_folder()
        cached_dir("models", self.name, self.key, build, folder=folder.parent)
        print(f"{self.pilot or self.name}: finished; model folder {folder}.")


class _Deadline(Exception):
    """Raised inside the training loop when the time given to this process is up (state already saved)."""


def _parse_set(items: Sequence[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        if "=" not in item:
            raise ParameterError(f"--set takes key=value, got {item!r}.")
        key, value = item.split("=", 1)
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.zoo.train_suite", description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", default=None, help="suite models, in order (default: largest first)")
    parser.add_argument("--hours", type=float, default=24.0, help="stop (state saved) after this many hours")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--save-minutes", type=float, default=5.0, help="save the full state this often")
    parser.add_argument("--autocast", action="store_true", help="bfloat16 autocast for forward and backward")
    parser.add_argument("--pilot", default=None, help="train a named variant into the pilots folder")
    parser.add_argument("--set", nargs="*", default=[], help="config or recipe overrides of a pilot, key=value")
    args = parser.parse_args(argv)
    try:
        if args.hours <= 0 or args.threads < 1 or args.save_minutes <= 0:
            raise ParameterError("--hours, --threads and --save-minutes must be positive.")
        names = args.models or sorted(suite_names(), key=lambda n: ("lms".index(n.split("-")[1]), n))
        unknown = [n for n in names if n not in suite_names()]
        if unknown:
            raise ParameterError(f"Unknown suite model {unknown[0]!r}; the suite is {', '.join(suite_names())}.")
        if args.set and not args.pilot:
            raise ParameterError("--set changes a pilot only; name it with --pilot.")
        torch.set_num_threads(args.threads)
        deadline = time.time() + 3600 * args.hours
        runs = [Run(n, pilot=f"{args.pilot}-{n}" if args.pilot else None, overrides=_parse_set(args.set))
                for n in names]
        for run in runs:
            if time.time() > deadline or not run.train(deadline, args.save_minutes, args.autocast):
                break
    except BookError as err:
        print(err, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["NEXT_VERSION", "Run", "main"]
