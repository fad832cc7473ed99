"""Agreement statistics between two score vectors over the same edges, and the printed tables."""
from __future__ import annotations

import statistics
from typing import Any, Sequence

import torch


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    den = float(a.norm() * b.norm())
    return float((a * b).sum()) / den if den > 0 else float("nan")


def ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks from 0, ties sharing their mean rank (as Spearman's coefficient needs)."""
    x = x.double()
    order = torch.argsort(x, stable=True)
    r = torch.empty_like(x)
    r[order] = torch.arange(len(x), dtype=torch.float64)
    values, inverse = torch.unique(x, return_inverse=True)
    if len(values) < len(x):
        sums = torch.zeros(len(values), dtype=torch.float64).index_add_(0, inverse, r)
        counts = torch.zeros(len(values), dtype=torch.float64).index_add_(0, inverse, torch.ones_like(r))
        r = (sums / counts)[inverse]
    return r


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    return pearson(ranks(a), ranks(b))


def top_k(scores: torch.Tensor, k: int) -> set[int]:
    """Indices of the ``k`` largest |scores| (ties broken by edge order)."""
    return set(torch.argsort(-scores.abs(), stable=True)[:k].tolist())


def top_k_overlap(a: torch.Tensor, b: torch.Tensor, k: int) -> float:
    """Share of the book's top-k edges (by |score|) that are also in the peer's top-k."""
    return len(top_k(a, k) & top_k(b, k)) / k if k else float("nan")


def circuit_size(n_edges: int) -> int:
    """The k of the top-k circuits and overlaps: a tenth of the edges, at least 5 and at most 200."""
    return max(5, min(200, round(0.1 * n_edges)))


def agreement(book: torch.Tensor, peer: torch.Tensor, binary: bool = False) -> dict[str, Any]:
    """Pearson, Spearman, top-k overlap and the largest difference relative to the largest |score|;
    for kept/removed vectors (ACDC) the sizes and how many edges differ."""
    if binary:
        kb, kp = book > 0.5, peer > 0.5
        return {"kept_book": int(kb.sum()), "kept_peer": int(kp.sum()), "differ": int((kb ^ kp).sum()),
                "jaccard": float((kb & kp).sum()) / max(1, int((kb | kp).sum()))}
    k = circuit_size(len(book))
    scale = float(book.abs().max()) or 1.0
    return {"pearson": pearson(book, peer), "spearman": spearman(book, peer), "k": k,
            "top_k": top_k_overlap(book, peer, k), "max_rel_diff": float((book - peer).abs().max()) / scale}


def summary(times: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "n": len(times)}


def _f(x: float, digits: int = 4) -> str:
    return "nan" if x != x else f"{x:.{digits}f}"


def agreement_table(rows: list[dict]) -> str:
    head = ("| model | task | prompts | edges | method | Pearson | Spearman | top-k overlap (k) | "
            "max diff / max score | faithfulness of book circuit (book / a-c evaluator) | "
            "of a-c circuit (book / a-c) |\n|---|---|---|---|---|---|---|---|---|---|---|")
    out = [head]
    for r in rows:
        a, f = r["agreement"], r.get("faithfulness", {})
        fb, fp = f.get("book_circuit", {}), f.get("peer_circuit", {})
        pair = lambda d: f"{_f(d['book'], 3)} / {_f(d['peer'], 3)}" if d else "-"
        if "jaccard" in a:
            stats = (f"kept {a['kept_book']} / {a['kept_peer']} | differ {a['differ']} | "
                     f"Jaccard {_f(a['jaccard'], 3)} | -")
        else:
            stats = (f"{_f(a['pearson'])} | {_f(a['spearman'])} | {_f(a['top_k'], 2)} ({a['k']}) | "
                     f"{a['max_rel_diff']:.1e}")
        out.append(f"| {r['model']} | {r['task']} | {r['prompts']} | {r['edges']} | {r['method']} | {stats} | "
                   f"{pair(fb)} | {pair(fp)} |")
    return "\n".join(out)


def speed_table(rows: list[dict]) -> str:
    head = ("| model | task | prompts | edges | method | book CPU s (median, range) | auto-circuit CPU s | "
            "a-c / book | memory added book / a-c (MB) |\n|---|---|---|---|---|---|---|---|---|")
    out = [head]
    for r in rows:
        b, p = r["time_book"], r["time_peer"]
        rng = lambda s: f"{s['median']:.3g} ({s['min']:.3g}-{s['max']:.3g})"
        out.append(f"| {r['model']} | {r['task']} | {r['prompts']} | {r['edges']} | {r['method']} | {rng(b)} | "
                   f"{rng(p)} | {p['median'] / b['median']:.1f}x | {r['mem_book'] / 2**20:.0f} / "
                   f"{r['mem_peer'] / 2**20:.0f} |")
    return "\n".join(out)


__all__ = ["agreement", "agreement_table", "circuit_size", "pearson", "ranks", "spearman", "speed_table",
           "summary", "top_k", "top_k_overlap"]
