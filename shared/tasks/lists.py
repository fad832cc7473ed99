"""Toy list tasks (find the minimum, find the median): the data and nothing else.

Sequence layout for a list of ``L`` integers drawn from ``0..V-1`` (``SEP = V``, ``PAD = V + 1``)::

    x_1 ... x_L  SEP  answer  PAD ... PAD

The prediction made *at* the ``SEP`` token (position ``L``) is the answer; padding only follows the
answer, so with causal attention it never influences it. Sequences of different lengths share a
batch. ``answer`` is the minimum, or the median: for even ``L`` the *lower* median
(``sorted(x)[(L - 1) // 2]``).

The held-out split is by multiset: a fixed hash of the sorted values decides whether a list is a
test list, so no training list is a reordering of a test list. Training batches reject test lists.
Besides the generator this module holds the checks of the data (:func:`data_checks`) and the
edits of lists whose new median the rank rule predicts (:func:`median_edits`). Reading models on
these lists lives in :mod:`shared.analysis.answer` and :mod:`shared.chapters.lists`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import torch

from shared.engine.batch import PromptBatch
from shared.errors import ParameterError

TASKS = ("min", "median")
TEST_FRACTION = 0.2  # share of multisets reserved for the held-out split
_HASH_MOD = 2_147_483_629  # a prime below 2**31: hashing stays inside int64


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

    def prompts(self) -> PromptBatch:
        """The lists as the engine's :class:`PromptBatch`: the answer is scored at SEP. There is no
        contrasting prompt, so the clean lists also fill ``corrupt`` (mean ablation only needs the clean
        run) and the answer also fills ``incorrect`` (accuracy reads only ``correct``)."""
        return PromptBatch(self.tokens, self.tokens, self.answers, self.answers, self.lengths)


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


def value_ranks(data: AlgoData) -> torch.Tensor:
    """[batch, width] rank of each list value among its list (0 = smallest; ties by position); -1 elsewhere."""
    valid = data.value_mask()
    keyed = torch.where(valid, data.tokens * 1000 + torch.arange(data.tokens.shape[1]),
                        torch.full_like(data.tokens, 10**9))
    ranks = keyed.argsort(dim=1).argsort(dim=1)
    return torch.where(valid, ranks, torch.full_like(ranks, -1))


# ----------------------------------------------------------------------------------------------
# Checks of the data
# ----------------------------------------------------------------------------------------------

@dataclass
class DataChecks:
    """Generator answers that disagree with :func:`reference_answer` (of ``checked`` lists), and
    training lists whose multiset is also in the held-out set (of ``train_lists``)."""

    checked: int
    wrong: int
    train_lists: int
    overlap: int


def data_checks(recipe: dict[str, Any], data: AlgoData, seed: int = 0) -> DataChecks:
    """Check ``data`` against the brute-force reference and a fresh training sample against its multisets."""
    wrong = sum(int(data.answers[i]) != reference_answer(data.task, data.values(i)) for i in range(len(data)))
    train = make_data(data.task, data.V, len(data), training_lengths(recipe), "train",
                      recipe.get("repeats", False), seed=seed + 1, width=data.tokens.shape[1])
    held = {tuple(sorted(data.values(i))) for i in range(len(data))}
    overlap = sum(tuple(sorted(train.values(i))) in held for i in range(len(train)))
    return DataChecks(len(data), wrong, len(train), overlap)


# ----------------------------------------------------------------------------------------------
# Edits of lists (median)
# ----------------------------------------------------------------------------------------------

EDITS = ("low_to_high", "high_to_low", "same_side")


def _free_value(values: list[int], lo: int, hi: int, rng: np.random.Generator) -> Optional[int]:
    options = [v for v in range(lo, hi) if v not in values]
    return int(rng.choice(options)) if options else None


def median_edits(data: AlgoData, kind: str, seed: int = 0) -> tuple[AlgoData, torch.Tensor, torch.Tensor]:
    """Edit one list token per example and predict the new median from the rank rule.

    ``kind``: ``"low_to_high"`` (a token below the median is raised above the maximum: the answer
    becomes the next-larger list value), ``"high_to_low"`` (a token above the median drops below the
    minimum: the answer becomes the next-smaller value) or ``"same_side"`` (a token below the median
    moves to another unused value below the median: the answer stays). Returns the edited data (only
    examples where the edit is possible), the predicted answers and the indices kept.
    """
    if kind not in EDITS:
        raise ParameterError(f"Unknown edit {kind!r}; use 'low_to_high', 'high_to_low' or 'same_side'.")
    rng = np.random.default_rng(seed)
    tokens = data.tokens.clone()
    predicted, keep = [], []
    for i in range(len(data)):
        vals = data.values(i)
        L, order = len(vals), sorted(vals)
        m = (L - 1) // 2
        below = [p for p, v in enumerate(vals) if v < order[m]]
        above = [p for p, v in enumerate(vals) if v > order[m]]
        if kind == "low_to_high" and below and m + 1 < L:
            pos, new, answer = rng.choice(below), _free_value(vals, order[-1] + 1, data.V, rng), order[m + 1]
        elif kind == "high_to_low" and above and m >= 1:
            pos, new, answer = rng.choice(above), _free_value(vals, 0, order[0], rng), order[m - 1]
        elif kind == "same_side" and below:
            pos, new, answer = rng.choice(below), _free_value(vals, 0, order[m], rng), order[m]
        else:
            continue
        if new is None:
            continue
        tokens[i, pos] = new
        tokens[i, L + 1] = answer
        predicted.append(answer)
        keep.append(i)
    idx = torch.tensor(keep, dtype=torch.long)
    edited = AlgoData(data.task, data.V, tokens[idx], data.lengths[idx], torch.tensor(predicted, dtype=torch.long))
    return edited, edited.answers, idx


__all__ = ["EDITS", "TASKS", "TEST_FRACTION", "AlgoData", "DataChecks", "check_task", "data_checks", "make_data",
           "median_edits", "reference_answer", "split_of", "test_set", "training_lengths", "value_ranks"]
