"""The tokenizer pitfalls met when circuit work moves from GPT-2 to Llama-2 and Pythia, each measured.

Every function takes ``models`` (display name -> bridge or tokenizer) and sequence prompts
(:class:`shared.tasks.sequences.SeqPrompt`) and returns one table with a row per model, so a chapter
can show each pitfall happening next to the fix of :mod:`shared.tasks.tokens`:

* :func:`bos_table`: BOS missing, given once (the book: ``add_special_tokens=False`` plus one BOS), or
  twice (the tokenizer's own BOS plus the one the code adds);
* :func:`trailing_space_table`: what is predicted after a prompt without a trailing space, what the
  first answer token can tell apart, and whether a trailing space helps or hurts;
* :func:`multi_token_table`: answers of several tokens (digits split) scored by their first token or
  first digit, against teacher forcing on the whole answer;
* :func:`position_table`: member positions hard-coded for one token per member, against positions
  from character offsets.

Tokens are shown as the tokenizer's own pieces (``▁`` word start of the SentencePiece style, ``Ġ``
the byte-level space), which is how a piece that decodes to an empty string becomes visible.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Sequence

import pandas as pd
import torch

from shared.errors import ParameterError
from shared.tasks import tokens as T
from shared.tasks.sequences import token_audit

BOS_MODES = ("none", "book", "tokenizer's own", "own + code's")


def pieces(model_or_tokenizer: Any, ids: Sequence[int]) -> list[str]:
    """The tokenizer's raw pieces of ``ids`` (``'▁'``, ``'Ġ5'``), never decoded away to ``''``."""
    return T.get_tokenizer(model_or_tokenizer).convert_ids_to_tokens([int(i) for i in ids])


def is_space_piece(piece: str) -> bool:
    """Whether a raw piece stands for whitespace only (``'▁'``, ``'Ġ'``, ``' '``)."""
    return piece.replace("▁", " ").replace("Ġ", " ").replace("Ċ", "\n").strip() == ""


def prompt_ids(model_or_tokenizer: Any, text: str, mode: str = "book") -> list[int]:
    """Token ids of ``text`` with BOS handled as ``mode`` says (one of :data:`BOS_MODES`).

    ``"book"`` is :func:`shared.tasks.tokens.tokenize`: no special tokens from the tokenizer, one BOS
    added by the code. ``"tokenizer's own"`` is whatever ``tokenizer(text)`` adds (Llama-style: BOS;
    GPT-2 and NeoX style: nothing); ``"own + code's"`` adds a BOS in front of that, as code written for
    GPT-2 does, which doubles it on a Llama-style tokenizer."""
    tok = T.get_tokenizer(model_or_tokenizer)
    if mode == "none":
        return T.encode_text(tok, text)[0]
    if mode == "book":
        return T.tokenize(tok, text)[0]
    if mode == "tokenizer's own":
        return list(tok(text)["input_ids"])
    if mode == "own + code's":
        return [T.bos_id(tok)] + list(tok(text)["input_ids"])
    raise ParameterError(f"Unknown BOS mode {mode!r}; choose one of {', '.join(BOS_MODES)}.")


def leading_bos(model_or_tokenizer: Any, ids: Sequence[int]) -> int:
    """How many BOS tokens ``ids`` starts with."""
    bos, n = T.bos_id(model_or_tokenizer), 0
    while n < len(ids) and ids[n] == bos:
        n += 1
    return n


@torch.no_grad()
def judge(model: Any, ids: Sequence[int], answer: Sequence[int], incorrect: Sequence[int]) -> dict[str, Any]:
    """One prompt's outcome: the top next piece, whether the first answer token is the top one and its
    logit difference to the first incorrect token, and by teacher forcing on every answer token whether
    each is the top one and the summed log-probability difference answer - incorrect."""
    if not answer or not incorrect:
        raise ParameterError("judge needs a non-empty answer and incorrect token list.")
    tokens = torch.tensor(list(ids), dtype=torch.long)
    last = model(tokens[None].to(model.cfg.device))[0, -1].float().cpu()
    lp_a, ok, _ = T.teacher_forced(model, tokens, list(answer))
    lp_w, _, _ = T.teacher_forced(model, tokens, list(incorrect))
    return dict(top_piece=pieces(model, [int(last.argmax())])[0], first_top1=bool(last.argmax() == answer[0]),
                first_diff=float(last[answer[0]] - last[incorrect[0]]), top1=ok, logit_diff=lp_a - lp_w,
                n_answer_tokens=len(answer), same_first=answer[0] == incorrect[0])


def _book_answers(model: Any, p: Any) -> tuple[list[int], list[list[int]]]:
    enc = T.encode(model, [p], multi_token=True)
    return enc.tokens[0].tolist(), [enc.answers[0], enc.incorrects[0]]


def _per_model(models: dict[str, Any], prompts: Sequence[Any], row: Callable[[Any, list[Any]], dict]) -> pd.DataFrame:
    if not prompts:
        raise ParameterError("No prompts to measure.")
    return pd.DataFrame([dict(model=name, **row(model, list(prompts))) for name, model in models.items()]).set_index("model")


def bos_table(models: dict[str, Any], prompts: Sequence[Any]) -> pd.DataFrame:
    """Per model and BOS mode: BOS tokens at the start, accuracy (every answer token top-1, teacher
    forced) and mean logit difference answer - incorrect (summed log-probabilities)."""
    def row(model: Any, ps: list[Any]) -> dict:
        out = {}
        for mode in BOS_MODES:
            judged = []
            for p in ps:
                _, (answer, incorrect) = _book_answers(model, p)
                judged.append(judge(model, prompt_ids(model, p.text, mode), answer, incorrect))
            out[f"{mode}: BOS"] = leading_bos(model, prompt_ids(model, ps[0].text, mode))
            out[f"{mode}: accuracy"] = sum(j["top1"] for j in judged) / len(judged)
            out[f"{mode}: logit diff"] = sum(j["logit_diff"] for j in judged) / len(judged)
        return out
    return _per_model(models, prompts, row)


def _after_trailing_space(model: Any, p: Any) -> tuple[list[int], list[int], list[int], bool]:
    """The prompt with a trailing space, and answer and incorrect as the tokens that follow it; the
    flag says whether ``text + " "`` is a prefix of ``text + " " + answer`` in tokens (on a
    byte-level BPE it is not: the space merges into the answer's token there)."""
    prefix = T.tokenize(model, p.text + " ")[0]
    rest = []
    kept = True
    for word in (p.answer, p.incorrect):
        full = T.tokenize(model, p.text + " " + word)[0]
        if full[:len(prefix)] == prefix and len(full) > len(prefix):
            rest.append(full[len(prefix):])
        else:
            kept = False
            rest.append(T.encode_text(T.get_tokenizer(model), word)[0])
    return prefix, rest[0], rest[1], kept


def trailing_space_table(models: dict[str, Any], prompts: Sequence[Any]) -> pd.DataFrame:
    """Per model: after the prompt as written (no trailing space), the most frequent top piece, the
    share of prompts whose top piece is a space, the share whose answer and incorrect start with the
    same token (their first-token logit difference is then exactly 0), and accuracy judged by the
    first token; with a trailing space added, whether the prompt's tokens stay a prefix and the
    accuracy; the book's way (no trailing space, the whole ``" " + answer`` by teacher forcing)."""
    def row(model: Any, ps: list[Any]) -> dict:
        plain, spaced, kept = [], [], 0
        for p in ps:
            ids, (answer, incorrect) = _book_answers(model, p)
            plain.append(judge(model, ids, answer, incorrect))
            prefix, a, w, ok = _after_trailing_space(model, p)
            spaced.append(judge(model, prefix, a, w))
            kept += ok
        n = len(ps)
        return {"top piece": Counter(j["top_piece"] for j in plain).most_common(1)[0][0],
                "top is a space": sum(is_space_piece(j["top_piece"]) for j in plain) / n,
                "same first token": sum(j["same_first"] for j in plain) / n,
                "first-token accuracy": sum(j["first_top1"] for j in plain) / n,
                "first-token logit diff": sum(j["first_diff"] for j in plain) / n,
                "trailing space: prefix kept": kept / n,
                "trailing space: accuracy": sum(j["top1"] for j in spaced) / n,
                "book (teacher forced): accuracy": sum(j["top1"] for j in plain) / n}
    return _per_model(models, prompts, row)


def multi_token_table(models: dict[str, Any], prompts: Sequence[Any]) -> pd.DataFrame:
    """Per model: the share of answers longer than one token, accuracy by the first token (after the
    prompt as written), by the first token after a trailing space (the first digit on a digit-split
    tokenizer), how often that first digit is right while the whole answer is not, and accuracy by
    teacher forcing on every answer token (:func:`shared.tasks.tokens.score`)."""
    def row(model: Any, ps: list[Any]) -> dict:
        first, digit, wrong_but_counted = 0, 0, 0
        multi = 0
        for p in ps:
            ids, (answer, incorrect) = _book_answers(model, p)
            j = judge(model, ids, answer, incorrect)
            prefix, a, w, _ = _after_trailing_space(model, p)
            d = judge(model, prefix, a, w)
            first += j["first_top1"]
            digit += d["first_top1"]
            wrong_but_counted += d["first_top1"] and not d["top1"]
            multi += len(answer) > 1
        book = T.score(model, ps, multi_token=True)
        n = len(ps)
        return {"answers of >1 token": multi / n, "first-token accuracy": first / n,
                "first digit (trailing space) accuracy": digit / n,
                "first digit right, answer wrong": wrong_but_counted / n,
                "book (teacher forced): accuracy": float(book["top1"].mean())}
    return _per_model(models, prompts, row)


def hard_coded_positions(n_members: int) -> list[int]:
    """Member positions as code written for GPT-2 assumes on the bare template: BOS, then one token
    per member (``" 1" " 2" ...``), so member ``j`` sits at ``1 + j``."""
    return [1 + j for j in range(n_members)]


def position_table(models: dict[str, Any], prompts: Sequence[Any]) -> pd.DataFrame:
    """Per tokenizer: the share of members whose token is found at the hard-coded position and at the
    position from character offsets (:func:`shared.tasks.tokens.encode`), and the pieces each rule
    picks in the first prompt."""
    def row(model: Any, ps: list[Any]) -> dict:
        hits = {"hard-coded": 0, "offsets": 0}
        total, example = 0, {}
        for k, p in enumerate(ps):
            ids = T.tokenize(model, p.text)[0]
            found = T.encode(model, [p], multi_token=True).member_pos[0].tolist()
            fixed = hard_coded_positions(len(p.members))
            for rule, positions in (("hard-coded", fixed), ("offsets", found)):
                picked = [pieces(model, [ids[i]])[0] if i < len(ids) else "(past the end)" for i in positions]
                hits[rule] += sum(_piece_ends(piece, m) for piece, m in zip(picked, p.members))
                if k == 0:
                    example[f"{rule}: pieces"] = " ".join(picked)
            total += len(p.members)
        return {"hard-coded: share right": hits["hard-coded"] / total, "offsets: share right": hits["offsets"] / total,
                **example}
    return _per_model(models, prompts, row)


def _piece_ends(piece: str, member: str) -> bool:
    """Whether a raw piece is the last token of ``member`` (its text, or the member's last characters)."""
    text = piece.replace("▁", "").replace("Ġ", "")
    return bool(text) and member.endswith(text)


def tokenization_table(models: dict[str, Any], tasks: Sequence[str]) -> pd.DataFrame:
    """How each task's members tokenize per model (:func:`shared.tasks.sequences.token_audit`, one
    block of rows per model)."""
    frames = [token_audit(model, tasks).assign(model=name) for name, model in models.items()]
    return pd.concat(frames).set_index(["model", "task"])


__all__ = ["BOS_MODES", "bos_table", "hard_coded_positions", "is_space_piece", "judge", "leading_bos",
           "multi_token_table", "pieces", "position_table", "prompt_ids", "tokenization_table",
           "trailing_space_table"]
