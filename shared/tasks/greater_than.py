"""Greater-than prompts (Hanna et al. 2023) on the held-out templates, and their probability difference.

A prompt spans a start year ``CCYY`` and stops after the end year's century ``CC``:

    "The war dragged on from the year 1732 until the year 17"  ->  "33" ... "99"

The next token is the end year's last two digits, a two-digit token ``"00"``..``"99"`` that must be
larger than ``YY``. Templates and nouns come from :mod:`shared.tasks.heldout` (``GT_TEMPLATES``,
``GT_NOUNS``). The start year must tokenize as the century then ``"YY"`` (one token, found from the
tokenizer's offsets, checked per prompt) and every two-digit string must be one token.

* corruption ``"01"``: the start year's last two digits become ``01`` (nothing is then excluded);
* :func:`prob_diff_from_logits`: ``sum p(y > YY) - sum p(y <= YY)`` over the two-digit tokens at
  END, from one log-softmax over the vocabulary; :func:`greater_than_metric` is the same as an engine
  :class:`~shared.engine.metrics.Metric` for patching.

In the :class:`PromptBatch`, ``incorrect`` is the ``"YY"`` token (the largest wrong answer) and
``correct`` the ``"YY+1"`` token (the smallest right one); the metric reads ``YY`` back from
``incorrect``, so it stays right on any subset of the batch.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any, Sequence

import torch

from shared.engine.batch import PromptBatch
from shared.engine.metrics import Metric, unembed
from shared.errors import ParameterError
from shared.tasks.heldout import GT_NOUNS, GT_TEMPLATES, fill_template
from shared.tasks.tokens import encode_text, get_tokenizer, tokenize

CORRUPTIONS = ("01",)


def two_digit_ids(tokenizer: Any) -> torch.Tensor:
    """Token ids of ``"00"``..``"99"`` (no leading space) in order, [100]; each must be one token."""
    tok = get_tokenizer(tokenizer)
    out = []
    for k in range(100):
        ids, _ = encode_text(tok, f"{k:02d}")
        if len(ids) != 1:
            raise ParameterError(f"The two digits '{k:02d}' are {len(ids)} tokens for this tokenizer, but the "
                                 f"greater-than task needs every two-digit string from 00 to 99 as one token.")
        out.append(ids[0])
    return torch.tensor(out, dtype=torch.long)


@dataclass(frozen=True)
class GTItem:
    """One greater-than prompt as fields; the start year is ``century * 100 + yy``."""

    template: str
    noun: str
    century: int
    yy: int

    def render(self) -> tuple[str, tuple[int, int]]:
        """The text and the character span of the start year's last two digits."""
        values = dict(NOUN=self.noun, START=f"{self.century}{self.yy:02d}", CENTURY=str(self.century))
        text, spans = fill_template(GT_TEMPLATES[self.template].text, values,
                                    f"Greater-than template {self.template!r}")
        end = spans["START"][1]
        return text, (end - 2, end)

    @property
    def text(self) -> str:
        return self.render()[0]


def gt_items(template: str, n: int, seed: int = 0, centuries: Sequence[int] = tuple(range(12, 20)),
             yy_range: tuple[int, int] = (2, 98)) -> list[GTItem]:
    """``n`` prompts of ``template``: century drawn from ``centuries``, ``yy`` from ``yy_range``
    (inclusive; default 02..98 as in Hanna et al.), noun from ``GT_NOUNS`` (seeded)."""
    if template not in GT_TEMPLATES:
        raise ParameterError(f"Unknown greater-than template {template!r}; choose one of {', '.join(GT_TEMPLATES)}.")
    lo, hi = yy_range
    if not 2 <= lo <= hi <= 98:
        raise ParameterError(f"yy_range must lie within 2..98 (so that 01 differs and some answer is larger), "
                             f"got {yy_range}.")
    rng = random.Random(f"{seed}-gt-items-{template}")
    return [GTItem(template, rng.choice(GT_NOUNS), rng.choice(list(centuries)), rng.randint(lo, hi))
            for _ in range(n)]


def corrupt_gt(items: Sequence[GTItem], corruption: str = "01") -> list[GTItem]:
    """The ``"01"`` corruption: the start year's last two digits replaced by 01."""
    if corruption not in CORRUPTIONS:
        raise ParameterError(f"Unknown greater-than corruption {corruption!r}; use one of {CORRUPTIONS}.")
    return [replace(it, yy=1) for it in items]


def _encode(tok: Any, item: GTItem, digits: torch.Tensor) -> tuple[list[int], int]:
    """Tokens of one prompt and the position of its ``YY`` token (checked against the offsets)."""
    text, (a, b) = item.render()
    ids, offsets = tokenize(tok, text)
    hits = [i for i, (x, y) in enumerate(offsets) if y > x and x < b and y > a]
    yy = f"{item.yy:02d}"
    if len(hits) != 1 or offsets[hits[0]] != (a, b) or ids[hits[0]] != int(digits[item.yy]):
        pieces = " + ".join(repr(text[offsets[i][0]:offsets[i][1]]) for i in hits)
        raise ParameterError(f"The start year {item.century}{yy} does not end in the one token {yy!r} for this "
                             f"tokenizer (its last digits read {pieces}); choose other centuries or years.")
    last = text[offsets[-1][0]:offsets[-1][1]].strip()
    if last != str(item.century):
        raise ParameterError(f"The prompt {text!r} does not end in the century token {item.century!r} "
                             f"(its last token reads {last!r}).")
    return ids, hits[0]


@dataclass
class GTBatch:
    """Clean and ``"01"`` prompts of one token length: ``yy`` [n], the ``YY`` token's position
    ``yy_pos`` [n], the two-digit token ids ``digits`` [100] and the engine's ``batch``."""

    template: str
    items: list[GTItem]
    corrupt_items: list[GTItem]
    yy: torch.Tensor
    yy_pos: torch.Tensor
    digits: torch.Tensor
    batch: PromptBatch

    def __len__(self) -> int:
        return len(self.items)


def gt_batch(tokenizer: Any, template: str, n: int = 32, seed: int = 0,
             centuries: Sequence[int] = tuple(range(12, 20)), yy_range: tuple[int, int] = (2, 98)) -> GTBatch:
    """``n`` clean/``"01"`` pairs of ``template`` sharing the most common token length of the draws."""
    tok = get_tokenizer(tokenizer)
    digits = two_digit_ids(tok)
    pool = gt_items(template, 20 * n + 32, seed, centuries, yy_range)
    rows = []
    for it in pool:
        ids, at = _encode(tok, it, digits)
        bad_ids, bad_at = _encode(tok, corrupt_gt([it])[0], digits)
        if len(bad_ids) == len(ids) and bad_at == at:
            rows.append((it, ids, bad_ids, at))
    lengths = [len(r[1]) for r in rows[:max(16, n)]]
    target = max(set(lengths), key=lengths.count) if lengths else -1
    rows = [r for r in rows if len(r[1]) == target][:n]
    if len(rows) < n:
        raise ParameterError(f"Only {len(rows)} drawn {template!r} prompts share one token length with their '01' "
                             f"corruption; ask for fewer than {n}.")
    items = [r[0] for r in rows]
    yy = torch.tensor([it.yy for it in items], dtype=torch.long)
    clean = torch.tensor([r[1] for r in rows], dtype=torch.long)
    batch = PromptBatch(clean, torch.tensor([r[2] for r in rows], dtype=torch.long), digits[(yy + 1).clamp(max=99)],
                        digits[yy], labels=[it.text for it in items])
    return GTBatch(template, items, corrupt_gt(items), yy, torch.tensor([r[3] for r in rows]), digits, batch)


def prob_diff_from_logits(logits: torch.Tensor, yy: torch.Tensor, digits: torch.Tensor) -> torch.Tensor:
    """``sum_{y > YY} p(y) - sum_{y <= YY} p(y)`` over the two-digit tokens: ``logits`` [..., batch,
    vocab] at END, ``yy`` [batch], ``digits`` [100] token ids -> [..., batch]. One log-softmax over
    the vocabulary (``logsumexp``); only the 100 answer columns are exponentiated."""
    logits = logits.float()
    lse = logits.logsumexp(-1, keepdim=True)
    probs = (logits[..., digits.to(logits.device)] - lse).exp()  # [..., batch, 100]
    above = torch.arange(100, device=logits.device).view(1, -1) > yy.to(logits.device).view(-1, 1)
    sign = above.float() * 2 - 1  # +1 for y > YY, -1 for y <= YY
    return (probs * sign).sum(-1)


def greater_than_metric(digits: torch.Tensor) -> Metric:
    """The probability difference as an engine metric (reads ``YY`` from ``batch.incorrect``)."""
    digits = torch.as_tensor(digits, dtype=torch.long)
    lookup = {int(t): k for k, t in enumerate(digits.tolist())}

    def fn(bridge: Any, final: torch.Tensor, batch: PromptBatch) -> torch.Tensor:
        try:
            yy = torch.tensor([lookup[int(t)] for t in batch.incorrect.tolist()], dtype=torch.long)
        except KeyError as missing:
            raise ParameterError(f"Token {missing} of batch.incorrect is not a two-digit token; the greater-than "
                                 f"metric needs a batch from gt_batch.") from None
        return prob_diff_from_logits(unembed(bridge, final), yy, digits).to(final.dtype)

    return Metric("prob_diff_gt", fn)


__all__ = [
    "CORRUPTIONS", "GTBatch", "GTItem", "corrupt_gt", "greater_than_metric", "gt_batch", "gt_items",
    "prob_diff_from_logits", "two_digit_ids",
]
