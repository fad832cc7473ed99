"""Circuit analysis of attention-only transformers ("A Mathematical Framework for Transformer Circuits").

Conventions (TransformerLens): activations are row vectors, so a head's OV circuit is
``W_OV = W_V @ W_O`` and its QK circuit ``W_QK = W_Q @ W_K.T`` (attention score of a destination
residual ``x_d`` on a source residual ``x_s`` is ``x_d W_QK x_s^T``). Heads are named ``L{layer}H{head}``.
Where a model has LayerNorm, :func:`weights` folds its scale into the matrices that read the
normalised stream; the normalisation itself is ignored (the scores are exact for models without).
"""
from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from shared.errors import ParameterError

Head = tuple[int, int]


# --------------------------------------------------------------------------------------------- names
def head_label(layer: int, head: int) -> str:
    return f"L{layer}H{head}"


def head_labels(n_layers: int, n_heads: int) -> list[str]:
    """Labels of all heads, layer-major."""
    return [head_label(layer, head) for layer in range(n_layers) for head in range(n_heads)]


def token_strings(tokenizer: Any, ids: Iterable[int]) -> list[str]:
    """Readable form of single tokens (``repr`` of the decoded text, so spaces and newlines show)."""
    return [repr(tokenizer.decode([int(i)])) for i in ids]


# ------------------------------------------------------------------------------------------- weights
@torch.no_grad()
def weights(bridge: Any) -> dict[str, torch.Tensor]:
    """Detached float32 copies of the weights the framework uses (per-head weights only if layers;
    ``W_pos`` only for learned absolute positions — with rotary positions the QK circuits here
    leave the rotation out)."""
    out = {"W_E": bridge.W_E, "W_U": bridge.W_U}
    if bridge.cfg.positional_embedding_type == "standard":
        out["W_pos"] = bridge.W_pos
    b_U = getattr(bridge, "b_U", None)
    out["b_U"] = b_U if b_U is not None else torch.zeros(bridge.W_U.shape[1])
    if bridge.cfg.n_layers > 0:
        for name in ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V"):
            out[name] = getattr(bridge, name)
    out = {k: v.detach().float().cpu() for k, v in out.items()}
    # Fold LayerNorm scales (where present) into the matrices that read the normalised stream.
    for layer in range(bridge.cfg.n_layers):
        scale = _norm_scale(bridge.blocks[layer].ln1)
        if scale is not None:
            for name in ("W_Q", "W_K", "W_V"):
                out[name][layer] = scale[:, None] * out[name][layer]
    final = _norm_scale(getattr(bridge, "ln_final", None))
    if final is not None:
        out["W_U"] = final[:, None] * out["W_U"]
    return out


def _norm_scale(norm: Any) -> Optional[torch.Tensor]:
    weight = getattr(norm, "weight", None) if norm is not None else None
    return weight.detach().float().cpu() if isinstance(weight, torch.Tensor) else None


def ov_matrices(W_V: torch.Tensor, W_O: torch.Tensor) -> torch.Tensor:
    """``W_V @ W_O`` per head: [..., d_model, d_model]."""
    return W_V @ W_O


def qk_matrices(W_Q: torch.Tensor, W_K: torch.Tensor) -> torch.Tensor:
    """``W_Q @ W_K^T`` per head: [..., d_model, d_model]."""
    return W_Q @ W_K.transpose(-1, -2)


# --------------------------------------------------------------------------------- OV eigenvalues
def cyclic_eigenvalues(*factors: torch.Tensor) -> torch.Tensor:
    """Non-trivial eigenvalues of the product ``factors[0] @ ... @ factors[-1]`` (a square matrix).

    The product of a cyclic rotation has the same non-zero eigenvalues, so the product is rotated
    to start at the factor with the smallest row count (e.g. the full OV circuit
    ``W_E W_V W_O W_U`` [vocab, vocab] becomes ``W_O W_U W_E W_V`` [d_head, d_head]).
    """
    if factors[0].shape[0] != factors[-1].shape[-1]:
        raise ParameterError("The product of the factors is not square, so it has no eigenvalues.")
    start = min(range(len(factors)), key=lambda i: factors[i].shape[0])
    rotated = factors[start:] + factors[:start]
    product = rotated[0].double()
    for f in rotated[1:]:
        product = product @ f.double()
    return torch.linalg.eigvals(product)


def copying_score(eigenvalues: torch.Tensor) -> float:
    """Sum of eigenvalues over sum of their absolute values (real part): +1 copying, −1 anti-copying."""
    total = eigenvalues.abs().sum()
    if total == 0:
        return 0.0
    return float(eigenvalues.sum().real / total)


def ov_eigenvalues(w: dict[str, torch.Tensor], layer: int, head: int) -> torch.Tensor:
    """Eigenvalues of the head's full OV circuit ``W_E W_V W_O W_U`` (token → logit), via d_head."""
    return cyclic_eigenvalues(w["W_E"], w["W_V"][layer, head], w["W_O"][layer, head], w["W_U"])


def ov_copying_scores(w: dict[str, torch.Tensor]) -> torch.Tensor:
    """Copying score of every head's full OV circuit: [layer, head]."""
    n_layers, n_heads = w["W_V"].shape[:2]
    return torch.tensor([[copying_score(ov_eigenvalues(w, l, h)) for h in range(n_heads)]
                         for l in range(n_layers)])


# --------------------------------------------------------------------------------- direct path
@torch.no_grad()
def direct_path_log_probs(w: dict[str, torch.Tensor], ids: torch.Tensor) -> torch.Tensor:
    """Log-probabilities of the direct path ``W_E W_U + b_U`` for current tokens ``ids`` and next
    tokens ``ids`` (softmax over the full vocabulary, then restricted): [len(ids), len(ids)]."""
    logits = w["W_E"][ids] @ w["W_U"] + w["b_U"]
    return logits.log_softmax(-1)[:, ids]


def bigram_log_probs(stream: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Corpus estimate of ``log P(next | current)`` for ``ids`` × ``ids`` and the pair counts.

    ``stream`` is a 1-D token stream. The conditional uses every following token in the denominator.
    Unseen pairs get ``-inf``.
    """
    index = torch.full((int(max(stream.max(), ids.max())) + 1,), -1, dtype=torch.long)
    index[ids] = torch.arange(len(ids))
    cur, nxt = index[stream[:-1]], index[stream[1:]]
    totals = torch.bincount(cur[cur >= 0], minlength=len(ids)).double()
    keep = (cur >= 0) & (nxt >= 0)
    pairs = torch.bincount(cur[keep] * len(ids) + nxt[keep], minlength=len(ids) ** 2).view(len(ids), len(ids))
    with np.errstate(divide="ignore"):
        logp = (pairs.double() / totals.clamp_min(1)[:, None]).log()
    return logp.float(), pairs


def frequent_tokens(stream: torch.Tensor, count: int, exclude: Sequence[int] = ()) -> torch.Tensor:
    """The ``count`` most frequent token ids of a stream (excluding ``exclude``), most frequent first."""
    freq = torch.bincount(stream)
    if len(exclude):
        freq[torch.tensor(list(exclude))[torch.tensor(list(exclude)) < len(freq)]] = 0
    count = min(count, int((freq > 0).sum()))
    return freq.argsort(descending=True)[:count]


def tokenize_stream(tokenizer: Any, texts: Sequence[str]) -> torch.Tensor:
    """Texts tokenized with any Hugging Face tokenizer and concatenated (no special tokens)."""
    ids: list[int] = []
    for text in texts:
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
    return torch.tensor(ids, dtype=torch.long)


# --------------------------------------------------------------------------------- skip-trigrams
@torch.no_grad()
def skip_trigram_circuits(w: dict[str, torch.Tensor], layer: int, head: int,
                          ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-level QK and OV circuits of one head restricted to the tokens ``ids``.

    QK [dest, src]: attention score of destination token on source token from the embeddings
    (positional embeddings left out), centred over sources (softmax ignores a per-row constant).
    OV [src, out]: logit change of each output token per unit attention to the source token,
    centred over outputs.
    """
    E = w["W_E"][ids]
    q = E @ w["W_Q"][layer, head] + w["b_Q"][layer, head]
    k = E @ w["W_K"][layer, head] + w["b_K"][layer, head]
    qk = (q @ k.T) / np.sqrt(q.shape[-1])
    ov = E @ w["W_V"][layer, head] @ w["W_O"][layer, head] @ w["W_U"][:, ids]
    return qk - qk.mean(1, keepdim=True), ov - ov.mean(1, keepdim=True)


def skip_trigrams(w: dict[str, torch.Tensor], tokenizer: Any, layer: int, head: int, ids: torch.Tensor,
                  n_sources: int = 8, top_k: int = 3) -> pd.DataFrame:
    """The head's strongest skip-trigrams ``source … destination → boosted`` as a table.

    Each source token is rated by how strongly some destination attends to it plus how strongly
    it raises some output (both in units of their circuit's standard deviation); the best
    ``n_sources`` are listed with their top destination and boosted tokens.
    """
    qk, ov = skip_trigram_circuits(w, layer, head, ids)
    strength = qk.max(0).values / qk.std() + ov.max(1).values / ov.std()
    rows = []
    for s in strength.argsort(descending=True)[:n_sources].tolist():
        dests = qk[:, s].argsort(descending=True)[:top_k]
        outs = ov[s].argsort(descending=True)[:top_k]
        rows.append({
            "head": head_label(layer, head),
            "source": token_strings(tokenizer, [ids[s]])[0],
            "destinations (attend to source)": " ".join(token_strings(tokenizer, ids[dests])),
            "boosted next tokens": " ".join(token_strings(tokenizer, ids[outs])),
            "copies source": bool(s in outs.tolist()),
            "strength": round(float(strength[s]), 2),
        })
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------- composition
def composition_score(left: torch.Tensor, right: torch.Tensor) -> float:
    """``‖left @ right‖_F / (‖left‖_F ‖right‖_F)``: how much two circuits read/write the same space."""
    denom = left.norm() * right.norm()
    return float((left @ right).norm() / denom) if denom > 0 else 0.0


def composition_scores(w: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Q-, K- and V-composition of every later head with every earlier head.

    Returns ``{"Q"|"K"|"V": [layer_to, head_to, layer_from, head_from]}`` (zero where
    ``layer_from >= layer_to``), with earlier-head OV ``A = W_V W_O`` and later-head
    ``W_QK = W_Q W_K^T``, ``W_OV``: Q: ``A W_QK``; K: ``W_QK A^T``; V: ``A W_OV``.
    """
    ov = ov_matrices(w["W_V"], w["W_O"])
    qk = qk_matrices(w["W_Q"], w["W_K"])
    n_layers, n_heads = ov.shape[:2]
    out = {kind: torch.zeros(n_layers, n_heads, n_layers, n_heads) for kind in "QKV"}
    for l2 in range(n_layers):
        for h2 in range(n_heads):
            for l1 in range(l2):
                for h1 in range(n_heads):
                    a = ov[l1, h1]
                    out["Q"][l2, h2, l1, h1] = composition_score(a, qk[l2, h2])
                    out["K"][l2, h2, l1, h1] = composition_score(qk[l2, h2], a.T)
                    out["V"][l2, h2, l1, h1] = composition_score(a, ov[l2, h2])
    return out


def random_composition_baseline(d_model: int, d_head: int, samples: int = 200, seed: int = 0) -> float:
    """Mean composition score of random Gaussian rank-``d_head`` matrices (the chance level)."""
    gen = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(samples):
        a = torch.randn(d_model, d_head, generator=gen) @ torch.randn(d_head, d_model, generator=gen)
        b = torch.randn(d_model, d_head, generator=gen) @ torch.randn(d_head, d_model, generator=gen)
        scores.append(composition_score(a, b))
    return float(np.mean(scores))


# --------------------------------------------------------------------------------- behavioural scores
def special_ids(tokenizer: Any) -> list[int]:
    return list(getattr(tokenizer, "all_special_ids", []) or [])


def repeated_random_tokens(d_vocab: int, seq_len: int, batch: int, seed: int,
                           bos_id: Optional[int] = None, exclude: Sequence[int] = ()) -> torch.Tensor:
    """``batch`` sequences of ``seq_len`` uniformly random tokens followed by the same tokens again,
    with ``bos_id`` in front if given: [batch, (1) + 2 * seq_len]."""
    if seq_len < 2 or batch < 1:
        raise ParameterError(f"Repeated sequences need seq_len >= 2 and batch >= 1 (got {seq_len}, {batch}).")
    allowed = torch.ones(d_vocab, dtype=torch.bool)
    allowed[[i for i in exclude if i < d_vocab]] = False
    pool = torch.nonzero(allowed).flatten()
    gen = torch.Generator().manual_seed(seed)
    half = pool[torch.randint(0, len(pool), (batch, seq_len), generator=gen)]
    tokens = torch.cat([half, half], dim=1)
    if bos_id is not None:
        tokens = torch.cat([torch.full((batch, 1), bos_id, dtype=torch.long), tokens], dim=1)
    return tokens


def repeated_tokens_for(bridge: Any, seq_len: int, batch: int, seed: int) -> torch.Tensor:
    """Repeated random tokens for ``bridge`` (BOS first when its tokenizer has one; specials excluded)."""
    tok = bridge.tokenizer
    if seq_len * 2 + 1 > bridge.cfg.n_ctx:
        raise ParameterError(f"seq_len {seq_len} is too long: twice it plus BOS must fit the context "
                             f"of {bridge.cfg.n_ctx} tokens.")
    bos = getattr(tok, "bos_token_id", None) if tok is not None else None
    return repeated_random_tokens(bridge.cfg.d_vocab, seq_len, batch, seed, bos_id=bos,
                                  exclude=special_ids(tok) if tok is not None else ())


@torch.no_grad()
def attention_patterns(bridge: Any, tokens: torch.Tensor) -> torch.Tensor:
    """All attention patterns: [layer, batch, head, dest, src]."""
    names = [f"blocks.{l}.attn.hook_pattern" for l in range(bridge.cfg.n_layers)]
    _, cache = bridge.run_with_cache(tokens, names_filter=lambda n: n in names)
    return torch.stack([cache[n].float().cpu() for n in names])


def diagonal_score(patterns: torch.Tensor, offset: int, first_dest: int) -> torch.Tensor:
    """Mean attention from each destination ``d >= first_dest`` to source ``d - offset``: [layer, head]."""
    n = patterns.shape[-1]
    dest = torch.arange(first_dest, n)
    src = dest - offset
    keep = src >= 0
    return patterns[..., dest[keep], src[keep]].mean(dim=(1, 3))


def head_scores(patterns: torch.Tensor, seq_len: int, has_bos: bool = True) -> dict[str, torch.Tensor]:
    """Previous-token, duplicate-token and induction scores on repeated random tokens: [layer, head].

    previous-token: attention to the token just before (all positions after the first token);
    duplicate-token: attention from the second copy to the same token's first occurrence;
    induction: attention from the second copy to the token after that first occurrence.
    """
    start = 1 if has_bos else 0
    second = start + seq_len
    return {
        "previous-token": diagonal_score(patterns, 1, start + 1),
        "duplicate-token": diagonal_score(patterns, seq_len, second),
        "induction": diagonal_score(patterns, seq_len - 1, second),
    }


def prefix_matching_scores(bridge: Any, seq_len: int = 30, batch: int = 16, seed: int = 0) -> torch.Tensor:
    """Prefix-matching score of every head (Olsson et al.): attention, on repeated random tokens, to
    the token that followed the earlier occurrence of the current token: [layer, head]."""
    tokens = repeated_tokens_for(bridge, seq_len, batch, seed)
    return head_scores(attention_patterns(bridge, tokens), seq_len, has_bos=tokens.shape[1] > 2 * seq_len)["induction"]


def top_heads(scores: torch.Tensor, threshold: float) -> list[Head]:
    """Heads whose score exceeds ``threshold``, best first (at least the single best head)."""
    flat = scores.flatten()
    order = flat.argsort(descending=True).tolist()
    n_heads = scores.shape[1]
    chosen = [i for i in order if flat[i] > threshold] or order[:1]
    return [(i // n_heads, i % n_heads) for i in chosen]


# --------------------------------------------------------------------------------- losses
@torch.no_grad()
def per_token_loss(bridge: Any, tokens: torch.Tensor, fwd_hooks: Sequence[tuple[str, Any]] = ()) -> torch.Tensor:
    """Next-token cross-entropy at every position: [batch, pos - 1]."""
    logits = bridge.run_with_hooks(tokens, fwd_hooks=list(fwd_hooks)) if fwd_hooks else bridge(tokens)
    logits = logits.float()
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten(),
                           reduction="none").view(tokens.shape[0], -1).cpu()


@torch.no_grad()
def mean_ablation_hooks(bridge: Any, tokens: torch.Tensor, heads: Sequence[Head]) -> list[tuple[str, Any]]:
    """Hooks replacing each head's output (``hook_z``) by its mean over batch and positions of ``tokens``."""
    layers = sorted({l for l, _ in heads})
    names = [f"blocks.{l}.attn.hook_z" for l in layers]
    _, cache = bridge.run_with_cache(tokens, names_filter=lambda n: n in names)
    hooks = []
    for layer in layers:
        idx = [h for l, h in heads if l == layer]
        mean = cache[f"blocks.{layer}.attn.hook_z"][:, :, idx].mean(dim=(0, 1))

        def hook(z, hook=None, idx=idx, mean=mean):
            z = z.clone()
            z[:, :, idx] = mean.to(z.dtype)
            return z

        hooks.append((f"blocks.{layer}.attn.hook_z", hook))
    return hooks


def ablation_table(bridge: Any, tokens: torch.Tensor, seq_len: int,
                   ablations: dict[str, Sequence[Head]]) -> pd.DataFrame:
    """Mean loss on the first and the repeated half of repeated random tokens, clean and with each
    set of heads mean-ablated. Predictions of the first token of each half are left out."""
    start = tokens.shape[1] - 2 * seq_len  # 1 with BOS, else 0
    # prediction at position p (of token p + 1) is column p of the loss
    first = slice(start, start + seq_len - 1)
    repeated = slice(start + seq_len, start + 2 * seq_len - 1)
    rows = []
    for name, heads in {"none (clean)": [], **ablations}.items():
        hooks = mean_ablation_hooks(bridge, tokens, heads) if heads else []
        loss = per_token_loss(bridge, tokens, hooks)
        rows.append({"ablated": name, "loss first half": float(loss[:, first].mean()),
                     "loss repeated half": float(loss[:, repeated].mean())})
    return pd.DataFrame(rows).set_index("ablated")


def loss_by_position(bridge: Any, windows: torch.Tensor, batch: int = 32) -> torch.Tensor:
    """Mean next-token loss at each position of the text windows: [pos - 1]."""
    parts = [per_token_loss(bridge, windows[i: i + batch]) for i in range(0, len(windows), batch)]
    return torch.cat(parts).mean(0)


def icl_score(position_loss: torch.Tensor, early: int, late: int, width: int = 4) -> float:
    """In-context-learning score: mean loss around position ``late`` minus around ``early``
    (negative when later tokens are easier to predict)."""
    n = len(position_loss)
    if not (0 <= early < late < n):
        raise ParameterError(f"Need 0 <= early < late < {n} for the ICL score (got {early}, {late}).")
    def around(p: int) -> float:
        return float(position_loss[max(0, p - width): min(n, p + width + 1)].mean())
    return around(late) - around(early)


def text_windows(stream: torch.Tensor, n_ctx: int, count: int, seed: int,
                 bos_id: Optional[int] = None) -> torch.Tensor:
    """``count`` random windows of a token stream (seeded), each of ``n_ctx`` tokens (BOS first if given)."""
    length = n_ctx - (1 if bos_id is not None else 0)
    if len(stream) <= length:
        raise ParameterError(f"The text has {len(stream)} tokens, too few for windows of {length}.")
    gen = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(stream) - length, (count,), generator=gen).tolist()
    windows = torch.stack([stream[s: s + length] for s in starts])
    if bos_id is not None:
        windows = torch.cat([torch.full((count, 1), bos_id, dtype=torch.long), windows], dim=1)
    return windows


# --------------------------------------------------------------------------------- plotting
def head_heatmap(ax: Any, scores: torch.Tensor, title: str, vmin: float = 0.0, vmax: float = 1.0,
                 cmap: str = "Blues", fmt: str = "{:.2f}") -> Any:
    """Draw a [layer, head] score grid on ``ax`` with the values written in the cells."""
    data = scores.detach().cpu().numpy()
    image = ax.imshow(data, vmin=vmin, vmax=vmax, cmap=cmap, aspect="auto")
    ax.set_xticks(range(data.shape[1]))
    ax.set_yticks(range(data.shape[0]))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(title)
    if data.size <= 64:
        for (i, j), value in np.ndenumerate(data):
            ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=7,
                    color="white" if (value - vmin) > 0.6 * (vmax - vmin) else "black")
    return image


def describe_model(bridge: Any) -> str:
    """One line naming a model (see :func:`shared.zoo.registry.describe`)."""
    from shared.zoo.registry import describe

    return describe(bridge)
