"""auto-circuit's side of the comparison: a long-lived worker that runs in ``.venv-peers``.

Started by :mod:`benchmarks.peers.run` as ``.venv-peers/bin/python -m benchmarks.peers.worker``; reads
one JSON request per line on stdin and answers one JSON line on stdout (everything else the libraries
print goes to stderr). Tensors travel through files written with ``torch.save``. Requests:

- ``load``: ``model`` (a file with a HookedTransformer ``config`` and ``state_dict``, written by
  :mod:`benchmarks.peers.convert`), ``edges`` (the book's edge names in ``Graph.edges`` order). Builds
  the HookedTransformer the way auto-circuit's own loader does (split q/k/v inputs, per-head results,
  MLP-input hook, eval mode, no weight gradients) and wraps it with ``patchable_model(factorized=True,
  separate_qkv=True, slice_output="last_seq")``. Answers auto-circuit's edge names, mapped to the book's.
- ``logits``: the unpatched model's logits on ``tokens`` (for the conversion check).
- ``data``: the clean/corrupted tokens and answers; one batch holding every prompt.
- ``run``: ``method`` = ``patching`` (each edge patched alone with the corrupted value, through
  auto-circuit's patch masks, ACDC-style from the edge's layer), ``eap`` (mask gradients at mask 0),
  ``eap_ig`` (mask gradients averaged over ``samples`` + 1 mask values from 0 to 1) or ``acdc``
  (``acdc_prune_scores`` with one threshold ``tau_base * 10**tau_exp`` on the KL divergence, visiting
  the edges in ``order`` when given). Scores are saved in the
  book's edge order; the answer holds the CPU and wall seconds of the call alone, and with
  ``memory`` the resident memory it added.
- ``faithfulness``: logit difference of the model with only ``edges`` kept (the rest patched with the
  corrupted run) by auto-circuit's ``run_circuits``, beside the intact and fully patched model.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any

import torch

from benchmarks.peers.edges import peer_edge_to_book
from benchmarks.peers.measure import peak_added_rss, timed


class PeerModel:
    """A converted model wrapped by auto-circuit, with the map from the book's edges to its masks."""

    def __init__(self, path: str, book_edges: list[str]):
        import transformer_lens as tl
        from auto_circuit.utils.graph_utils import patchable_model

        spec = torch.load(path, weights_only=True)
        cfg = tl.HookedTransformerConfig(**spec["config"], use_attn_result=True, use_split_qkv_input=True,
                                         use_hook_mlp_in=True, device="cpu", init_weights=False)
        model = tl.HookedTransformer(cfg)
        missing, unexpected = model.load_state_dict(spec["state_dict"], strict=False)
        missing = [k for k in missing if not k.endswith(("attn.mask", "attn.IGNORE"))]
        if missing or unexpected:
            raise SystemExit(f"The converted state dict does not fit HookedTransformer: missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]}.")
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self.plain_logits = lambda tokens: model(tokens).detach()
        self.model = patchable_model(model, factorized=True, slice_output="last_seq", separate_qkv=True,
                                     device=torch.device("cpu"))
        by_name = {peer_edge_to_book(e.name): e for e in self.model.edges}
        self.edge_names = sorted(by_name)
        missing_edges = [e for e in book_edges if e not in by_name]
        if missing_edges or len(by_name) != len(book_edges):
            self.edges = None  # the book side reports the mismatch from edge_names
            return
        self.edges = [by_name[e] for e in book_edges]  # in the book's order
        self.book_index = {e: i for i, e in enumerate(book_edges)}

    def to_book_order(self, prune_scores: dict) -> torch.Tensor:
        return torch.tensor([float(prune_scores[e.dest.module_name][e.patch_idx]) for e in self.edges],
                            dtype=torch.float64)


def make_loader(path: str):
    from auto_circuit.data import PromptDataLoader, PromptDataset

    d = torch.load(path, weights_only=True)
    n, pos = d["clean"].shape
    dataset = PromptDataset(d["clean"], d["corrupt"], d["correct"].view(-1, 1), d["incorrect"].view(-1, 1))
    return PromptDataLoader(dataset, seq_len=None, diverge_idx=0, batch_size=n, shuffle=False)


def logit_diff(out: torch.Tensor, batch: Any) -> torch.Tensor:
    from auto_circuit.utils.tensor_ops import batch_answer_diffs

    return batch_answer_diffs(out, batch)


def exact_patching(pm: PeerModel, loader) -> torch.Tensor:
    """Metric drop when one edge is patched with its corrupted value, edge by edge. Uses auto-circuit's
    masks and its ACDC's way of running only from the edge's layer (clean residual cached)."""
    from auto_circuit.utils.ablation_activations import src_ablations
    from auto_circuit.utils.graph_utils import patch_mode, set_all_masks

    model, batch = pm.model, next(iter(loader))
    out_slice = model.out_slice
    patch_outs = src_ablations(model, batch.corrupt)
    clean_outs = src_ablations(model, batch.clean)
    with torch.inference_mode():
        clean = logit_diff(model(batch.clean)[out_slice], batch).mean()
        _, toks, short_embd, attn_mask = model.input_to_embed(batch.clean)
        _, cache = model.run_with_cache(batch.clean)
        resids = [cache[f"blocks.{i}.hook_resid_pre"].clone() for i in range(model.cfg.n_layers)]
        del cache
    scores = torch.empty(len(pm.edges), dtype=torch.float64)
    set_all_masks(model, val=0.0)
    # A run from layer l refreshes the recorded outputs of the senders in layers >= l only, so the
    # senders below must still hold their clean outputs: visit the edges from the last receiver layer
    # down, as auto-circuit's ACDC does (in the book's order, a patched layer-0 run would leave patched
    # layer-0 outputs behind for the next edge into layer 1).
    order = sorted(range(len(pm.edges)), key=lambda i: -pm.edges[i].dest.layer)
    with patch_mode(model, patch_outs, curr_src_outs=clean_outs):
        for i in order:
            edge = pm.edges[i]
            mask = edge.patch_mask(model)
            mask.data[edge.patch_idx] = 1.0
            start = int(edge.dest.module_name.split(".")[1])
            with torch.inference_mode():
                out = model(resids[start], start_at_layer=start, tokens=toks, shortformer_pos_embed=short_embd,
                            attention_mask=attn_mask)[out_slice]
            mask.data[edge.patch_idx] = 0.0
            scores[i] = float(clean - logit_diff(out, batch).mean())
    return scores


def run_method(pm: PeerModel, loader, method: str, args: dict) -> Any:
    """The raw result of one method (converted to the book's order afterwards, outside the timing)."""
    from auto_circuit.prune_algos.ACDC import acdc_prune_scores
    from auto_circuit.prune_algos.mask_gradient import mask_gradient_prune_scores

    if method == "patching":
        return exact_patching(pm, loader)
    if method == "eap":
        return mask_gradient_prune_scores(pm.model, loader, None, grad_function="logit",
                                          answer_function="avg_diff", mask_val=0.0)
    if method == "eap_ig":
        return mask_gradient_prune_scores(pm.model, loader, None, grad_function="logit",
                                          answer_function="avg_diff", integrated_grad_samples=int(args["samples"]))
    if method == "acdc":
        # acdc_prune_scores tries every tau = base * 10**exp; one base and exponent give one threshold
        # it visits model.edges sorted by receiver layer; model.edges is a set, whose order changes with
        # Python's string-hash seed, so the book side passes its own visiting order (``order``)
        base, exp = args["tau_base"], args["tau_exp"]
        if args.get("order"):
            pm.model.edges = [pm.edges[pm.book_index[e]] for e in args["order"]]
        return acdc_prune_scores(pm.model, loader, None, tao_exps=[exp], tao_bases=[base], faithfulness_target="kl_div")
    raise SystemExit(f"Unknown method {method!r}; the worker knows patching, eap, eap_ig and acdc.")


def to_book(pm: PeerModel, method: str, raw: Any, args: dict) -> torch.Tensor:
    if method == "patching":
        return raw
    scores = pm.to_book_order(raw)
    if method == "eap_ig":  # gradients are summed over samples + 1 mask values: make them a mean
        scores = scores / (int(args["samples"]) + 1)
    if method == "acdc":  # kept edges keep the initial score inf; pruned ones get tau
        scores = torch.isinf(scores).to(torch.float64)
    return scores


def faithfulness(pm: PeerModel, loader, kept: list[str]) -> dict:
    from auto_circuit.prune import run_circuits
    from auto_circuit.types import PatchType

    model, batch = pm.model, next(iter(loader))
    keep = set(kept)
    scores = model.new_prune_scores()
    for e, edge in zip(pm.book_index, pm.edges):
        if e in keep:
            scores[edge.dest.module_name][edge.patch_idx] = 1.0
    n = len(pm.edges)
    outs = run_circuits(model, loader, [len(keep), 0, n], scores, patch_type=PatchType.TREE_PATCH)
    value = lambda k: float(logit_diff(outs[k][batch.key], batch).mean())
    return {"circuit": value(len(keep)), "empty": value(0), "full": value(n)}


def serve(stdin: Any, reply: Any) -> None:
    pm, loader = None, None
    for line in stdin:
        req = json.loads(line)
        op = req["op"]
        try:
            if op == "load":
                pm = PeerModel(req["model"], req["edges"])
                ans = {"edges": pm.edge_names, "matched": pm.edges is not None}
            elif op == "logits":
                tokens = torch.load(req["tokens"], weights_only=True)
                torch.save(pm.plain_logits(tokens), req["out"])
                ans = {}
            elif op == "data":
                loader = make_loader(req["data"])
                ans = {}
            elif op == "run":
                method, args = req["method"], req.get("args", {})
                call = lambda: run_method(pm, loader, method, args)
                if req.get("memory"):
                    raw, added = peak_added_rss(call)
                    ans = {"rss_added": added}
                else:
                    raw, cpu, wall = timed(call)
                    ans = {"cpu": cpu, "wall": wall}
                if req.get("out"):
                    torch.save(to_book(pm, method, raw, args), req["out"])
            elif op == "faithfulness":
                ans = faithfulness(pm, loader, req["edges"])
            elif op == "quit":
                reply.write(json.dumps({"ok": True}) + "\n")
                reply.flush()
                return
            else:
                ans = {"error": f"unknown request {op!r}"}
        except Exception as exc:  # the book side prints it and stops
            ans = {"error": f"{type(exc).__name__}: {exc}"}
        reply.write(json.dumps({"ok": "error" not in ans, **ans}) + "\n")
        reply.flush()


def main() -> None:
    torch.set_num_threads(int(os.environ.get("PEERS_THREADS", "1")))
    reply = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # library prints must not reach the protocol
    sys.stdout = sys.stderr
    serve(sys.stdin, reply)


if __name__ == "__main__":
    main()


__all__ = ["PeerModel", "exact_patching", "faithfulness", "main", "serve"]
