"""Speed and memory of the circuit methods on pretrained-sized architectures with random weights.

Not a test (it takes minutes on a CPU). Run ``python tests/benchmark_circuits.py [--arch gpt2-small ...]``;
several ``--arch`` run in one call (on a GPU: one metered session). For each architecture:

(a) Full single-node knockout sweep (mean ablation): ``shared.engine.ablation`` against a faithful
    seed-style loop that, for every candidate, recomputes the mean activation over the reference
    set, re-runs the whole model with a hook and unembeds the full vocabulary. The seed loop is
    timed on ``--seed-sample`` candidates spread over the layers and extrapolated to all of them.
    Skipped with ``--no-knockout`` (the 8B shape).
(b) EAP and EAP-IG (``--ig-steps``) over all edges, in forward-pass equivalents (one plain
    ``bridge(tokens)`` with full logits on the same batch = 1), and on a GPU the peak memory of each.

Every timed region is bracketed by device synchronisation (CUDA runs asynchronously: reading the
clock before the device has finished would time only the kernel launches). The first EAP call of a
process costs much more than later ones (allocator and kernel warm-up), so each method runs once
untimed and the figures are warm ones. On a CPU the clock is this process's CPU time.
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
# Llama-3-8B's shape with its 8 key/value heads ungrouped (edge methods need one per query head):
# 32 layers, d_model 4096, 32 heads of 128, gated MLP of 14336, RMSNorm, rotary; 8.84 B parameters
LLAMA3_8B = dict(n_layers=32, d_model=4096, n_heads=32, d_head=128, d_mlp=14336, d_vocab=128256, n_ctx=8192,
                 attn_only=False, normalization_type="RMS", positional_embedding_type="rotary", rotary_dim=128,
                 gated_mlp=True, act_fn="silu", seed=0)
ARCHITECTURES = {"gpt2-small": GPT2_SMALL,
                 "gpt2-medium": dict(GPT2_SMALL, n_layers=24, d_model=1024, n_heads=16, d_mlp=4096),
                 "gpt2-xl": dict(GPT2_SMALL, n_layers=48, d_model=1600, n_heads=25, d_mlp=6400),
                 "llama3-8b": LLAMA3_8B,
                 # seconds-long smoke runs of the script itself
                 "tiny": dict(GPT2_SMALL, n_layers=2, d_model=64, n_heads=4, d_head=16, d_mlp=256, d_vocab=500, n_ctx=64),
                 "tiny-llama": dict(LLAMA3_8B, n_layers=2, d_model=64, n_heads=4, d_head=16, d_mlp=128, d_vocab=500,
                                    n_ctx=64, rotary_dim=16)}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


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
SYNC = lambda: None  # noqa: E731  main() sets torch.cuda.synchronize on a GPU


def timed(fn, *args, **kw):
    """``fn(*args, **kw)`` and its duration, the device synchronised before both clock readings."""
    SYNC()
    start = CLOCK()
    out = fn(*args, **kw)
    SYNC()
    return out, CLOCK() - start


def peak_memory(fn, *args, **kw) -> "float | None":
    """Peak device memory (GiB) while ``fn`` runs (None on a CPU)."""
    if not torch.cuda.is_available() or SYNC is not torch.cuda.synchronize:
        fn(*args, **kw)
        return None
    SYNC()
    torch.cuda.reset_peak_memory_stats()
    fn(*args, **kw)
    SYNC()
    return torch.cuda.max_memory_allocated() / 2 ** 30


def forward_time(bridge, tokens) -> float:
    """Best of three plain forward passes (full logits)."""
    with torch.no_grad():
        return min(timed(bridge, tokens)[1] for _ in range(3))


def knockouts(bridge, batch, graph, seed_sample: int) -> dict[str, float]:
    """(a): the knockout sweep against the seed-style loop on a sample of candidates."""
    ko, t_ours = timed(knockout_sweep, bridge, batch, ablation="mean", progress=False)
    nodes = graph.components
    sample = [nodes[int(i)] for i in torch.linspace(0, len(nodes) - 1, seed_sample).round().long()]
    with torch.no_grad():
        checks, t_sample = timed(lambda: {node: seed_style_knockout(bridge, batch, node) for node in sample})
    t_seed = t_sample / len(sample) * len(nodes)
    worst = max(abs(checks[n] - float(ko.scores[nodes.index(n)])) for n in sample)
    print(f"(a) knockout sweep over {len(nodes)} nodes: ours {t_ours:.2f} s; seed-style loop "
          f"{t_sample:.2f} s for {len(sample)} candidates -> {t_seed:.1f} s for all; "
          f"speed-up {t_seed / t_ours:.1f}x (max |difference| of the metric {worst:.2e})")
    return {"speedup": t_seed / t_ours, "max_difference": worst}


def edge_methods(bridge, batch, ig_steps: int, chunk: "int | None") -> dict[str, float]:
    """(b): EAP and EAP-IG, each run once untimed, then twice bracketed by forward passes (a busy
    machine affects both alike); the best ratio is reported, with the peak memory of a third run."""
    out = {}
    for label, steps in (("EAP", 0), (f"EAP-IG ({ig_steps} steps)", ig_steps)):
        run = lambda: eap(bridge, batch, ig_steps=steps, chunk=chunk)  # noqa: E731
        scores = run()
        ratios = []
        for _ in range(2):
            before = forward_time(bridge, batch.clean)
            _, t = timed(run)
            unit = (before + forward_time(bridge, batch.clean)) / 2
            ratios.append(t / unit)
            print(f"(b) {label} over {len(scores)} edges: {t:.2f} s = {t / unit:.2f} forward-pass equivalents "
                  f"(forward pass {unit:.3f} s around it)")
        mem = peak_memory(run)
        print(f"(b) {label}, best of {len(ratios)}: {min(ratios):.2f} forward-pass equivalents"
              + ("" if mem is None else f", peak memory {mem:.1f} GiB"))
        key = "eap" if steps == 0 else "eap_ig"
        out[f"{key}_forward_equivalents"] = min(ratios)
        if mem is not None:
            out[f"{key}_peak_gib"] = mem
    return out


def run_arch(arch: str, args) -> dict[str, float]:
    config = ARCHITECTURES[arch]
    torch.manual_seed(0)
    bridge = boot_native(config, device=args.device, dtype=DTYPES[args.dtype])
    bridge.eval()
    g = torch.Generator().manual_seed(0)
    shape = (args.prompts, args.tokens)
    V = config["d_vocab"]
    batch = PromptBatch(torch.randint(0, V, shape, generator=g), torch.randint(0, V, shape, generator=g),
                        torch.randint(0, V, (args.prompts,), generator=g),
                        torch.randint(0, V, (args.prompts,), generator=g)).to(args.device)
    graph = Graph.of(bridge)
    n_params = sum(p.numel() for p in bridge.parameters())
    print(f"\n{arch} architecture ({n_params / 1e9:.2f} B parameters, {args.dtype}), random weights, "
          f"{args.prompts} prompts x {args.tokens} tokens, device {args.device}"
          f"{'' if args.chunk is None else f', EAP in chunks of {args.chunk} prompts'}, torch threads "
          f"{torch.get_num_threads()}, clock: {'process CPU time' if CLOCK is time.process_time else 'wall time'}")
    with torch.no_grad():
        bridge(batch.clean)  # warm-up
    forward = forward_time(bridge, batch.clean)
    print(f"one forward pass (full logits): {forward:.3f} s")
    out = {"forward_s": forward}
    if not args.no_knockout:
        out.update(knockouts(bridge, batch, graph, args.seed_sample))
    out.update(edge_methods(bridge, batch, args.ig_steps, args.chunk))
    del bridge
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return out


def main(argv: "list[str] | None" = None) -> dict[str, float]:
    """Run the benchmark; returns the printed figures of the last architecture."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", choices=sorted(ARCHITECTURES), action="append",
                    help="repeatable; default gpt2-small")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=24)
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    ap.add_argument("--chunk", type=int, default=None, help="EAP prompts per chunk (memory bound)")
    ap.add_argument("--ig-steps", type=int, default=5)
    ap.add_argument("--no-knockout", action="store_true", help="skip (a)")
    ap.add_argument("--seed-sample", type=int, default=12, help="seed-loop candidates actually timed")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    global CLOCK, SYNC
    if args.device == "cpu":  # CPU time of this process: robust when other jobs share the machine
        CLOCK = time.process_time
    else:
        SYNC = torch.cuda.synchronize
    out = {}
    for arch in args.arch or ["gpt2-small"]:
        out = run_arch(arch, args)
    return out


if __name__ == "__main__":
    main()
