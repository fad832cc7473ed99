"""Speed of the circuit methods on the GPT-2-small architecture with random weights.

Not a test (it takes minutes on a CPU). Run ``python tests/benchmark_circuits.py [--prompts 64]``.

(a) Full single-node knockout sweep (144 heads + 12 MLPs, mean ablation): ``shared.engine.ablation``
    against a faithful seed-style loop that, for every candidate, recomputes the mean activation
    over the reference set, re-runs the whole model with a hook and unembeds the full vocabulary.
    The seed loop is timed on ``--seed-sample`` candidates spread over the layers and extrapolated
    to all of them (its per-candidate cost does not depend on the candidate's layer).
(b) EAP over all edges, in forward-pass equivalents (one plain ``bridge(tokens)`` = 1).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.engine.ablation import knockout_sweep  # noqa: E402
from shared.engine.batch import PromptBatch  # noqa: E402
from shared.engine.eap import eap  # noqa: E402
from shared.engine.graph import Graph  # noqa: E402
from shared.zoo.registry import boot_native  # noqa: E402

GPT2_SMALL = dict(n_layers=12, d_model=768, n_heads=12, d_head=64, d_mlp=3072, d_vocab=50257, n_ctx=1024,
                  attn_only=False, normalization_type="LN", act_fn="gelu", seed=0)
ARCHITECTURES = {"gpt2-small": GPT2_SMALL,  # "tiny": a seconds-long smoke run of the script itself
                 "tiny": dict(GPT2_SMALL, n_layers=2, d_model=64, n_heads=4, d_head=16, d_mlp=256, d_vocab=500, n_ctx=64)}


def seed_style_knockout(bridge, batch: PromptBatch, node: str) -> float:
    """One candidate as the seed notebooks did it: means over the reference set recomputed for this
    candidate, a whole-model run with a hook, full-vocabulary logits."""
    reference = torch.cat([batch.clean, batch.corrupt])
    if node.startswith("m"):
        layer, name = int(node[1:]), f"blocks.{node[1:]}.hook_mlp_out"
        _, cache = bridge.run_with_cache(reference)
        mean = cache[name].mean(dim=(0, 1))

        def hook(x, hook):
            return mean.expand_as(x)
    else:
        layer, head = (int(p[1:]) for p in node.split("."))
        name = f"blocks.{layer}.attn.hook_z"
        _, cache = bridge.run_with_cache(reference)
        mean = cache[name][:, :, head].mean(dim=(0, 1))

        def hook(x, hook):
            x = x.clone()
            x[:, :, head] = mean
            return x
    logits = bridge.run_with_hooks(batch.clean, fwd_hooks=[(name, hook)])
    r = torch.arange(len(batch))
    last = logits[r, batch.answer_pos]
    return float((last[r, batch.correct] - last[r, batch.incorrect]).mean())


CLOCK = time.perf_counter  # main() switches to process CPU time on a CPU run


def timed(fn, *args, **kw):
    start = CLOCK()
    out = fn(*args, **kw)
    return out, CLOCK() - start


def main(argv: "list[str] | None" = None) -> dict[str, float]:
    """Run the benchmark; returns the printed figures (speed-up, metric difference, EAP ratio)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", choices=sorted(ARCHITECTURES), default="gpt2-small")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=24)
    ap.add_argument("--seed-sample", type=int, default=12, help="seed-loop candidates actually timed")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    global CLOCK
    if args.device == "cpu":  # CPU time of this process: robust when other jobs share the machine
        CLOCK = time.process_time
    torch.manual_seed(0)
    config = ARCHITECTURES[args.arch]
    bridge = boot_native(config, device=args.device)
    bridge.eval()
    g = torch.Generator().manual_seed(0)
    shape = (args.prompts, args.tokens)
    V = config["d_vocab"]
    batch = PromptBatch(torch.randint(0, V, shape, generator=g), torch.randint(0, V, shape, generator=g),
                        torch.randint(0, V, (args.prompts,), generator=g),
                        torch.randint(0, V, (args.prompts,), generator=g)).to(args.device)
    graph = Graph.of(bridge)
    sync = (lambda: torch.cuda.synchronize()) if args.device.startswith("cuda") else (lambda: None)
    print(f"{args.arch} architecture, random weights, {args.prompts} prompts x {args.tokens} tokens, "
          f"device {args.device}, torch threads {torch.get_num_threads()}, "
          f"clock: {'process CPU time' if CLOCK is time.process_time else 'wall time'}")

    with torch.no_grad():
        bridge(batch.clean)  # warm-up
        sync()
        fwd = []
        for _ in range(3):
            _, t = timed(bridge, batch.clean)
            sync()
            fwd.append(t)
    forward = min(fwd)
    print(f"one forward pass (full logits): {forward:.3f} s")

    ko, t_ours = timed(knockout_sweep, bridge, batch, ablation="mean", progress=False)
    sync()
    nodes = graph.components
    sample = [nodes[int(i)] for i in torch.linspace(0, len(nodes) - 1, args.seed_sample).round().long()]
    with torch.no_grad():
        checks = {}
        start = CLOCK()
        for node in sample:
            checks[node] = seed_style_knockout(bridge, batch, node)
        sync()
        t_seed_sample = CLOCK() - start
    t_seed = t_seed_sample / len(sample) * len(nodes)
    worst = max(abs(checks[n] - float(ko.scores[nodes.index(n)])) for n in sample)
    print(f"(a) knockout sweep over {len(nodes)} nodes: ours {t_ours:.2f} s; seed-style loop "
          f"{t_seed_sample:.2f} s for {len(sample)} candidates -> {t_seed:.1f} s for all; "
          f"speed-up {t_seed / t_ours:.1f}x (max |difference| of the metric {worst:.2e})")

    # EAP runs once untimed (allocator warm-up, as the forward pass above); each timed run is
    # bracketed by forward passes, so a busy machine affects both alike
    eap(bridge, batch)
    ratios = []
    for _ in range(2):
        with torch.no_grad():
            _, before = timed(bridge, batch.clean)
        scores, t_eap = timed(eap, bridge, batch)
        sync()
        with torch.no_grad():
            _, after = timed(bridge, batch.clean)
        unit = (before + after) / 2
        ratios.append(t_eap / unit)
        print(f"(b) EAP over {len(scores)} edges: {t_eap:.2f} s = {t_eap / unit:.2f} forward-pass equivalents "
              f"(forward pass {unit:.3f} s around it)")
    print(f"(b) best of {len(ratios)}: {min(ratios):.2f} forward-pass equivalents")
    return {"speedup": t_seed / t_ours, "max_difference": worst, "eap_forward_equivalents": min(ratios)}

if __name__ == "__main__":
    main()
