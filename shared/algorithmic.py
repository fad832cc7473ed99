"""Toy algorithmic tasks (find the minimum, find the median) and the tools to read their circuits.

Sequence layout for a list of ``L`` integers drawn from ``0..V-1`` (``SEP = V``, ``PAD = V + 1``)::

    x_1 ... x_L  SEP  answer  PAD ... PAD

The prediction made *at* the ``SEP`` token (position ``L``) is the answer; padding only follows the
answer, so with causal attention it never influences it. Sequences of different lengths share a
batch. ``answer`` is the minimum, or the median: for even ``L`` the *lower* median
(``sorted(x)[(L - 1) // 2]``).

The held-out split is by multiset: a fixed hash of the sorted values decides whether a list is a
test list, so no training list is a reordering of a test list. Training batches reject test lists.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .errors import ParameterError

TASKS = ("min", "median")
TEST_FRACTION = 0.2  # share of multisets reserved for the held-out split
_HASH_MOD = 2_147_483_629  # a prime below 2**31: hashing stays inside int64


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------

def reference_answer(task: str, values: Sequence[int]) -> int:
    """Brute-force answer by plain Python (the ground truth the generator is checked against)."""
    values = list(values)
    if task == "min":
        return min(values)
    if task == "median":
        return sorted(values)[(len(values) - 1) // 2]
    raise ParameterError(f"Unknown task {task!r}; choose one of {', '.join(TASKS)}.")


def check_task(task: str, n: int, V: int, repeats: bool = False, n_min: Optional[int] = None) -> None:
    """Raise :class:`ParameterError` for settings the generator cannot produce."""
    if task not in TASKS:
        raise ParameterError(f"Unknown task {task!r}; choose one of {', '.join(TASKS)}.")
    if n < 2:
        raise ParameterError(f"The sequence length n must be at least 2, got {n}.")
    if n_min is not None and not 2 <= n_min <= n:
        raise ParameterError(f"The shortest length n_min must lie between 2 and n={n}, got {n_min}.")
    if V < 2:
        raise ParameterError(f"The vocabulary size V must be at least 2, got {V}.")
    if not repeats and V < n:
        raise ParameterError(f"Without repeats a list of {n} values needs V >= {n}, got V={V}.")


@dataclass
class AlgoData:
    """A batch of task sequences: ``tokens`` [batch, width], ``lengths``/``answers`` [batch]."""

    task: str
    V: int
    tokens: torch.Tensor
    lengths: torch.Tensor
    answers: torch.Tensor

    @property
    def sep(self) -> int:
        return self.V

    @property
    def answer_pos(self) -> torch.Tensor:
        """Position whose next-token prediction is the answer (the SEP token)."""
        return self.lengths

    def values(self, i: int) -> list[int]:
        return self.tokens[i, : int(self.lengths[i])].tolist()

    def mask(self) -> torch.Tensor:
        """[batch, width-1] mask selecting only the answer prediction (for ``train.lm_loss``)."""
        pos = torch.arange(self.tokens.shape[1] - 1)
        return pos[None, :] == self.lengths[:, None]

    def value_mask(self) -> torch.Tensor:
        """[batch, width] True at the list positions (not SEP, answer or padding)."""
        return torch.arange(self.tokens.shape[1])[None, :] < self.lengths[:, None]

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def subset(self, idx: torch.Tensor) -> "AlgoData":
        return AlgoData(self.task, self.V, self.tokens[idx], self.lengths[idx], self.answers[idx])

    def labels(self, i: int) -> list[str]:
        """Readable tokens of example ``i`` up to and including SEP."""
        return [str(v) for v in self.values(i)] + ["SEP"]


def split_of(values: torch.Tensor, lengths: torch.Tensor, V: int) -> torch.Tensor:
    """True where a list belongs to the held-out split (hash of its sorted values and length)."""
    width = values.shape[1]
    valid = torch.arange(width)[None, :] < lengths[:, None]
    ordered = torch.where(valid, values, torch.full_like(values, V + 7)).sort(dim=1).values
    h = lengths.long() * 7919 + 12345
    for i in range(width):
        h = torch.where(valid[:, i], (h * (V + 11) + ordered[:, i] + 1) % _HASH_MOD, h)
    h = (h * 48271) % _HASH_MOD  # one extra mixing round before bucketing
    return (h % 1000) < int(TEST_FRACTION * 1000)


def _raw_batch(task: str, count: int, V: int, lengths: torch.Tensor, width: int,
               repeats: bool, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    n_max = int(lengths.max())
    if repeats:
        values = torch.randint(0, V, (count, n_max), generator=gen)
    else:
        values = torch.rand(count, V, generator=gen).argsort(dim=1)[:, :n_max]
    valid = torch.arange(n_max)[None, :] < lengths[:, None]
    big = torch.where(valid, values, torch.full_like(values, V + 7))
    if task == "min":
        answers = big.min(dim=1).values
    else:
        answers = big.sort(dim=1).values.gather(1, ((lengths - 1) // 2)[:, None]).squeeze(1)
    tokens = torch.full((count, width), V + 1, dtype=torch.long)
    tokens[:, :n_max] = torch.where(valid, values, torch.full_like(values, V + 1))
    rows = torch.arange(count)
    tokens[rows, lengths] = V
    tokens[rows, lengths + 1] = answers
    return tokens, answers


def make_data(task: str, V: int, count: int, lengths: Sequence[int] | int, split: str = "train",
              repeats: bool = False, seed: int = 0, width: Optional[int] = None) -> AlgoData:
    """``count`` sequences of the ``split`` ("train", "test" or "any"), lengths drawn from ``lengths``.

    ``width`` (default: longest length + 2) pads every row to the same number of positions.
    """
    lengths = [lengths] if isinstance(lengths, int) else list(lengths)
    for L in lengths:
        check_task(task, L, V, repeats)
    if split not in ("train", "test", "any"):
        raise ParameterError(f"Unknown split {split!r}; use 'train', 'test' or 'any'.")
    width = width or max(lengths) + 2
    if width < max(lengths) + 2:
        raise ParameterError(f"Width {width} cannot hold lists of length {max(lengths)} plus SEP and answer.")
    gen = torch.Generator().manual_seed(seed)
    choices = torch.tensor(lengths)
    got_t, got_l, got_a, have = [], [], [], 0
    for _ in range(200):
        draw = max(2 * (count - have), 64) if split == "train" else max(8 * (count - have), 256)
        L = choices[torch.randint(len(choices), (draw,), generator=gen)]
        tokens, answers = _raw_batch(task, draw, V, L, width, repeats, gen)
        if split != "any":
            held = split_of(tokens, L, V)
            keep = held if split == "test" else ~held
            tokens, L, answers = tokens[keep], L[keep], answers[keep]
        got_t.append(tokens), got_l.append(L), got_a.append(answers)
        have += len(L)
        if have >= count:
            break
    else:
        raise ParameterError(f"Could not draw {count} {split} lists of lengths {lengths} over V={V}; "
                             f"there are too few distinct lists, ask for fewer.")
    return AlgoData(task, V, torch.cat(got_t)[:count], torch.cat(got_l)[:count], torch.cat(got_a)[:count])


def test_set(recipe: dict[str, Any], count: Optional[int] = None, lengths: Optional[Sequence[int]] = None,
             repeats: Optional[bool] = None, seed_offset: int = 0) -> AlgoData:
    """The held-out set of a model's recipe (same lengths and repeat rule unless overridden)."""
    lengths = list(lengths) if lengths is not None else training_lengths(recipe)
    width = recipe["n"] + 2 + recipe.get("extra_positions", 0)
    return make_data(recipe["task"], recipe["V"], count or recipe.get("test_size", 2000), lengths, "test",
                     recipe.get("repeats", False) if repeats is None else repeats,
                     seed=10_000 + recipe.get("seed", 0) + seed_offset, width=max(width, max(lengths) + 2))


def training_lengths(recipe: dict[str, Any]) -> list[int]:
    return list(range(recipe.get("n_min", recipe["n"]), recipe["n"] + 1))


# ----------------------------------------------------------------------------------------------
# Running the model
# ----------------------------------------------------------------------------------------------

def _rows(data: AlgoData) -> torch.Tensor:
    return torch.arange(len(data))


@torch.no_grad()
def answer_logits(bridge: Any, data: AlgoData, batch_size: int = 1000,
                  fwd_hooks: Optional[list] = None) -> torch.Tensor:
    """Logits [batch, vocab] predicted at the SEP position (optionally with hooks)."""
    out = []
    for start in range(0, len(data), batch_size):
        part = data.subset(torch.arange(start, min(start + batch_size, len(data))))
        tokens = part.tokens[:, : int(part.lengths.max()) + 1]
        if fwd_hooks:
            logits = bridge.run_with_hooks(tokens, fwd_hooks=fwd_hooks)
        else:
            logits = bridge.original_model(tokens)
        out.append(logits[_rows(part), part.lengths])
    return torch.cat(out)


def predictions(bridge: Any, data: AlgoData, **kw: Any) -> torch.Tensor:
    return answer_logits(bridge, data, **kw).argmax(-1)


def accuracy(bridge: Any, data: AlgoData, **kw: Any) -> float:
    """Share of sequences whose top prediction (over the whole vocabulary) is the right answer."""
    return float((predictions(bridge, data, **kw) == data.answers).float().mean())
