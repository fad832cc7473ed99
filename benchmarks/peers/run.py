"""One comparison case: a model, a task and a number of prompts, every method on both sides.

Per method: one untimed call on each side whose scores are compared and whose added memory is
recorded (a sampler runs beside it), then ``reps`` timed calls that alternate sides (book, peer, peer,
book, ...), so that a drift of the machine's speed touches both alike. Each side times the call alone,
inside its own process (CPU seconds of the process: the other job on the machine does not count)."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from benchmarks.peers import book_side
from benchmarks.peers.client import Peer, PeerError
from benchmarks.peers.convert import save_hooked
from benchmarks.peers.measure import peak_added_rss, timed
from benchmarks.peers.report import agreement, circuit_size, summary, top_k
from shared.engine.graph import Graph


@dataclass(frozen=True)
class Case:
    model: str
    task: str
    prompts: int
    methods: tuple[str, ...] = book_side.METHODS
    length: int = 16  # tokens of the random task


def load_case(peer: Peer, case: Case, work: Path) -> tuple[Any, Any, dict]:
    """Load the model on both sides, check they agree (logits, edge names), send the prompts."""
    bridge = book_side.load_subject(case.model)
    batch = book_side.prompts(bridge, case.task, case.prompts, length=case.length)
    graph = Graph.of(bridge)
    save_hooked(bridge, work / "model.pt")
    ans = peer.ask("load", model=str(work / "model.pt"), edges=graph.edges)
    if not ans["matched"]:
        extra = sorted(set(ans["edges"]) ^ set(graph.edges))[:4]
        raise PeerError(f"The two libraries' edge sets differ for {case.model} (e.g. {extra}).")
    tokens = batch.clean[: min(4, len(batch))]
    torch.save(tokens, work / "tokens.pt")
    peer.ask("logits", tokens=str(work / "tokens.pt"), out=str(work / "logits.pt"))
    with torch.no_grad():
        ref = bridge(tokens).float()
    logit_gap = float((torch.load(work / "logits.pt", weights_only=True) - ref).abs().max())
    torch.save({"clean": batch.clean, "corrupt": batch.corrupt, "correct": batch.correct,
                "incorrect": batch.incorrect}, work / "data.pt")
    peer.ask("data", data=str(work / "data.pt"))
    with torch.no_grad():
        rows = torch.arange(len(batch))
        last = bridge(batch.clean)[rows, batch.answer_pos]
        clean_ld = float((last[rows, batch.correct] - last[rows, batch.incorrect]).mean())
    info = {"edges": len(graph.edges), "tokens": batch.clean.shape[1], "logit_gap": logit_gap,
            "clean_logit_diff": clean_ld}
    return bridge, batch, info


def circuits(graph: Graph, method: str, book: torch.Tensor, peer: torch.Tensor) -> dict[str, list[str]]:
    """Each side's circuit: the kept edges (ACDC) or the top-k edges by |score|."""
    if method == "acdc":
        pick = lambda s: [e for e, k in zip(graph.edges, s.tolist()) if k > 0.5]
    else:
        k = circuit_size(len(graph.edges))
        pick = lambda s: [graph.edges[i] for i in sorted(top_k(s, k))]
    return {"book_circuit": pick(book), "peer_circuit": pick(peer)}


def normalized(f: dict) -> float:
    span = f["full"] - f["empty"]
    return (f["circuit"] - f["empty"]) / span if abs(span) > 1e-9 else float("nan")


def compare_method(peer: Peer, bridge: Any, batch: Any, method: str, reps: int, ig_steps: int,
                   acdc_threshold: float, work: Path, faith: bool = True) -> dict:
    args: dict[str, Any] = {}
    setting = None
    if method == "eap_ig":
        # auto-circuit averages gradients over samples + 1 mask values (0 and 1 included); the book over
        # ig_steps embedding points (1/steps .. 1): samples = ig_steps - 1 gives both ig_steps passes
        args["samples"] = max(1, ig_steps - 1)
    if method == "acdc":
        setting = book_side.acdc_setting(bridge, batch, acdc_threshold)
        mant, exp = f"{setting.tau:.15e}".split("e")
        args.update(tau_base=float(mant), tau_exp=int(exp), order=setting.order)
    call = lambda: book_side.run_method(bridge, batch, method, ig_steps=ig_steps, setting=setting)
    raw, mem_book = peak_added_rss(call)
    book = book_side.as_scores(bridge, method, raw)
    out = work / f"{method}.pt"
    mem_peer = peer.ask("run", method=method, args=args, memory=True, out=str(out))["rss_added"]
    peer_scores = torch.load(out, weights_only=True)
    t_book, t_peer = [], []
    for r in range(reps):
        for side in (("book", "peer") if r % 2 == 0 else ("peer", "book")):
            if side == "book":
                t_book.append(timed(call)[1])
            else:
                t_peer.append(peer.ask("run", method=method, args=args)["cpu"])
    res = {"method": method, "agreement": agreement(book, peer_scores, binary=method == "acdc"),
           "time_book": summary(t_book), "time_peer": summary(t_peer), "mem_book": mem_book, "mem_peer": mem_peer,
           "args": {k: v for k, v in args.items() if k != "order"}}
    if setting is not None:
        res["args"].update(threshold=setting.threshold, tau=setting.tau)
    else:  # integrated gradients along a path from clean to corrupted sum to the metric's total change
        res["agreement"].update(sum_book=float(book.sum()), sum_peer=float(peer_scores.sum()))
    if faith:
        graph = Graph.of(bridge)
        res["faithfulness"] = {}
        for who, edges in circuits(graph, method, book, peer_scores).items():
            fb = book_side.book_faithfulness(bridge, batch, edges)
            fp = peer.ask("faithfulness", edges=edges)
            res["faithfulness"][who] = {"book": normalized(fb), "peer": normalized(fp), "edges": len(edges),
                                        "raw_book": fb, "raw_peer": {k: fp[k] for k in ("circuit", "full", "empty")}}
    return res


def run_case(peer: Peer, case: Case, reps: int, ig_steps: int, acdc_threshold: float, faith: bool = True,
             log: Optional[Any] = print) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        work = Path(tmp)
        bridge, batch, info = load_case(peer, case, work)
        if log:
            log(f"{case.model} / {case.task}: {case.prompts} prompts x {info['tokens']} tokens, {info['edges']} edges, "
                f"clean logit difference {info['clean_logit_diff']:.3f}, largest logit gap between the two "
                f"models {info['logit_gap']:.1e}")
        rows = []
        for method in case.methods:
            res = compare_method(peer, bridge, batch, method, reps, ig_steps, acdc_threshold, work, faith)
            rows.append({"model": case.model, "task": case.task, "prompts": case.prompts, **info, **res})
            if log:
                t = res["time_book"]["median"], res["time_peer"]["median"]
                log(f"  {method}: book {t[0]:.3g} s, auto-circuit {t[1]:.3g} s; {res['agreement']}")
        return rows


__all__ = ["Case", "circuits", "compare_method", "load_case", "normalized", "run_case"]
