"""Hand-built models whose circuits are known by construction, to check circuit methods against.

Both models have no normalisation and residual streams split into named one-hot subspaces, so each
head's job is set directly in its weights. ``noise`` heads (and MLP) read the token and position
subspaces with random weights and write mostly into a spare subspace that nothing reads, with a
small leak into the output subspace: they move the metric a little, the planted nodes a lot.

* :func:`induction_model` — a previous-token head ``a0.h0`` feeds the key of the induction head
  ``a1.h0``, which copies the token after the earlier occurrence of the current one.
* :func:`copy_first_model` — ``a0.h1`` copies the first token into a subspace, MLP ``m0`` moves it
  to a second subspace (same-layer attention -> MLP edge), and ``a1.h2`` reads it and writes the
  answer (MLP -> head value edge).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from shared.engine.batch import PromptBatch
from shared.errors import ParameterError
from shared.zoo.registry import boot_native


@dataclass
class PlantedModel:
    """A bridge with its planted circuit: ``nodes`` (heads/MLPs) and ``edges`` the corruption moves."""

    bridge: Any
    nodes: list[str]
    edges: list[str]
    description: str
    make_batch: Any = field(repr=False, default=None)

    def __post_init__(self) -> None:
        _name_hand_built(self.bridge, self.description)

    def batch(self, n: int, seed: int = 0) -> PromptBatch:
        """``n`` clean/corrupted prompt pairs for the planted task (seeded)."""
        return self.make_batch(n, seed)


def _name_hand_built(bridge: Any, description: str) -> None:
    """How :func:`shared.chapters.common.report_run` names a hand-built model."""
    bridge.book_model_name = description
    bridge.book_model_description = f"hand-built model: {description}"


def _setter(bridge: Any):
    params: dict[str, list[torch.nn.Parameter]] = {}
    for name, p in bridge.original_model.named_parameters(remove_duplicate=False):
        canon = name.replace("._original_component", "").replace("_original_component.", "")
        params.setdefault(canon, []).append(p)

    def set_(name: str, value: torch.Tensor) -> None:
        if name not in params:
            raise KeyError(f"no parameter {name}; have {sorted(params)[:12]}...")
        with torch.no_grad():
            for p in params[name]:
                p.copy_(value)

    with torch.no_grad():
        for plist in params.values():
            for p in plist:
                p.zero_()
    return set_


def _heads_to_linear(W: torch.Tensor) -> torch.Tensor:
    """[heads, d_model, d_head] (TransformerLens layout) -> nn.Linear weight [heads*d_head, d_model]."""
    return W.permute(0, 2, 1).reshape(-1, W.shape[1])


def _out_to_linear(W: torch.Tensor) -> torch.Tensor:
    """[heads, d_head, d_model] -> nn.Linear weight [d_model, heads*d_head]."""
    return W.reshape(-1, W.shape[2]).T


class _Layout:
    def __init__(self, sizes: dict[str, int]):
        self.slices, start = {}, 0
        for name, size in sizes.items():
            self.slices[name] = slice(start, start + size)
            start += size
        self.d_model = start

    def __getitem__(self, name: str) -> slice:
        return self.slices[name]


def _noise_head(g: torch.Generator, lay: _Layout, d_head: int, leak: float, reads=("tok", "pos")):
    d = lay.d_model
    W = {k: torch.zeros(d, d_head) for k in "QKV"}
    for k in "QKV":
        for r in reads:
            W[k][lay[r]] = torch.randn(lay[r].stop - lay[r].start, d_head, generator=g) * 0.5
    O = torch.zeros(d_head, d)
    O[:, lay["spare"]] = torch.randn(d_head, lay["spare"].stop - lay["spare"].start, generator=g)
    O[:, lay["out"]] = torch.randn(d_head, lay["out"].stop - lay["out"].start, generator=g) * leak
    return W["Q"], W["K"], W["V"], O


def _blank_head(d: int, d_head: int):
    return torch.zeros(d, d_head), torch.zeros(d, d_head), torch.zeros(d, d_head), torch.zeros(d_head, d)


def _finish(bridge: Any, set_, Wq, Wk, Wv, Wo, bq, lay: _Layout, vocab: int, n_ctx: int) -> None:
    E = torch.zeros(vocab, lay.d_model)
    E[:, lay["tok"]] = torch.eye(vocab)
    P = torch.zeros(n_ctx, lay.d_model)
    P[:, lay["pos"]] = torch.eye(n_ctx)
    set_("tok_embed.weight", E)
    set_("pos.weight", P)
    for l in range(len(Wq)):
        set_(f"layers.{l}.attn.q.weight", _heads_to_linear(Wq[l]))
        set_(f"layers.{l}.attn.k.weight", _heads_to_linear(Wk[l]))
        set_(f"layers.{l}.attn.v.weight", _heads_to_linear(Wv[l]))
        set_(f"layers.{l}.attn.o.weight", _out_to_linear(Wo[l]))
        set_(f"layers.{l}.attn.q.bias", bq[l].reshape(-1))
    U = torch.zeros(vocab, lay.d_model)
    U[:, lay["out"]] = torch.eye(vocab)
    set_("head.weight", U)
    bridge.eval()


def induction_model(vocab: int = 16, n_ctx: int = 16, n_heads: int = 4, d_head: int = 16,
                    gain: float = 4.0, leak: float = 0.15, sharpness: float = 6.0, seed: int = 0,
                    distractor: float = 0.0, backup: float = 0.0) -> PlantedModel:
    """Two-layer attention-only model with a planted induction circuit ``a0.h0 -> a1.h0`` (key).

    Two knobs make it harder. ``distractor > 0`` turns the noise head ``a1.h{last}`` into a head that
    attends to the current token and writes it into the output subspace with that gain: a large
    output that barely touches the logit difference (the current token is never an answer; only the
    softmax's small leak to earlier tokens reaches the answer).
    ``backup > 0`` adds a backup induction head ``a1.h1`` (same mechanism, fed by the same
    previous-token head) carrying that share of the answer; ``a1.h0`` keeps the rest."""
    if d_head < max(vocab, n_ctx):
        raise ParameterError(f"d_head must be at least max(vocab, n_ctx) = {max(vocab, n_ctx)}.")
    if not 0 <= backup < 1 or distractor < 0 or n_heads < 1 + (backup > 0) + (distractor > 0):
        raise ParameterError("backup must be in [0, 1), distractor >= 0, and the model needs a head for each.")
    lay = _Layout({"tok": vocab, "pos": n_ctx, "prev": vocab, "out": vocab, "spare": 16})
    bridge = boot_native(dict(n_layers=2, d_model=lay.d_model, n_heads=n_heads, d_head=d_head, d_vocab=vocab,
                              n_ctx=n_ctx, attn_only=True, normalization_type=None, seed=seed))
    set_ = _setter(bridge)
    g = torch.Generator().manual_seed(seed)
    beta = sharpness * d_head ** 0.5
    d = lay.d_model
    Wq, Wk, Wv = [torch.zeros(2, n_heads, d, d_head) for _ in range(3)]
    Wo = torch.zeros(2, n_heads, d_head, d)
    bq = torch.zeros(2, n_heads, d_head)
    # a0.h0: attend from position i to i-1, copy that token into the "prev" subspace.
    for i in range(n_ctx):
        Wq[0, 0, lay["pos"].start + i, i] = 1.0
        if i + 1 < d_head:
            Wk[0, 0, lay["pos"].start + i, i + 1] = beta
    Wv[0, 0, lay["tok"], :vocab] = torch.eye(vocab)
    Wo[0, 0, :vocab, lay["prev"]] = torch.eye(vocab)
    # a1.h0: query = current token, key = previous token; copy the attended token to the output.
    for l in range(2):
        for h in range(1, n_heads):
            Wq[l, h], Wk[l, h], Wv[l, h], Wo[l, h] = _noise_head(g, lay, d_head, leak)
    for h, share in ((0, 1 - backup), (1, backup)) if backup > 0 else ((0, 1.0),):
        Wq[1, h], Wk[1, h], Wv[1, h], Wo[1, h] = _blank_head(d, d_head)
        Wq[1, h, lay["tok"], :vocab] = torch.eye(vocab)
        Wk[1, h, lay["prev"], :vocab] = beta * torch.eye(vocab)
        Wv[1, h, lay["tok"], :vocab] = torch.eye(vocab)
        Wo[1, h, :vocab, lay["out"]] = share * gain * torch.eye(vocab)
    if distractor > 0:  # attend to the current position, copy its token into the output subspace
        h = n_heads - 1
        Wq[1, h], Wk[1, h], Wv[1, h], Wo[1, h] = _blank_head(d, d_head)
        Wq[1, h, lay["pos"], :n_ctx] = torch.eye(n_ctx)
        Wk[1, h, lay["pos"], :n_ctx] = beta * torch.eye(n_ctx)
        Wv[1, h, lay["tok"], :vocab] = torch.eye(vocab)
        Wo[1, h, :vocab, lay["out"]] = distractor * torch.eye(vocab)
    _finish(bridge, set_, Wq, Wk, Wv, Wo, bq, lay, vocab, n_ctx)

    def make_batch(n: int, seed: int = 0, prefix: int = 6) -> PromptBatch:
        if 2 * prefix > vocab or 2 * prefix - 1 > n_ctx:
            raise ParameterError("The induction prompts need 2 * prefix <= vocab and <= n_ctx.")
        gen = torch.Generator().manual_seed(seed)
        clean, corrupt = [], []
        for _ in range(n):
            perm = torch.randperm(vocab, generator=gen)
            a, b = perm[:prefix], perm[prefix:2 * prefix]  # disjoint token sets
            clean.append(torch.cat([a, a[:-1]]))  # the last token repeats a[-2]: answer a[-1]
            corrupt.append(torch.cat([b, b[:-1]]))
        clean_t, corrupt_t = torch.stack(clean), torch.stack(corrupt)
        return PromptBatch(clean_t, corrupt_t, clean_t[:, prefix - 1], corrupt_t[:, prefix - 1])

    edges = ["input->a0.h0:v", "a0.h0->a1.h0:k", "input->a1.h0:q", "input->a1.h0:v", "a1.h0->logits"]
    nodes = ["a0.h0", "a1.h0"]
    if backup > 0:
        edges += ["a0.h0->a1.h1:k", "input->a1.h1:q", "input->a1.h1:v", "a1.h1->logits"]
        nodes.append("a1.h1")
    return PlantedModel(bridge, nodes, edges, "planted two-layer induction circuit", make_batch)


def copy_first_model(vocab: int = 16, n_ctx: int = 12, n_heads: int = 4, d_head: int = 16,
                     gain: float = 4.0, leak: float = 0.15, sharpness: float = 6.0, seed: int = 0) -> PlantedModel:
    """Two layers with MLPs: ``a0.h1 -> m0 -> a1.h2 -> logits`` copies the first token; other heads
    and ``m1`` are noise."""
    if d_head < vocab:
        raise ParameterError(f"d_head must be at least vocab = {vocab}.")
    lay = _Layout({"tok": vocab, "pos": n_ctx, "s1": vocab, "s2": vocab, "out": vocab, "spare": 16})
    d = lay.d_model
    d_mlp = 2 * vocab
    bridge = boot_native(dict(n_layers=2, d_model=d, n_heads=n_heads, d_head=d_head, d_vocab=vocab, n_ctx=n_ctx,
                              attn_only=False, d_mlp=d_mlp, act_fn="relu", normalization_type=None, seed=seed))
    set_ = _setter(bridge)
    g = torch.Generator().manual_seed(seed + 1)
    beta = sharpness * d_head ** 0.5
    Wq, Wk, Wv = [torch.zeros(2, n_heads, d, d_head) for _ in range(3)]
    Wo = torch.zeros(2, n_heads, d_head, d)
    bq = torch.zeros(2, n_heads, d_head)
    for l, h, src, dst, scale in ((0, 1, "tok", "s1", 1.0), (1, 2, "s2", "out", gain)):
        bq[l, h, 0] = 1.0  # constant query ...
        Wk[l, h, lay["pos"].start, 0] = beta  # ... that matches only the key of position 0
        Wv[l, h, lay[src], :vocab] = torch.eye(vocab)
        Wo[l, h, :vocab, lay[dst]] = scale * torch.eye(vocab)
    for l in range(2):
        for h in range(n_heads):
            if (l, h) not in ((0, 1), (1, 2)):
                Wq[l, h], Wk[l, h], Wv[l, h], Wo[l, h] = _noise_head(g, lay, d_head, leak)
    _finish(bridge, set_, Wq, Wk, Wv, Wo, bq, lay, vocab, n_ctx)
    # m0: relu(s1) -> s2 (one-hot inputs are non-negative, so this is a copy); m1: noise.
    W_in0 = torch.zeros(d_mlp, d)
    W_in0[:vocab, lay["s1"]] = torch.eye(vocab)
    W_out0 = torch.zeros(d, d_mlp)
    W_out0[lay["s2"], :vocab] = torch.eye(vocab)
    W_in1 = torch.zeros(d_mlp, d)
    W_in1[:, lay["tok"]] = torch.randn(d_mlp, vocab, generator=g) * 0.5
    W_out1 = torch.zeros(d, d_mlp)
    W_out1[lay["spare"]] = torch.randn(16, d_mlp, generator=g)
    W_out1[lay["out"]] = torch.randn(vocab, d_mlp, generator=g) * leak
    for l, (wi, wo) in enumerate(((W_in0, W_out0), (W_in1, W_out1))):
        set_(f"layers.{l}.mlp.fc_in.weight", wi)
        set_(f"layers.{l}.mlp.fc_out.weight", wo)

    def make_batch(n: int, seed: int = 0) -> PromptBatch:
        gen = torch.Generator().manual_seed(seed)
        clean = torch.randint(0, vocab, (n, n_ctx), generator=gen)
        corrupt = clean.clone()
        shift = torch.randint(1, vocab, (n,), generator=gen)
        corrupt[:, 0] = (clean[:, 0] + shift) % vocab
        return PromptBatch(clean, corrupt, clean[:, 0], corrupt[:, 0])

    edges = ["input->a0.h1:v", "a0.h1->m0", "m0->a1.h2:v", "a1.h2->logits"]
    return PlantedModel(bridge, ["a0.h1", "m0", "a1.h2"], edges, "planted copy-first-token circuit", make_batch)


PLANTED = {"induction": induction_model, "copy_first": copy_first_model}


def planted_model(name: str, **kw) -> PlantedModel:
    """A planted model by name (``induction`` or ``copy_first``)."""
    if name not in PLANTED:
        raise ParameterError(f"Unknown planted model {name!r}; use one of {sorted(PLANTED)}.")
    return PLANTED[name](**kw)


__all__ = ["PLANTED", "PlantedModel", "copy_first_model", "induction_model", "planted_model"]
