"""Training throughput of the suite's shapes on this machine's CPU cores: which settings to train with.

Not a test (minutes of CPU). ``python tests/benchmark_training.py [--sizes s l] [--steps 20] [--reps 3]``.
Every variant trains its own copy of the same initial model on the same pre-generated batches (the
corpus generator is timed on its own), repetitions interleaved so that load from other processes
falls on all variants alike; tokens/s are medians (and ranges) of the repetitions. Loss agreement: the
mean |difference| of each variant's per-step losses from the baseline's over the same steps.

Variants: ``baseline`` (float32, the project's AdamW, 2 threads), ``1 thread``, ``bf16 autocast``,
``fused AdamW``, ``foreach off``, ``sdpa`` (attention through ``scaled_dot_product_attention``),
``compile`` (``torch.compile`` of the native module). ``--pair`` also runs two 1-thread trainings side
by side in two processes (what two cores give to two models at once).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.zoo.suite import RECIPES, batches, suite_spec  # noqa: E402
from shared.zoo.registry import boot_native  # noqa: E402
from shared.zoo.train import lm_loss  # noqa: E402

VARIANTS = ("baseline", "1 thread", "bf16 autocast", "fused AdamW", "foreach off", "sdpa", "compile")


def _sdpa_forward(self, hidden_states, attention_mask=None, position_ids=None, pattern_fn=None, **kwargs):
    batch, seq, _ = hidden_states.shape
    q = self.q(hidden_states).view(batch, seq, self.n_heads, self.d_head).transpose(1, 2)
    k = self.k(hidden_states).view(batch, seq, self.n_kv_heads, self.d_head).transpose(1, 2)
    v = self.v(hidden_states).view(batch, seq, self.n_kv_heads, self.d_head).transpose(1, 2)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1 / self.scale)
    return self.o(out.transpose(1, 2).reshape(batch, seq, -1)), None


class Trainer:
    def __init__(self, name: str, variant: str, data: list):
        spec = suite_spec(name, 3)
        torch.manual_seed(0)
        self.bridge = boot_native(spec.config, tokenizer=None)
        self.model = self.bridge.original_model
        self.model.train()
        self.variant, self.data, self.lr = variant, data, spec.recipe["lr"]
        opt_kw = dict(lr=self.lr, weight_decay=0.01, betas=(0.9, 0.98))
        if variant == "fused AdamW":
            opt_kw["fused"] = True
        if variant == "foreach off":
            opt_kw["foreach"] = False
        self.opt = torch.optim.AdamW(self.model.parameters(), **opt_kw)
        self.forward = self.model
        if variant == "sdpa":
            for module in self.model.modules():
                if hasattr(module, "causal_mask") and hasattr(module, "o"):   # the native attention
                    module.forward = _sdpa_forward.__get__(module)
        if variant == "compile":
            self.forward = torch.compile(self.model)
        self.threads = 1 if variant == "1 thread" else 2
        self.losses: list[float] = []
        self.i = 0

    def run(self, steps: int) -> float:
        torch.set_num_threads(self.threads)
        start = time.perf_counter()
        for _ in range(steps):
            tokens = self.data[self.i % len(self.data)]
            self.i += 1
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.variant == "bf16 autocast"):
                loss = lm_loss(self.forward(tokens), tokens)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.opt.step()
            self.losses.append(loss.item())
        return time.perf_counter() - start


def measure(name: str, steps: int, reps: int, variants: list[str]) -> dict:
    spec = suite_spec(name, 3)
    tok = spec.tokenizer(spec.recipe)
    batch = batches(tok, spec.recipe, spec.config["n_ctx"])
    start = time.perf_counter()
    data = [batch(i)[0] for i in range(steps * (reps + 1))]
    gen = (time.perf_counter() - start) / len(data)
    tokens = data[0].numel()
    trainers = {v: Trainer(name, v, data) for v in variants}
    for t in trainers.values():
        t.run(max(2, steps // 4))          # warm-up (and compilation), untimed
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(reps):
        for v, t in trainers.items():
            times[v].append(t.run(steps))
    base = trainers["baseline"].losses
    out = dict(model=name, tokens_per_step=tokens, generator_ms_per_step=1000 * gen, variants={})
    for v in variants:
        rates = [steps * tokens / s for s in times[v]]
        losses = trainers[v].losses
        out["variants"][v] = dict(tokens_per_s=statistics.median(rates), low=min(rates), high=max(rates),
                                  loss_gap=statistics.mean(abs(a - b) for a, b in zip(losses, base)),
                                  last_loss=statistics.mean(losses[-steps:]))
    return out


def pair(name: str, steps: int) -> float:
    """Tokens/s of two 1-thread trainings of ``name`` running side by side (the sum)."""
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); import benchmark_training as b; "
            f"import json; r = b.measure({name!r}, {steps}, 2, ['baseline', '1 thread']); "
            f"print(json.dumps(r['variants']['1 thread']['tokens_per_s']))")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    return sum(float(p.communicate()[0].strip().splitlines()[-1]) for p in procs)


def main(argv=None) -> list:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="*", default=["s", "l"], choices=["s", "m", "l"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--pair", action="store_true")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    variants = ["baseline"] + [v for v in args.variants if v != "baseline"]
    results = []
    for size in args.sizes:
        name = f"suite-{size}-s0"
        r = measure(name, args.steps, args.reps, variants)
        if args.pair:
            r["pair_1_thread_tokens_per_s"] = pair(name, args.steps)
        results.append(r)
        base = r["variants"]["baseline"]["tokens_per_s"]
        print(f"\n{name}: {r['tokens_per_step']} tokens a step; corpus generator {r['generator_ms_per_step']:.1f} ms a step")
        print(f"{'variant':<16}{'k tokens/s':>11}{'range':>15}{'vs baseline':>13}{'loss gap':>10}")
        for v, m in r["variants"].items():
            span = f"{m['low'] / 1e3:.1f}-{m['high'] / 1e3:.1f}"
            print(f"{v:<16}{m['tokens_per_s'] / 1e3:>11.1f}{span:>15}"
                  f"{m['tokens_per_s'] / base:>12.2f}x{m['loss_gap']:>10.4f}")
        if args.pair:
            print(f"two 1-thread runs side by side: {r['pair_1_thread_tokens_per_s'] / 1e3:.1f} k tokens/s in all "
                  f"({r['pair_1_thread_tokens_per_s'] / base:.2f}x one 2-thread run)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
