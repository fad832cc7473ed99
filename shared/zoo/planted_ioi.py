"""A hand-set five-layer, attention-only model that does IOI with one head per class of Wang et al.

Prompts are ``[BOS] N1 and N2 w w S gave to`` over a tiny vocabulary (BOS, 8 names, ``and``, ``gave``,
``to`` and 4 filler words ``w``); ``ABBA`` (IO named first) and ``BABA``; the answer is the IO. The
residual stream is split into one-hot subspaces as in :mod:`shared.zoo.planted` (no normalisation):
``tok``, ``pos``, ``prev`` (previous token), ``dup`` (a name seen before), ``inh`` (the inhibited
name), ``out`` (read by the unembedding) and ``spare`` (written only by noise heads).

Planted heads (``PlantedIOI.classes``):

* ``a0.h0`` previous token: each position attends to the one before and copies its token to ``prev``;
* ``a0.h1`` duplicate token: a name attends to its earlier occurrence (S2 -> S1) and writes it to ``dup``;
* ``a1.h0`` induction: a name attends to the position whose ``prev`` is that name (S2 -> S1+1) and
  writes that ``prev`` to ``dup``;
* ``a2.h0`` S-inhibition: every position attends where ``dup`` is large (END -> S2) and copies
  ``dup`` to ``inh``;
* ``a3.h0`` name mover: END attends to names, minus the inhibited one, and copies the name to ``out``;
* ``a3.h1`` negative name mover: the same attention, writing minus a third of it;
* ``a4.h0`` backup name mover: like the name mover, but a name already written to ``out`` is
  avoided, so it attends to the IO (and copies it) only when the name movers' output is missing.

Every other head is noise (random reads of ``tok``/``pos``, writes to ``spare`` with a small leak to
``out``). The corrupted prompts are the ABC set of :mod:`shared.tasks.ioi`: S1 and S2 become two new
distinct names.

Those are the heads of the default ``placement`` (:data:`PLACEMENT`); any other placement that keeps
each class after the classes it reads builds the same circuit elsewhere. :data:`CONTROLS` names the
controls of the ``ioi_across_models`` chapter: the default model, the circuit moved to other heads
of a six-layer model (:data:`MOVED`), and a model whose S-inhibition head finds S2 by its position
instead of reading the induction and duplicate-token heads (it does IOI without that link).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from shared.analysis.ioi import IOIPositions
from shared.engine.batch import PromptBatch
from shared.errors import ParameterError
from shared.zoo.planted import _finish, _Layout, _name_hand_built, _noise_head, _setter
from shared.zoo.registry import boot_native

N_NAMES = 8
BOS, NAMES, AND, GAVE, TO = 0, list(range(1, 1 + N_NAMES)), 9, 10, 11
FILLERS = [12, 13, 14, 15]
VOCAB, N_CTX, PROMPT_LEN, S2_POS = 16, 10, 9, 6
TOKEN_NAMES = ["<bos>"] + [f"N{i}" for i in range(N_NAMES)] + ["and", "gave", "to"] + [f"w{i}" for i in range(4)]


@dataclass
class PlantedIOI:
    """The bridge, the heads planted in each class (``classes``, named as in
    :class:`shared.analysis.ioi.IOIHeadClasses`), and :meth:`batch`."""

    bridge: Any
    classes: dict[str, list[str]]
    description: str
    make_batch: Any = field(repr=False, default=None)

    def __post_init__(self) -> None:
        _name_hand_built(self.bridge, self.description)

    def batch(self, n: int, seed: int = 0) -> tuple[PromptBatch, IOIPositions]:
        """``n`` clean/ABC prompt pairs (half ABBA, half BABA) and their IO/S1/S2/END positions."""
        return self.make_batch(n, seed)


def _prompts(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    rng = random.Random(seed)
    clean, corrupt, io_pos, s1_pos = [], [], [], []
    for i in range(n):
        io, s, x, y = rng.sample(NAMES, 4)
        w1, w2 = rng.choice(FILLERS), rng.choice(FILLERS)
        abba = i % 2 == 0
        n1, n2 = (io, s) if abba else (s, io)
        clean.append([BOS, n1, AND, n2, w1, w2, s, GAVE, TO])
        c1, c2 = (io, x) if abba else (x, io)
        corrupt.append([BOS, c1, AND, c2, w1, w2, y, GAVE, TO])
        io_pos.append(1 if abba else 3)
        s1_pos.append(3 if abba else 1)
    return (torch.tensor(clean), torch.tensor(corrupt), torch.tensor(io_pos), torch.tensor(s1_pos))


# where each class sits: (layer, head); the default, and the "moved" control (six layers, other heads)
PLACEMENT = {"previous token": (0, 0), "duplicate token": (0, 1), "induction": (1, 0), "S-inhibition": (2, 0),
             "name mover": (3, 0), "negative name mover": (3, 1), "backup name mover": (4, 0)}
MOVED = {"previous token": (0, 3), "duplicate token": (1, 2), "induction": (1, 1), "S-inhibition": (3, 2),
         "name mover": (4, 1), "negative name mover": (4, 3), "backup name mover": (5, 0)}
# each class must sit in a later layer than the classes it reads
_READS = {"induction": ["previous token"], "S-inhibition": ["induction", "duplicate token"],
          "name mover": ["S-inhibition"], "negative name mover": ["S-inhibition"],
          "backup name mover": ["name mover", "negative name mover"]}


def planted_ioi_model(gain: float = 4.0, negative: float = 0.3, backup_gain: float = 2.0, leak: float = 0.05,
                      n_heads: int = 4, d_head: int = 32, seed: int = 0, placement: Optional[dict] = None,
                      n_layers: int = 5, cut_inhibition_input: bool = False,
                      description: str = "planted IOI circuit") -> PlantedIOI:
    """The planted IOI model (see the module docstring); ``gain``: the name mover's write to ``out``,
    ``negative``: the negative name mover's as a share of it, ``backup_gain``: the backup's;
    ``placement``: ``{class: (layer, head)}`` (default :data:`PLACEMENT`) in ``n_layers`` layers.

    ``cut_inhibition_input``: the S-inhibition head no longer reads ``dup`` (what the induction and
    duplicate-token heads write) but attends to S2 by its position (always 6 in these prompts) and copies
    the token there. The model still does IOI, but the link induction / duplicate token -> S-inhibition
    is gone, so it does not use the IOI algorithm."""
    if d_head < 2 * N_NAMES + 1 or d_head < N_NAMES + N_CTX + 1:
        raise ParameterError(f"d_head must be at least {max(2 * N_NAMES + 1, N_NAMES + N_CTX + 1)}.")
    at = dict(PLACEMENT if placement is None else placement)
    if set(at) != set(PLACEMENT) or len(set(at.values())) != len(at):
        raise ParameterError(f"placement must give each of {', '.join(PLACEMENT)} its own (layer, head).")
    bad = [c for c, reads in _READS.items() for r in reads if at[c][0] <= at[r][0]]
    if bad or any(not (0 <= l < n_layers and 0 <= h < n_heads) for l, h in at.values()):
        raise ParameterError(f"placement must fit {n_layers} layers of {n_heads} heads and put each class after "
                             f"the classes it reads ({', '.join(bad) or 'out of range'}).")
    lay = _Layout({"tok": VOCAB, "pos": N_CTX, "prev": VOCAB, "dup": VOCAB, "inh": VOCAB, "out": VOCAB, "spare": 16})
    L, d = n_layers, lay.d_model
    bridge = boot_native(dict(n_layers=L, d_model=d, n_heads=n_heads, d_head=d_head, d_vocab=VOCAB, n_ctx=N_CTX,
                              attn_only=True, normalization_type=None, seed=seed))
    set_ = _setter(bridge)
    g = torch.Generator().manual_seed(seed)
    r = d_head ** 0.5  # attention scores are divided by sqrt(d_head): keys carry r so scores read in logits
    Wq, Wk, Wv = [torch.zeros(L, n_heads, d, d_head) for _ in range(3)]
    Wo = torch.zeros(L, n_heads, d_head, d)
    bq = torch.zeros(L, n_heads, d_head)
    tok = lambda t: lay["tok"].start + t  # noqa: E731  residual row of a token in a subspace
    row = lambda space, t: lay[space].start + t  # noqa: E731
    names = torch.tensor(NAMES)
    eye = torch.eye(N_NAMES)

    def copy_names(l: int, h: int, src: str, dst: str, scale: float) -> None:
        """OV: the name in subspace ``src`` -> the same name in ``dst`` times ``scale``."""
        Wv[l, h, row(src, names), torch.arange(N_NAMES)] = 1.0
        Wo[l, h, :N_NAMES, row(dst, names)] = scale * eye

    def bos_sink(l: int, h: int, dim: int, score: float) -> None:
        """Every query scores BOS at ``score`` (constant query x position-0 key)."""
        bq[l, h, dim] = 1.0
        Wk[l, h, row("pos", 0), dim] = score * r

    # previous token: query position i matches key position i - 1.
    l, h = at["previous token"]
    for i in range(1, N_CTX):
        Wq[l, h, row("pos", i), i] = 1.0
        Wk[l, h, row("pos", i - 1), i] = 10.0 * r
    Wv[l, h, lay["tok"], :VOCAB] = torch.eye(VOCAB)
    Wo[l, h, :VOCAB, lay["prev"]] = torch.eye(VOCAB)
    # duplicate token: a name matches the same name earlier (not itself), else BOS.
    l, h = at["duplicate token"]
    Wq[l, h, row("tok", names), torch.arange(N_NAMES)] = 1.0
    Wk[l, h, row("tok", names), torch.arange(N_NAMES)] = 8.0 * r
    for i in range(N_CTX):
        Wq[l, h, row("pos", i), N_NAMES + i] = 1.0
        Wk[l, h, row("pos", i), N_NAMES + i] = -16.0 * r
    bos_sink(l, h, N_NAMES + N_CTX, 4.0)
    copy_names(l, h, "tok", "dup", 1.0)
    # induction: a name matches the position whose previous token is that name, else BOS.
    l, h = at["induction"]
    Wq[l, h, row("tok", names), torch.arange(N_NAMES)] = 1.0
    Wk[l, h, row("prev", names), torch.arange(N_NAMES)] = 8.0 * r
    bos_sink(l, h, N_NAMES, 4.0)
    copy_names(l, h, "prev", "dup", 1.0)
    # S-inhibition: attend where dup is large and copy dup to inh (cut: attend to position 6, copy its token).
    l, h = at["S-inhibition"]
    bq[l, h, 0] = 1.0
    if cut_inhibition_input:
        Wk[l, h, row("pos", S2_POS), 0] = 8.0 * r
        copy_names(l, h, "tok", "inh", 2.0)  # as strong as dup at S2, where both upstream heads write
    else:
        Wk[l, h, row("dup", names), 0] = 4.0 * r
        copy_names(l, h, "dup", "inh", 1.0)

    def mover(l: int, h: int, scale: float, avoid_out: float = 0.0, inhibit: float = 2.0) -> None:
        bq[l, h, 0] = 1.0
        Wk[l, h, row("tok", names), 0] = 6.0 * r  # names score 6, other tokens 0
        Wq[l, h, row("inh", names), 1 + torch.arange(N_NAMES)] = -inhibit
        Wk[l, h, row("tok", names), 1 + torch.arange(N_NAMES)] = r
        if avoid_out:
            Wq[l, h, row("out", names), 1 + N_NAMES + torch.arange(N_NAMES)] = -avoid_out
            Wk[l, h, row("tok", names), 1 + N_NAMES + torch.arange(N_NAMES)] = r
        copy_names(l, h, "tok", "out", scale)

    mover(*at["name mover"], gain)
    mover(*at["negative name mover"], -negative * gain)
    mover(*at["backup name mover"], backup_gain, avoid_out=4.0, inhibit=4.0)
    planted = set(at.values())
    for l in range(L):
        for h in range(n_heads):
            if (l, h) not in planted:
                Wq[l, h], Wk[l, h], Wv[l, h], Wo[l, h] = _noise_head(g, lay, d_head, leak)
    _finish(bridge, set_, Wq, Wk, Wv, Wo, bq, lay, VOCAB, N_CTX)

    def make_batch(n: int, seed: int = 0) -> tuple[PromptBatch, IOIPositions]:
        clean, corrupt, io_pos, s1_pos = _prompts(n, seed)
        rows = torch.arange(n)
        batch = PromptBatch(clean, corrupt, clean[rows, io_pos], clean[rows, s1_pos])
        end = torch.full((n,), PROMPT_LEN - 1)
        return batch, IOIPositions(io=io_pos, s1=s1_pos, s2=torch.full((n,), S2_POS), end=end)

    order = ["name mover", "negative name mover", "S-inhibition", "induction", "duplicate token", "previous token",
             "backup name mover"]
    classes = {c: [f"a{at[c][0]}.h{at[c][1]}"] for c in order}
    return PlantedIOI(bridge, classes, description, make_batch)


# the positive and negative controls of the ``ioi_across_models`` chapter, by name
CONTROLS = {
    "planted": dict(description="planted IOI circuit (control)"),
    "planted-moved": dict(placement=MOVED, n_layers=6, seed=1,
                          description="planted IOI circuit, heads moved (control)"),
    "planted-cut": dict(cut_inhibition_input=True, description="planted IOI circuit, link cut (control)"),
}


def ioi_control(name: str) -> PlantedIOI:
    """A control of :data:`CONTROLS`: ``planted`` (the default model), ``planted-moved`` (every class in
    another head, six layers, other noise) or ``planted-cut`` (S-inhibition does not read the induction
    and duplicate-token heads)."""
    if name not in CONTROLS:
        raise ParameterError(f"Unknown IOI control {name!r}; use one of {', '.join(CONTROLS)}.")
    return planted_ioi_model(**CONTROLS[name])


__all__ = ["CONTROLS", "MOVED", "PLACEMENT", "PlantedIOI", "TOKEN_NAMES", "ioi_control", "planted_ioi_model"]
