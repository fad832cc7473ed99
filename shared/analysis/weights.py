"""Reading circuits off the weights of an attention-only transformer ("A Mathematical Framework
for Transformer Circuits", Elhage et al. 2021).

Conventions (TransformerLens): activations are row vectors, so a head's OV circuit is
``W_OV = W_V @ W_O`` and its QK circuit ``W_QK = W_Q @ W_K.T`` (the attention score of a
destination residual ``x_d`` on a source residual ``x_s`` is ``x_d W_QK x_s^T``). Where a model has
LayerNorm, :func:`weights` folds its scale into the matrices that read the normalised stream; the
normalisation itself is left out (the scores are exact only for models without one).

* :func:`ov_copying_scores` — eigenvalue copying score of each head's full OV circuit;
* :func:`direct_path_log_probs` — the bigram table of the direct path ``W_E W_U``;
* :func:`skip_trigrams` — a head's strongest "source ... destination -> next" triples;
* :func:`composition_scores` — Q-, K- and V-composition between heads of different layers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import pandas as pd
import torch

from shared.analysis.text import token_strings
from shared.engine.graph import head_name, parse_node
from shared.engine.runs import norm_module, norm_weight, stacked_weights
from shared.errors import ParameterError


@dataclass
class Weights:
    """Detached float32 CPU copies of the weights the framework reads. Per-head matrices are
    ``[layer, head, ...]`` and ``None`` for a model without layers; ``W_pos`` is ``None`` unless the
    model learns absolute positions (with rotary positions the QK circuits leave the rotation out)."""

    W_E: torch.Tensor
    W_U: torch.Tensor
    b_U: Optional[torch.Tensor] = None
    W_pos: Optional[torch.Tensor] = None
    W_Q: Optional[torch.Tensor] = None
    W_K: Optional[torch.Tensor] = None
    W_V: Optional[torch.Tensor] = None
    W_O: Optional[torch.Tensor] = None
    b_Q: Optional[torch.Tensor] = None
    b_K: Optional[torch.Tensor] = None
    b_V: Optional[torch.Tensor] = None


def _cpu(t: torch.Tensor) -> torch.Tensor:
    return t.detach().float().cpu()


@torch.no_grad()
def weights(bridge: Any) -> Weights:
    """The model's embedding, unembedding and per-head weights, with each normalisation's scale
    folded into the matrices that read its output (``ln1`` into ``W_Q, W_K, W_V``; ``ln_final``
    into ``W_U``)."""
    b_U = getattr(bridge, "b_U", None)
    w = Weights(W_E=_cpu(bridge.W_E), W_U=_cpu(bridge.W_U),
                b_U=_cpu(b_U) if b_U is not None else torch.zeros(bridge.W_U.shape[1]),
                W_pos=_cpu(bridge.W_pos) if bridge.cfg.positional_embedding_type == "standard" else None)
    if bridge.cfg.n_layers > 0:
        for name, value in stacked_weights(bridge).items():
            setattr(w, name, _cpu(value))
    for layer in range(bridge.cfg.n_layers):
        scale = norm_weight(norm_module(bridge.blocks[layer], "ln1"))
        if scale is not None:
            for name in ("W_Q", "W_K", "W_V"):
                getattr(w, name)[layer] = _cpu(scale)[:, None] * getattr(w, name)[layer]
    final = norm_weight(norm_module(bridge, "ln_final"))
    if final is not None:
        w.W_U = _cpu(final)[:, None] * w.W_U
    return w


def ov_matrices(W_V: torch.Tensor, W_O: torch.Tensor) -> torch.Tensor:
    """``W_V @ W_O`` per head: [..., d_model, d_model]."""
    return W_V @ W_O


def qk_matrices(W_Q: torch.Tensor, W_K: torch.Tensor) -> torch.Tensor:
    """``W_Q @ W_K^T`` per head: [..., d_model, d_model]."""
    return W_Q @ W_K.transpose(-1, -2)


# --------------------------------------------------------------------------------------------
# OV eigenvalues and the copying score
# --------------------------------------------------------------------------------------------

def cyclic_eigenvalues(*factors: torch.Tensor) -> torch.Tensor:
    """Eigenvalues of the square product ``factors[0] @ ... @ factors[-1]``, computed on the
    cyclic rotation of the factors that starts at the one with the fewest rows.

    Rotating a product keeps its non-zero eigenvalues, so the full OV circuit
    ``W_E W_V W_O W_U`` [vocab, vocab] is diagonalised as ``W_O W_U W_E W_V`` [d_head, d_head].
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
    """Real part of the eigenvalue sum over the sum of their moduli: +1 copies, -1 suppresses."""
    total = eigenvalues.abs().sum()
    if total == 0:
        return 0.0
    return float(eigenvalues.sum().real / total)


def ov_eigenvalues(w: Weights, layer: int, head: int) -> torch.Tensor:
    """Eigenvalues of the head's full OV circuit ``W_E W_V W_O W_U`` (token -> logit), via d_head."""
    return cyclic_eigenvalues(w.W_E, w.W_V[layer, head], w.W_O[layer, head], w.W_U)


def ov_copying_scores(w: Weights) -> torch.Tensor:
    """Copying score of every head's full OV circuit: [layer, head]."""
    n_layers, n_heads = w.W_V.shape[:2]
    return torch.tensor([[copying_score(ov_eigenvalues(w, l, h)) for h in range(n_heads)]
                         for l in range(n_layers)])


# --------------------------------------------------------------------------------------------
# the direct path and skip-trigrams
# --------------------------------------------------------------------------------------------

@torch.no_grad()
def direct_path_log_probs(w: Weights, ids: torch.Tensor) -> torch.Tensor:
    """Log-probabilities of the direct path ``W_E W_U + b_U`` for current tokens ``ids`` and next
    tokens ``ids`` (softmax over the whole vocabulary, then restricted): [len(ids), len(ids)]."""
    logits = w.W_E[ids] @ w.W_U + w.b_U
    return logits.log_softmax(-1)[:, ids]


@torch.no_grad()
def skip_trigram_circuits(w: Weights, layer: int, head: int,
                          ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-level QK and OV circuits of one head restricted to the tokens ``ids``.

    QK [dest, src]: attention score of a destination token on a source token from the token
    embeddings alone (positions left out), centred over sources (softmax ignores a per-row
    constant). OV [src, out]: logit change of each output token per unit of attention to the
    source, centred over outputs.
    """
    E = w.W_E[ids]
    q = E @ w.W_Q[layer, head] + w.b_Q[layer, head]
    k = E @ w.W_K[layer, head] + w.b_K[layer, head]
    qk = (q @ k.T) / np.sqrt(q.shape[-1])
    ov = E @ w.W_V[layer, head] @ w.W_O[layer, head] @ w.W_U[:, ids]
    return qk - qk.mean(1, keepdim=True), ov - ov.mean(1, keepdim=True)


def skip_trigrams(w: Weights, tokenizer: Any, layer: int, head: int, ids: torch.Tensor,
                  n_sources: int = 8, top_k: int = 3) -> pd.DataFrame:
    """The head's strongest skip-trigrams ``source ... destination -> boosted`` as a table.

    A source token is rated by how strongly some destination attends to it plus how strongly it
    raises some output (each in standard deviations of its circuit); the best ``n_sources`` are
    listed with their ``top_k`` destinations and boosted tokens.
    """
    qk, ov = skip_trigram_circuits(w, layer, head, ids)
    strength = qk.max(0).values / qk.std() + ov.max(1).values / ov.std()
    rows = []
    for s in strength.argsort(descending=True)[:n_sources].tolist():
        dests = qk[:, s].argsort(descending=True)[:top_k]
        outs = ov[s].argsort(descending=True)[:top_k]
        rows.append({
            "head": head_name(layer, head),
            "source": token_strings(tokenizer, [ids[s]])[0],
            "destinations (attend to source)": " ".join(token_strings(tokenizer, ids[dests])),
            "boosted next tokens": " ".join(token_strings(tokenizer, ids[outs])),
            "copies source": bool(s in outs.tolist()),
            "strength": round(float(strength[s]), 2),
        })
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# composition between layers
# --------------------------------------------------------------------------------------------

def composition_score(left: torch.Tensor, right: torch.Tensor) -> float:
    """``|left @ right|_F / (|left|_F |right|_F)``: how much two circuits read/write the same space."""
    denom = left.norm() * right.norm()
    return float((left @ right).norm() / denom) if denom > 0 else 0.0


@dataclass
class Composition:
    """Q-, K- and V-composition of every later head (the reader) with every earlier head (the
    writer), each ``[layer_to, head_to, layer_from, head_from]``, zero where ``layer_from >= layer_to``."""

    Q: torch.Tensor
    K: torch.Tensor
    V: torch.Tensor

    def _shape(self) -> tuple[int, int]:
        return self.Q.shape[0], self.Q.shape[1]

    @property
    def later(self) -> list[str]:
        """Heads that can read an earlier head (layers 1 and up), the rows of :meth:`grid`."""
        n_layers, n_heads = self._shape()
        return [head_name(l, h) for l in range(1, n_layers) for h in range(n_heads)]

    @property
    def earlier(self) -> list[str]:
        """Heads that a later head can read (all but the last layer), the columns of :meth:`grid`."""
        n_layers, n_heads = self._shape()
        return [head_name(l, h) for l in range(n_layers - 1) for h in range(n_heads)]

    def grid(self, kind: str) -> torch.Tensor:
        """Scores of one kind (``"Q"``, ``"K"`` or ``"V"``) as [later head, earlier head]."""
        scores = getattr(self, kind)
        return scores[1:, :, :-1, :].reshape(len(self.later), len(self.earlier))

    def strongest(self, kind: str) -> tuple[str, str, float]:
        """The (reader, writer, score) pair with the highest score of one kind."""
        grid = self.grid(kind)
        i, j = divmod(int(grid.argmax()), len(self.earlier))
        return self.later[i], self.earlier[j], float(grid[i, j])

    def source_of(self, kind: str, head: str) -> str:
        """The earlier head that ``head`` (in layer 1 or later) composes with most strongly."""
        if parse_node(head).layer < 1:
            raise ParameterError(f"Head {head} is in layer 0, so it reads no earlier head.")
        return self.earlier[int(self.grid(kind)[self.later.index(head)].argmax())]


def composition_scores(w: Weights) -> Composition:
    """Q-, K- and V-composition of every later head with every earlier head.

    With the earlier head's OV circuit ``A = W_V W_O`` and the later head's ``W_QK = W_Q W_K^T``
    and ``W_OV``: Q-composition scores ``A W_QK``, K-composition ``W_QK A^T``, V-composition ``A W_OV``.
    """
    ov = ov_matrices(w.W_V, w.W_O)
    qk = qk_matrices(w.W_Q, w.W_K)
    n_layers, n_heads = ov.shape[:2]
    q, k, v = (torch.zeros(n_layers, n_heads, n_layers, n_heads) for _ in range(3))
    for l2 in range(n_layers):
        for h2 in range(n_heads):
            for l1 in range(l2):
                for h1 in range(n_heads):
                    a = ov[l1, h1]
                    q[l2, h2, l1, h1] = composition_score(a, qk[l2, h2])
                    k[l2, h2, l1, h1] = composition_score(qk[l2, h2], a.T)
                    v[l2, h2, l1, h1] = composition_score(a, ov[l2, h2])
    return Composition(q, k, v)


def random_composition_baseline(d_model: int, d_head: int, samples: int = 200, seed: int = 0) -> float:
    """Mean composition score of random Gaussian rank-``d_head`` matrices (the chance level)."""
    gen = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(samples):
        a = torch.randn(d_model, d_head, generator=gen) @ torch.randn(d_head, d_model, generator=gen)
        b = torch.randn(d_model, d_head, generator=gen) @ torch.randn(d_head, d_model, generator=gen)
        scores.append(composition_score(a, b))
    return float(np.mean(scores))


__all__ = ["Composition", "Weights", "composition_score", "composition_scores", "copying_score",
           "cyclic_eigenvalues", "direct_path_log_probs", "ov_copying_scores", "ov_eigenvalues", "ov_matrices",
           "qk_matrices", "random_composition_baseline", "skip_trigram_circuits", "skip_trigrams", "weights"]
