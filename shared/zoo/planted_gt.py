"""A hand-set two-layer model that does greater-than through one head and one MLP, as the check of the
greater-than chapter's method.

Vocabulary: the 100 two-digit years ``00``..``99`` are tokens 0..99, then ``BOS``, five filler tokens and
a "century" token. A prompt is ``BOS w w YY w w CC``: the year ``YY`` sits at position 3 and the answer
is read at the last position (END). No normalisation; the residual stream is split into named
subspaces (:mod:`shared.zoo.planted`):

* ``a0.h0`` (the **YY mover**) attends from every position to position 3 and writes ``YY / 100`` into
  a one-dimensional ``yy`` subspace;
* ``a0.h1`` (a **decoy**) attends to the same position and writes the same number into a spare
  subspace that nothing reads: strong attention to YY, no effect;
* ``m1`` (the **greater-than MLP**) reads ``yy`` and, with two ReLU neurons per year ``y``, writes a step
  ``gain * [y > YY]`` onto year ``y``'s logit: its direct logits over YY x answer year are an exact
  upper triangle;
* the other heads and ``m0`` are noise (random reads of token and position, writes mostly into the
  spare subspace with a small ``leak`` into the logits).

The "01" corruption sets ``YY`` to 01, so the planted circuit is ``a0.h0 -> m1 -> logits``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from shared.engine.batch import PromptBatch
from shared.zoo.planted import _finish, _Layout, _name_hand_built, _noise_head, _setter
from shared.zoo.registry import boot_native

N_YEARS = 100
BOS, FILLERS, CENTURY = 100, (101, 102, 103, 104, 105), 106
VOCAB = 107
YY_POS, N_CTX = 3, 8


@dataclass
class PlantedGTBatch:
    """Clean and "01" prompts with the fields of :class:`shared.tasks.greater_than.GTBatch` that the
    analysis reads: ``yy`` [n], ``yy_pos`` [n], ``digits`` [100] and the engine's ``batch``."""

    yy: torch.Tensor
    yy_pos: torch.Tensor
    digits: torch.Tensor
    batch: PromptBatch

    def __len__(self) -> int:
        return len(self.yy)


@dataclass
class PlantedGT:
    """The bridge, its planted ``heads`` and ``mlps``, the decoy head, the greater-than step ``gain``."""

    bridge: Any
    heads: list[str]
    mlps: list[str]
    decoy: str
    gain: float
    description: str = "planted greater-than circuit"
    make_batch: Any = field(repr=False, default=None)

    def __post_init__(self) -> None:
        _name_hand_built(self.bridge, self.description)

    def batch(self, n: int, seed: int = 0) -> PlantedGTBatch:
        """``n`` clean/"01" prompt pairs with ``YY`` drawn from 02..98 (seeded)."""
        return self.make_batch(n, seed)


def planted_gt_model(gain: float = 4.0, leak: float = 0.05, sharpness: float = 12.0, n_heads: int = 4,
                     d_head: int = 8, seed: int = 0) -> PlantedGT:
    """The hand-set model described in the module docstring."""
    lay = _Layout({"tok": VOCAB, "pos": N_CTX, "yy": 1, "one": 1, "out": VOCAB, "spare": 16})
    d, d_mlp = lay.d_model, 2 * N_YEARS
    bridge = boot_native(dict(n_layers=2, d_model=d, n_heads=n_heads, d_head=d_head, d_vocab=VOCAB, n_ctx=N_CTX,
                              attn_only=False, d_mlp=d_mlp, act_fn="relu", normalization_type=None, seed=seed))
    set_ = _setter(bridge)
    g = torch.Generator().manual_seed(seed + 7)
    beta = sharpness * d_head ** 0.5
    Wq, Wk, Wv = [torch.zeros(2, n_heads, d, d_head) for _ in range(3)]
    Wo = torch.zeros(2, n_heads, d_head, d)
    bq = torch.zeros(2, n_heads, d_head)
    year_value = torch.arange(N_YEARS, dtype=torch.float) / N_YEARS
    for h, target in ((0, lay["yy"]), (1, slice(lay["spare"].start, lay["spare"].start + 1))):
        bq[0, h, 0] = 1.0  # a constant query that matches only the key of the YY position
        Wk[0, h, lay["pos"].start + YY_POS, 0] = beta
        Wv[0, h, lay["tok"].start:lay["tok"].start + N_YEARS, 0] = year_value
        Wo[0, h, 0, target] = 1.0
    for l in range(2):
        for h in range(n_heads):
            if not (l == 0 and h < 2):
                Wq[l, h], Wk[l, h], Wv[l, h], Wo[l, h] = _noise_head(g, lay, d_head, leak)
    _finish(bridge, set_, Wq, Wk, Wv, Wo, bq, lay, VOCAB, N_CTX)
    P = torch.zeros(N_CTX, d)
    P[:, lay["pos"]] = torch.eye(N_CTX)
    P[:, lay["one"]] = 1.0  # a constant dimension: the MLP neurons' thresholds
    set_("pos.weight", P)
    # m1: neuron pair y: relu(k (y - 0.5)/100 - k yy/100) - relu(same - 1) = clamp(..., 0, 1), a step at y > YY
    k = 2.0 * N_YEARS
    W_in1 = torch.zeros(d_mlp, d)
    W_out1 = torch.zeros(d, d_mlp)
    for y in range(N_YEARS):
        for j, offset, sign in ((y, 0.0, 1.0), (N_YEARS + y, -1.0, -1.0)):
            W_in1[j, lay["yy"]] = -k
            W_in1[j, lay["one"]] = k * (y - 0.5) / N_YEARS + offset
            W_out1[lay["out"].start + y, j] = sign * gain
    W_in0 = torch.zeros(d_mlp, d)
    W_in0[:, lay["tok"]] = torch.randn(d_mlp, VOCAB, generator=g) * 0.5
    W_out0 = torch.zeros(d, d_mlp)
    W_out0[lay["spare"]] = torch.randn(16, d_mlp, generator=g) * 0.1
    W_out0[lay["out"]] = torch.randn(VOCAB, d_mlp, generator=g) * leak * 0.1
    for l, (wi, wo) in enumerate(((W_in0, W_out0), (W_in1, W_out1))):
        set_(f"layers.{l}.mlp.fc_in.weight", wi)
        set_(f"layers.{l}.mlp.fc_out.weight", wo)
    digits = torch.arange(N_YEARS)

    def make_batch(n: int, seed: int = 0) -> PlantedGTBatch:
        gen = torch.Generator().manual_seed(seed)
        yy = torch.randint(2, 99, (n,), generator=gen)
        fill = torch.tensor(FILLERS)[torch.randint(0, len(FILLERS), (n, 4), generator=gen)]
        clean = torch.stack([torch.full((n,), BOS), fill[:, 0], fill[:, 1], yy, fill[:, 2], fill[:, 3],
                             torch.full((n,), CENTURY)], 1)
        corrupt = clean.clone()
        corrupt[:, YY_POS] = 1
        batch = PromptBatch(clean, corrupt, digits[yy + 1], digits[yy])
        return PlantedGTBatch(yy, torch.full((n,), YY_POS), digits, batch)

    return PlantedGT(bridge, ["a0.h0"], ["m1"], "a0.h1", gain, make_batch=make_batch)


__all__ = ["PlantedGT", "PlantedGTBatch", "planted_gt_model"]
