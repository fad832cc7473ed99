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


def profile_eap(bridge, batch, chunk: "int | None") -> None:
    """(p): one warm EAP call under torch.profiler: the busiest operations by device time, and the
    host<->device copies (each one a synchronisation) that the issue found dominating."""
    from torch.profiler import ProfilerActivity, profile
    eap(bridge, batch, chunk=chunk)
    SYNC()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        eap(bridge, batch, chunk=chunk)
        SYNC()
    events = prof.key_averages()
    copies = sum(e.count for e in events if e.key in ("cudaMemcpyAsync", "cudaMemcpy"))
    syncs = sum(e.count for e in events if "Synchronize" in e.key)
    print(f"(p) EAP under the profiler: {copies} host-device copies, {syncs} synchronise calls")
    print(events.table(sort_by="self_cuda_time_total", row_limit=14, max_name_column_width=48))


def tf32_run(bridge, batch, ig_steps: int, chunk: "int | None") -> dict[str, float]:
    """(t): the same with TensorFloat-32 matrix products (``torch.backends.cuda.matmul.allow_tf32``,
    the forward pass unit included): speed, and how far the scores move from the float32 ones."""
    exact = {steps: eap(bridge, batch, ig_steps=steps, chunk=chunk).tensor for steps in (0, ig_steps)}
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        print("(t) with TF32 matrix products (forward pass included):")
        out = {f"tf32_{k}": v for k, v in edge_methods(bridge, batch, ig_steps, chunk).items()}
        for steps in (0, ig_steps):
            fast = eap(bridge, batch, ig_steps=steps, chunk=chunk).tensor
            rel = float((fast - exact[steps]).abs().max() / exact[steps].abs().max())
            rank = lambda x: x.argsort().argsort().double()  # noqa: E731
            rho = float(torch.corrcoef(torch.stack([rank(fast), rank(exact[steps])]))[0, 1])
            top = exact[steps].abs().topk(100).indices
            kept = len(set(top.tolist()) & set(fast.abs().topk(100).indices.tolist()))
            print(f"(t) {'EAP' if steps == 0 else f'EAP-IG ({steps})'} TF32 vs float32 scores: max difference "
                  f"{rel:.1e} relative, Spearman {rho:.5f}, top-100 edges shared {kept}/100")
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False
    return out


_VIEWS = {"view", "_unsafe_view", "reshape", "permute", "transpose", "t", "expand", "unsqueeze", "squeeze",
          "select", "slice", "as_strided", "detach", "alias", "split", "unbind", "chunk", "narrow", "lift_fresh",
          "_reshape_alias", "view_as", "expand_as", "contiguous", "diagonal", "unfold", "split_with_sizes"}


def counted(fn, *args, **kw) -> tuple[int, int]:
    """``fn``'s matrix-product FLOPs (torch's ``FlopCounterMode``: mm, bmm, einsum, linear; elementwise
    work is not counted) and the number of operators it runs that are not views (on a GPU each is
    about one kernel launch)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    class Ops(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket.__name__ not in _VIEWS:
                Ops.n += 1
            return func(*args, **(kwargs or {}))

    with FlopCounterMode(display=False) as flops, Ops():
        fn(*args, **kw)
    return flops.get_total_flops(), Ops.n


def flop_floor(bridge, batch, ig_steps: int, chunk: "int | None", peak_ratio: float = 1.0) -> dict[str, float]:
    """(f): where EAP's cost comes from, in units of one forward pass's matrix-product FLOPs (device-free,
    so it can be measured on a CPU for any shape). Any exact EAP by backpropagation runs the corrupted
    model, one forward and backward pass per gradient (one for EAP, ``ig_steps`` for EAP-IG), and the edge
    products (2 x edges x prompts x positions x d_model FLOPs: every edge's score is a dot product over
    prompts, positions and the residual width); the floor is their sum, and this implementation's own
    count is printed beside it. ``peak_ratio`` (>= 1) is how much faster than the forward pass's matrix
    products the edge products are assumed to run for the second floor (e.g. the card's peak rate over
    the rate the forward pass reached). The same is done for the number of operators (where a GPU is
    bound by kernel launches, its time follows them): the passes alone against the whole call."""
    from shared.engine.ablation import ablation_values
    from shared.engine.eap import _gradient_pass
    from shared.engine.metrics import resolve
    graph = Graph.of(bridge)
    eap(bridge, batch, chunk=chunk)  # one-time probes (e.g. whether blocks can be called directly) not counted
    with torch.no_grad():
        fwd, fwd_ops = counted(bridge, batch.clean)
        corrupt, corrupt_ops = counted(ablation_values, bridge, batch, "corrupt")
        embed = bridge.forward(batch.clean, stop_at_layer=0)
    grad, grad_ops = counted(_gradient_pass, bridge, batch, resolve(None), embed)
    n, pos = batch.clean.shape
    products = 2 * len(graph.edges) * n * pos * bridge.cfg.d_model
    out = {"forward_gflop": fwd / 1e9, "forward_ops": fwd_ops}
    for label, key, steps in (("EAP", "eap", 1), (f"EAP-IG ({ig_steps} steps)", "eap_ig", ig_steps)):
        ours, ops = counted(eap, bridge, batch, ig_steps=0 if steps == 1 else steps, chunk=chunk)
        passes = corrupt + steps * grad
        floor, fast = (passes + products) / fwd, (passes + products / peak_ratio) / fwd
        op_floor = (corrupt_ops + steps * grad_ops) / fwd_ops
        print(f"(f) {label}: this implementation {ours / fwd:.2f} fwd of matrix-product FLOPs; floor {floor:.2f} fwd "
              f"= corrupted run {corrupt / fwd:.2f} + {steps} x forward and backward {grad / fwd:.2f} + edge products "
              f"{products / fwd:.2f}" + ("" if peak_ratio == 1.0 else
                                        f"; {fast:.2f} fwd with the edge products {peak_ratio:.2f}x faster"))
        print(f"(f) {label}: operators (not views) {ops / fwd_ops:.2f}x the forward pass's ({fwd_ops}); the corrupted "
              f"run and the gradient passes alone {op_floor:.2f}x")
        out.update({f"{key}_flop_ratio": ours / fwd, f"{key}_floor": floor, f"{key}_floor_fast": fast,
                    f"{key}_op_ratio": ops / fwd_ops, f"{key}_op_floor": op_floor})
    out.update(corrupt_flop_ratio=corrupt / fwd, gradient_pass_flop_ratio=grad / fwd, products_flop_ratio=products / fwd)
    return out


def compare_with(bridge, batch, ig_steps: int, chunk: "int | None", path: str) -> dict[str, float]:
    """(c): the same EAP / EAP-IG calls with another implementation of ``eap`` (a file, e.g. the
    version before a change), timed in this run; prints the ratio and the largest score difference."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("eap_other", path)
    other = importlib.util.module_from_spec(spec)
    sys.modules["eap_other"] = other  # its dataclasses look their module up
    spec.loader.exec_module(other)
    out = {}
    for label, steps in (("EAP", 0), (f"EAP-IG ({ig_steps} steps)", ig_steps)):
        ours = lambda: eap(bridge, batch, ig_steps=steps, chunk=chunk)  # noqa: E731
        theirs = lambda: other.eap(bridge, batch, ig_steps=steps)  # noqa: E731
        a, b = ours(), theirs()  # untimed first calls
        t_ours = min(timed(ours)[1] for _ in range(2))
        t_theirs = min(timed(theirs)[1] for _ in range(2))
        scale = max(abs(v) for v in b.values())
        worst = max(abs(a[k] - b[k]) for k in b) / scale
        mem = peak_memory(theirs)
        print(f"(c) {label}: this implementation {t_ours:.3f} s, {Path(path).name} {t_theirs:.3f} s "
              f"-> {t_theirs / t_ours:.2f}x faster; max score difference {worst:.1e} relative"
              + ("" if mem is None else f"; {Path(path).name} peak memory {mem:.1f} GiB"))
        out[f"{'eap' if steps == 0 else 'eap_ig'}_speedup_vs_other"] = t_theirs / t_ours
        out[f"{'eap' if steps == 0 else 'eap_ig'}_difference_vs_other"] = worst
    return out


def hf_gpt2(config: dict, device: str, dtype: torch.dtype):
    """A GPT-2 of ``config``'s shape with random weights, booted like a downloaded one (through
    ``transformers`` and ``TransformerBridge.boot_transformers``): TransformerLens's attribution
    patching needs the Hugging Face attention bridge."""
    import tempfile
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformer_lens.model_bridge import TransformerBridge
    torch.manual_seed(config["seed"])
    hf = GPT2LMHeadModel(GPT2Config(n_layer=config["n_layers"], n_embd=config["d_model"], n_head=config["n_heads"],
                                    n_inner=config["d_mlp"], vocab_size=config["d_vocab"],
                                    n_positions=min(config["n_ctx"], 1024))).to(device=device, dtype=dtype).eval()
    with tempfile.TemporaryDirectory() as folder:
        hf.save_pretrained(folder)
        bridge = TransformerBridge.boot_transformers(folder, hf_model=hf, device=device)
    return bridge.eval()


def transformer_lens_peer(bridge, batch, n: int) -> dict[str, float]:
    """(d): TransformerLens 4's edge attribution patching (``attribution_patch``, edge granularity,
    plain attribution: the only kind it implements) on the first ``n`` prompts, against ``eap`` on the
    same prompts. TransformerLens takes the gradient on the corrupted run and scores per position; so
    the comparison runs ``eap`` with clean and corrupted swapped (gradient at the same run), sums its
    per-position edges and flips the sign. Its graph reads the token embedding alone (no position
    embedding), so edges from the input are left out of the comparison."""
    from transformer_lens.tools.analysis.attribution_patching import EdgeAttributionConfig, attribution_patch
    part = batch.subset(slice(0, n))
    swapped = type(part)(part.corrupt, part.clean, part.correct, part.incorrect, part.answer_pos)
    metric_fn = lambda i: lambda logits: logits[0, part.answer_pos[i], part.correct[i]] - logits[0, part.answer_pos[i], part.incorrect[i]]  # noqa: E731,E501
    totals: dict = {}

    def peer():
        totals.clear()
        for i in range(n):  # per prompt: its metric reads that prompt's answer tokens
            res = attribution_patch(bridge, part.clean[i:i + 1], part.corrupt[i:i + 1], metric_fn(i),
                                    EdgeAttributionConfig(granularity="edge"))
            for (w, r), v in res.edge_scores.items():
                totals[(w, r)] = totals.get((w, r), 0.0) + v / n
    _, t_peer = timed(peer)
    ours, t_ours = timed(lambda: eap(bridge, swapped))
    name = lambda node: {"attn_head_out": f"a{node.layer}.h{node.head}", "mlp_out": f"m{node.layer}"}.get(node.kind)  # noqa: E731
    recv = lambda node: {"q_input": f"a{node.layer}.h{node.head}:q", "k_input": f"a{node.layer}.h{node.head}:k",  # noqa: E731
                         "v_input": f"a{node.layer}.h{node.head}:v", "mlp_in": f"m{node.layer}",
                         "logits": "logits"}.get(node.kind)
    summed: dict[str, float] = {}
    for (w, r), v in totals.items():
        if name(w) is not None and recv(r) is not None:
            key = f"{name(w)}->{recv(r)}"
            summed[key] = summed.get(key, 0.0) + v
    keys = [k for k in summed if k in ours]
    a = torch.tensor([summed[k] for k in keys])
    b = -torch.tensor([ours[k] for k in keys])
    corr = float(torch.corrcoef(torch.stack([a, b]))[0, 1]) if len(keys) > 1 else float("nan")
    rel = float((a - b).abs().max() / b.abs().max())
    print(f"(d) TransformerLens 4 attribution_patch (edge granularity) on {n} prompts: {t_peer:.2f} s "
          f"({len(totals)} per-position edges); eap on the same prompts {t_ours:.3f} s -> {t_peer / t_ours:.0f}x; "
          f"{len(keys)} edges compared (summed over positions): Pearson {corr:.4f}, max difference {rel:.1e} relative")
    return {"peer_speedup": t_peer / t_ours, "peer_pearson": corr, "peer_difference": rel}


def make_batch(V: int, prompts: int, tokens: int, device: str) -> PromptBatch:
    g = torch.Generator().manual_seed(0)
    shape = (prompts, tokens)
    return PromptBatch(torch.randint(0, V, shape, generator=g), torch.randint(0, V, shape, generator=g),
                       torch.randint(0, V, (prompts,), generator=g),
                       torch.randint(0, V, (prompts,), generator=g)).to(device)


def build(config: dict, device: str, dtype: torch.dtype):
    """The bridge with random weights (made on the CPU, seeded, then moved: an 8B model takes
    about two minutes to make; making it directly on the GPU failed inside TransformerLens)."""
    torch.manual_seed(0)
    return boot_native(config, device=device, dtype=dtype).eval()


def run_arch(arch: str, args) -> dict[str, float]:
    """Every ``--sweep`` entry (prompts[:chunk]) on one model of ``arch``, made once."""
    config = ARCHITECTURES[arch]
    start = time.perf_counter()
    bridge = build(config, args.device, DTYPES[args.dtype])
    made = time.perf_counter() - start
    n_params = sum(p.numel() for p in bridge.parameters())
    runs = [(int(p), None if c in ("", "none") else int(c)) for p, _, c in
            (e.partition(":") for e in args.sweep.split(","))] if args.sweep else [(args.prompts, args.chunk)]
    out = {}
    for prompts, chunk in runs:
        batch = make_batch(config["d_vocab"], prompts, args.tokens, args.device)
        graph = Graph.of(bridge)
        print(f"\n{arch} architecture ({n_params / 1e9:.2f} B parameters, {args.dtype}, made in {made:.0f} s), "
              f"random weights, {prompts} prompts x {args.tokens} tokens, device {args.device}"
              f"{'' if chunk is None else f', EAP in chunks of {chunk} prompts'}, torch threads "
              f"{torch.get_num_threads()}, clock: {'process CPU time' if CLOCK is time.process_time else 'wall time'}")
        if torch.cuda.is_available() and args.device != "cpu":
            print(f"device {torch.cuda.get_device_name()}, model weights {torch.cuda.memory_allocated() / 2 ** 30:.1f} GiB")
        with torch.no_grad():
            bridge(batch.clean)  # warm-up
        forward = forward_time(bridge, batch.clean)
        print(f"one forward pass (full logits): {forward:.3f} s")
        out = {"forward_s": forward}
        if not args.no_knockout:
            out.update(knockouts(bridge, batch, graph, args.seed_sample))
        if args.profile:
            profile_eap(bridge, batch, chunk)
        if args.flops:
            out.update(flop_floor(bridge, batch, args.ig_steps, chunk, args.peak_ratio))
            continue
        out.update(edge_methods(bridge, batch, args.ig_steps, chunk))
        if args.tf32 and args.device != "cpu":
            out.update(tf32_run(bridge, batch, args.ig_steps, chunk))
        if args.compare_with and (chunk is None or chunk >= prompts):
            out.update(compare_with(bridge, batch, args.ig_steps, chunk, args.compare_with))
    if args.peer:  # on a Hugging Face GPT-2 of the same shape (the peer needs its attention bridge)
        del bridge
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        bridge = hf_gpt2(config, args.device, DTYPES[args.dtype])
        print(f"(d) on a Hugging Face GPT-2 of this shape booted through boot_transformers: one forward pass "
              f"{forward_time(bridge, batch.clean):.3f} s")
        eap(bridge, batch.subset(slice(0, args.peer)))  # warm
        out.update(transformer_lens_peer(bridge, batch, args.peer))
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
    ap.add_argument("--sweep", default=None, metavar="P[:C],...",
                    help="several prompt counts (and chunks) on one model, e.g. 8,32:8,32:16 (overrides --prompts/--chunk)")
    ap.add_argument("--ig-steps", type=int, default=5)
    ap.add_argument("--no-knockout", action="store_true", help="skip (a)")
    ap.add_argument("--seed-sample", type=int, default=12, help="seed-loop candidates actually timed")
    ap.add_argument("--compare-with", default=None, metavar="FILE",
                    help="another implementation of eap (a .py file) to time and compare in the same run")
    ap.add_argument("--tf32", action="store_true", help="also time with TF32 matrix products (GPU)")
    ap.add_argument("--profile", action="store_true", help="profile one EAP call first (torch.profiler)")
    ap.add_argument("--flops", action="store_true",
                    help="count matrix-product FLOPs instead of timing (f): EAP's floor in forward passes")
    ap.add_argument("--peak-ratio", type=float, default=1.0, metavar="X",
                    help="with --flops, also the floor with the edge products X times faster than the forward pass's")
    ap.add_argument("--peer", type=int, default=0, metavar="N",
                    help="time TransformerLens 4's attribution_patch (edges) on N prompts against eap")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    if args.peak_ratio < 1:
        ap.error(f"--peak-ratio is how many times faster than the forward pass the edge products are assumed to run: "
                 f"at least 1, got {args.peak_ratio:g}.")
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
