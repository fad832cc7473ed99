"""Prompts as tokens: tokenizer access, encoding with member positions, and scoring the model's answer.

Every prompt reads ``BOS + tokens(text)`` (BOS = the tokenizer's ``bos_token_id``, or its EOS when it
has none, as in GPT-2) and the model predicts ``" " + answer`` after the last token. Positions of
members come from the tokenizer's character offsets, never from counting words.

The functions here need only what a prompt carries (``text``, ``members``, ``member_spans``,
``answer``, ``incorrect``, ``task``, ``template``: a :class:`shared.tasks.sequences.SeqPrompt`):

    encode(model_or_tokenizer, prompts, multi_token=False) -> Encoded    # tokens + positions
    token_positions(model_or_tokenizer, prompts) -> (member_pos [n, k], end_pos [n])
    group_by_length(model_or_tokenizer, prompts) -> dict[int, list[prompt]]
    score(model, prompts, multi_token=False) -> pandas.DataFrame   # per prompt: top1, margin, logit_diff, logprob
    filter_correct(model, prompts, min_margin=0.1, ...) -> FilteredPrompts   # a list; .counts = {task: (kept, drawn)}

Members or answers spanning several tokens raise an error unless ``multi_token=True``; then
:func:`score` sums the answer's log-probabilities by teacher forcing.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

import pandas as pd
import torch

from shared.errors import ParameterError


# -------------------------------------------------------------------------------- tokenizers
def get_tokenizer(model_or_tokenizer: Any) -> Any:
    """The HF tokenizer of a bridge (``.tokenizer``), or the argument itself."""
    tok = getattr(model_or_tokenizer, "tokenizer", None)
    tok = model_or_tokenizer if tok is None else tok
    if not callable(getattr(tok, "__call__", None)) or not hasattr(tok, "convert_ids_to_tokens"):
        raise ParameterError("Expected a model with a tokenizer or a Hugging Face tokenizer.")
    return tok


def bos_id(tokenizer: Any) -> int:
    """Token prepended to every prompt: the BOS token, or EOS where there is none (GPT-2)."""
    tok = get_tokenizer(tokenizer)
    bid = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    if bid is None:
        raise ParameterError("The tokenizer has neither a BOS nor an EOS token to start prompts with.")
    return int(bid)


def encode_text(tok: Any, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids of ``text`` without special tokens, and each token's character span."""
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


def tokenize(model_or_tokenizer: Any, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """``BOS + tokens(text)`` and each token's character span (BOS gets ``(0, 0)``)."""
    tok = get_tokenizer(model_or_tokenizer)
    ids, offsets = encode_text(tok, text)
    return [bos_id(tok)] + ids, [(0, 0)] + offsets


def answer_ids(model_or_tokenizer: Any, words: Iterable[str]) -> list[list[int]]:
    """Token ids of ``" " + word`` for each word (as predicted after a prompt)."""
    tok = get_tokenizer(model_or_tokenizer)
    return [encode_text(tok, " " + w)[0] for w in words]


def _token_at(offsets: list[tuple[int, int]], start: int, end: int) -> list[int]:
    """Indices of tokens overlapping characters ``[start, end)``."""
    return [i for i, (a, b) in enumerate(offsets) if b > a and a < end and b > start]


# -------------------------------------------------------------------------------- encoding
@dataclass
class Encoded:
    """Tokenized prompts of one common length with positions and answer tokens.

    ``member_pos[i, j]``: position of the (last) token of member ``j``; ``end_pos[i]``: last
    position (where the answer is predicted). ``answers``/``incorrects``: token lists of
    ``" " + answer``; ``correct``/``incorrect``: their first tokens.
    """

    tokens: torch.Tensor
    member_pos: torch.Tensor
    end_pos: torch.Tensor
    answers: list[list[int]] = field(default_factory=list)
    incorrects: list[list[int]] = field(default_factory=list)

    @property
    def correct(self) -> torch.Tensor:
        return torch.tensor([a[0] for a in self.answers], dtype=torch.long)

    @property
    def incorrect(self) -> torch.Tensor:
        return torch.tensor([a[0] for a in self.incorrects], dtype=torch.long)


def _encode_prompt(tok: Any, p: Any, multi_token: bool) -> tuple[list[int], list[int], list[int], list[int]]:
    ids, offsets = tokenize(tok, p.text)
    members = []
    for m, (a, b) in zip(p.members, p.member_spans):
        hits = _token_at(offsets, a, b)
        if not hits:
            raise ParameterError(f"Member {m!r} of {p.text!r} has no token.")
        text_of = "".join(p.text[offsets[i][0]:offsets[i][1]] for i in hits).strip()
        if len(hits) > 1 and not multi_token:
            raise ParameterError(f"Member {m!r} of {p.text!r} splits into {len(hits)} tokens for this "
                                 f"tokenizer; pass multi_token=True to allow it.")
        if text_of != m:
            raise ParameterError(f"Member {m!r} of {p.text!r} shares a token with its neighbours ({text_of!r}).")
        members.append(hits[-1])
    result = []
    for word in (p.answer, p.incorrect):
        full, _ = tokenize(tok, p.text + " " + word)
        if full[:len(ids)] != ids:
            raise ParameterError(f"Appending {word!r} to {p.text!r} changes the prompt's tokens.")
        extra = full[len(ids):]
        if len(extra) != 1 and not multi_token:
            raise ParameterError(f"Answer {word!r} is {len(extra)} tokens for this tokenizer; "
                                 f"pass multi_token=True to score it by teacher forcing.")
        result.append(extra)
    return ids, members, result[0], result[1]


def encode(model_or_tokenizer: Any, prompts: Sequence[Any], multi_token: bool = False) -> Encoded:
    """Tokenize prompts (BOS first) and locate members and end; all must share one token length."""
    if not prompts:
        raise ParameterError("No prompts to encode.")
    tok = get_tokenizer(model_or_tokenizer)
    rows = [_encode_prompt(tok, p, multi_token) for p in prompts]
    lengths = sorted({len(r[0]) for r in rows})
    if len(lengths) > 1:
        raise ParameterError(f"Prompts tokenize to different lengths ({', '.join(map(str, lengths))} tokens); "
                             f"split them with group_by_length first.")
    if len({len(r[1]) for r in rows}) > 1:
        raise ParameterError("Prompts have different numbers of members.")
    tokens = torch.tensor([r[0] for r in rows], dtype=torch.long)
    return Encoded(tokens, torch.tensor([r[1] for r in rows], dtype=torch.long),
                   torch.full((len(rows),), tokens.shape[1] - 1, dtype=torch.long),
                   [r[2] for r in rows], [r[3] for r in rows])


def token_positions(model_or_tokenizer: Any, prompts: Sequence[Any],
                    multi_token: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(member_pos [n, n_members], end_pos [n])`` token positions (BOS is position 0)."""
    enc = encode(model_or_tokenizer, prompts, multi_token)
    return enc.member_pos, enc.end_pos


def group_by_length(model_or_tokenizer: Any, prompts: Sequence[Any]) -> dict[int, list[Any]]:
    """Prompts grouped by their token length (with BOS), shortest first."""
    tok = get_tokenizer(model_or_tokenizer)
    groups: dict[int, list[Any]] = {}
    for p in prompts:
        groups.setdefault(len(tokenize(tok, p.text)[0]), []).append(p)
    return dict(sorted(groups.items()))


# ---------------------------------------------------------------------------- scoring/filtering
@torch.no_grad()
def _logits(model: Any, tokens: torch.Tensor, chunk: int = 128) -> torch.Tensor:
    outs = []
    for i in range(0, tokens.shape[0], chunk):
        outs.append(model(tokens[i:i + chunk].to(model.cfg.device)).float().cpu())
    return torch.cat(outs)


def score(model: Any, prompts: Sequence[Any], multi_token: bool = False) -> pd.DataFrame:
    """Per-prompt results: top-1 hit, probability margin, logit difference and answer log-prob.

    ``margin`` = p(answer) − p(best other token); ``logit_diff`` = logit(answer) − logit(last member
    shown). For multi-token answers, ``logprob`` sums over the answer's tokens (teacher forcing),
    ``top1`` requires every answer token to be the argmax and ``logit_diff`` is the difference of
    summed log-probs of answer and incorrect.
    """
    rows = []
    prompts = list(prompts)
    tok = get_tokenizer(model)
    by_length: dict[int, list[int]] = {}
    for k, p in enumerate(prompts):
        by_length.setdefault(len(tokenize(tok, p.text)[0]), []).append(k)
    for length, index in by_length.items():
        group = [prompts[k] for k in index]
        enc = encode(tok, group, multi_token)
        logits = _logits(model, enc.tokens)[:, -1]
        probs = logits.softmax(-1)
        for i, p in enumerate(group):
            a, w = enc.answers[i], enc.incorrects[i]
            pa = probs[i, a[0]].item()
            others = probs[i].clone()
            others[a[0]] = -1
            row = dict(task=p.task, template=p.template, text=p.text, answer=p.answer, n_tokens=length,
                       first_member=p.members[0], top1=bool(probs[i].argmax().item() == a[0]),
                       p_answer=pa, margin=pa - others.max().item(),
                       logit_diff=(logits[i, a[0]] - logits[i, w[0]]).item())
            if multi_token and (len(a) > 1 or len(w) > 1):
                lp_a, ok_a, margin_a = teacher_forced(model, enc.tokens[i], a)
                lp_w, _, _ = teacher_forced(model, enc.tokens[i], w)
                row.update(top1=ok_a, logit_diff=lp_a - lp_w, logprob=lp_a, margin=margin_a)
            else:
                row["logprob"] = logits[i].log_softmax(-1)[a[0]].item()
            rows.append((index[i], row))
    rows.sort(key=lambda r: r[0])
    return pd.DataFrame([r for _, r in rows])


def teacher_forced(model: Any, tokens: torch.Tensor, answer: list[int]) -> tuple[float, bool, float]:
    """For ``answer`` after ``tokens``: summed log-prob, whether every token is the argmax, and the
    smallest probability margin over the runner-up among its tokens."""
    full = torch.cat([tokens, torch.tensor(answer[:-1], dtype=torch.long)])[None]
    logp = _logits(model, full)[0, len(tokens) - 1:].log_softmax(-1)
    target = torch.tensor(answer)
    steps = torch.arange(len(answer))
    probs = logp.exp()
    p_target = probs[steps, target]
    probs[steps, target] = -1
    margin = (p_target - probs.max(-1).values).min().item()
    return logp[steps, target].sum().item(), bool(margin > 0), margin


class FilteredPrompts(list):
    """A list of prompts that also records ``counts``: ``{task: (kept, total)}``."""

    counts: dict[str, tuple[int, int]]


def filter_correct(model: Any, prompts: Sequence[Any], min_margin: float = 0.1,
                   max_keep: Optional[int] = None, seed: int = 0, multi_token: bool = False,
                   verbose: bool = True) -> FilteredPrompts:
    """Prompts whose answer is the model's top-1 with ``p(answer) - p(runner-up) >= min_margin``.

    ``max_keep`` keeps a seeded random subset of that many per task. Prints the counts per task.
    """
    prompts = list(prompts)
    if not prompts:
        raise ParameterError("filter_correct needs at least one prompt to score; got an empty list.")
    table = score(model, prompts, multi_token)
    keep = (table["top1"] & (table["margin"] >= min_margin)).tolist()
    out = FilteredPrompts()
    out.counts = {}
    rng = random.Random(seed)
    by_task: dict[str, list[Any]] = {}
    for p, ok in zip(prompts, keep):
        total = out.counts.get(p.task, (0, 0))
        out.counts[p.task] = (total[0] + ok, total[1] + 1)
        if ok:
            by_task.setdefault(p.task, []).append(p)
    for task, kept in by_task.items():
        if max_keep is not None and len(kept) > max_keep:
            chosen = set(rng.sample(range(len(kept)), max_keep))
            kept = [p for i, p in enumerate(kept) if i in chosen]
        out.extend(kept)
    if verbose:
        print("Kept (top-1, margin ≥ %.2f): " % min_margin
              + ", ".join(f"{t} {k}/{n}" for t, (k, n) in out.counts.items()))
    return out


__all__ = [
    "Encoded", "FilteredPrompts", "answer_ids", "bos_id", "encode", "encode_text", "filter_correct",
    "get_tokenizer", "group_by_length", "score", "teacher_forced", "token_positions", "tokenize",
]
