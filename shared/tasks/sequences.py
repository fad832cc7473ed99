"""Sequence-continuation tasks: prompts, corruptions and tokenizer-aware batches.

A prompt shows ``n_members`` consecutive members of an ordered sequence and asks for the next one.
Every prompt is built from structured fields (members, filler words, verb) by concatenation, so its
text and its fields always agree; corruptions change the fields and re-render the text, never edit
strings in place.

Tasks (``TASKS``): ``numerals`` (1..100), ``number_words`` (one..twenty), ``months``, ``days``
(both cyclic), ``letters`` (A..Z), ``plus2``/``plus3`` (numerals in steps of 2 or 3),
``decreasing`` (numerals counting down) and ``fibonacci`` (1 2 3 5 8 ... 89).

Templates (``TEMPLATES``):

* ``bare``: ``" 1 2 3 4"``;
* ``among_words``: ``" Van done in 1. Hat done in 2. Ring done in 3. Desk done in 4. Sun done in"``
  (``verb`` and the ``fillers`` pool are parameters).

Every word carries its leading space, as in running text, so a member is the same token wherever
it appears and as an answer. Members are separated by spaces or punctuation, never glued to text.

The model reads ``BOS + tokens(text)`` everywhere (BOS = the tokenizer's ``bos_token_id``, or its
EOS when it has none, as in GPT-2) and predicts ``" " + answer`` after the last token.

Public API::

    generate(task, template="among_words", n_members=4, n_prompts=64, seed=0, verb="done in",
             fillers=None) -> list[SeqPrompt]
    corrupt(prompts, corruption, seed=0, tokenizer=None) -> list[SeqPrompt]
    encode(model_or_tokenizer, prompts, multi_token=False) -> Encoded    # tokens + positions
    make_batch(model_or_tokenizer, prompts, corruption="random_members", seed=0) -> PromptBatch
    token_positions(model_or_tokenizer, prompts) -> (member_pos [n, k], end_pos [n])
    ordinal_tokens(model_or_tokenizer, task) -> LongTensor      # e.g. " 1".." 100" in order
    answer_ids(model_or_tokenizer, words) -> list[list[int]]    # tokens of " word"
    group_by_length(model_or_tokenizer, prompts) -> dict[int, list[SeqPrompt]]
    score(model, prompts, multi_token=False) -> pandas.DataFrame  # per prompt: top1, margin, logit_diff, logprob
    render(task, template, members, answer, incorrect=None, fillers=(), verb="done in") -> SeqPrompt
    get_task(task) -> Task     # .sequence, .step, .cyclic, .ordinal, .starts(n), .follows(a, b)
    filter_correct(model, prompts, min_margin=0.1, max_keep=None, seed=0, multi_token=False,
                   verbose=True) -> FilteredPrompts            # a list; .counts = {task: (kept, drawn)}
    token_audit(model_or_tokenizer, tasks=TASKS) -> pandas.DataFrame
    tokenize(model_or_tokenizer, text) -> (ids with BOS, char offsets)

``make_batch`` gives a :class:`~shared.engine.batch.PromptBatch` whose ``correct`` is the answer token and
``incorrect`` the last member shown; clean and corrupted prompts must tokenize to one common length.
Members or answers spanning several tokens raise an error unless ``multi_token=True``; then
:func:`score` sums the answer's log-probabilities by teacher forcing.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

import torch

from shared.engine.batch import PromptBatch
from shared.errors import ParameterError

NUMERALS = tuple(str(i) for i in range(1, 101))
NUMBER_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
                "eighteen", "nineteen", "twenty")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
LETTERS = tuple(chr(c) for c in range(ord("A"), ord("Z") + 1))
FIBONACCI = ("1", "2", "3", "5", "8", "13", "21", "34", "55", "89")

TEMPLATES = ("bare", "among_words")
CORRUPTIONS = ("random_members", "switch_last_two", "repeat_last", "permutation")
DEFAULT_VERB = "done in"
# Capitalised nouns that head each clause of the among-words template.
DEFAULT_FILLERS = ("Van", "Hat", "Ring", "Desk", "Sun", "Cup", "Door", "Tree", "Box", "Bird",
                   "Lamp", "Boat", "Road", "Fish", "Bell", "Star")


@dataclass(frozen=True)
class Task:
    """An ordered sequence: members are ``sequence[start + step * i]`` (mod length if cyclic)."""

    name: str
    sequence: tuple[str, ...]
    step: int = 1
    cyclic: bool = False
    ordinal: str = ""  # name of the ordered token list used for successor scores

    def index(self, member: str) -> int:
        return self.sequence.index(member)

    def follows(self, a: str, b: str) -> bool:
        """Whether ``b`` is the member that comes right after ``a`` in this task."""
        i, j = self.index(a) + self.step, self.index(b)
        if self.cyclic:
            return i % len(self.sequence) == j
        return i == j

    def starts(self, n_members: int) -> list[int]:
        """Start indices from which ``n_members`` members plus the answer exist."""
        span = self.step * n_members
        if self.cyclic:
            return list(range(len(self.sequence)))
        return [s for s in range(len(self.sequence)) if 0 <= s + span < len(self.sequence)]

    def members_from(self, start: int, count: int) -> list[str]:
        n = len(self.sequence)
        return [self.sequence[(start + self.step * i) % n if self.cyclic else start + self.step * i]
                for i in range(count)]


TASK_SPECS: dict[str, Task] = {
    "numerals": Task("numerals", NUMERALS, 1, ordinal="numerals"),
    "number_words": Task("number_words", NUMBER_WORDS, 1, ordinal="number_words"),
    "months": Task("months", MONTHS, 1, cyclic=True, ordinal="months"),
    "days": Task("days", DAYS, 1, cyclic=True, ordinal="days"),
    "letters": Task("letters", LETTERS, 1, ordinal="letters"),
    "plus2": Task("plus2", NUMERALS, 2, ordinal="numerals"),
    "plus3": Task("plus3", NUMERALS, 3, ordinal="numerals"),
    "decreasing": Task("decreasing", NUMERALS, -1, ordinal="numerals"),
    "fibonacci": Task("fibonacci", FIBONACCI, 1, ordinal="numerals"),
}
TASKS: tuple[str, ...] = tuple(TASK_SPECS)
ORDINALS: dict[str, tuple[str, ...]] = {"numerals": NUMERALS, "number_words": NUMBER_WORDS,
                                        "months": MONTHS, "days": DAYS, "letters": LETTERS}


def get_task(task: str) -> Task:
    if task not in TASK_SPECS:
        raise ParameterError(f"Unknown task {task!r}; choose one of {', '.join(TASKS)}.")
    return TASK_SPECS[task]


# ----------------------------------------------------------------------------------- prompts
@dataclass(frozen=True)
class SeqPrompt:
    """One prompt with the fields it was rendered from and the character spans of its members.

    ``member_spans[i]`` is the ``(start, end)`` of ``members[i]`` in ``text`` (without its leading
    space); ``filler_spans`` likewise for the fillers shown. ``incorrect`` defaults to the last
    member shown. ``corruption`` names how a corrupted prompt was derived (``""`` for clean ones);
    a corrupted prompt keeps its clean prompt's ``answer`` and ``incorrect``.
    """

    task: str
    template: str
    members: tuple[str, ...]
    answer: str
    incorrect: str
    fillers: tuple[str, ...] = ()
    verb: str = DEFAULT_VERB
    text: str = ""
    member_spans: tuple[tuple[int, int], ...] = ()
    filler_spans: tuple[tuple[int, int], ...] = ()
    corruption: str = ""

    @property
    def n_members(self) -> int:
        return len(self.members)


def render(task: str, template: str, members: Sequence[str], answer: str, incorrect: Optional[str] = None,
           fillers: Sequence[str] = (), verb: str = DEFAULT_VERB, corruption: str = "") -> SeqPrompt:
    """Build a prompt's text from its fields by concatenation, recording every span."""
    parts: list[str] = []
    pos = 0
    member_spans, filler_spans = [], []

    def put(piece: str, spans: Optional[list] = None) -> None:
        nonlocal pos
        if spans is not None:
            spans.append((pos, pos + len(piece)))
        parts.append(piece)
        pos += len(piece)

    if template == "bare":
        for m in members:
            put(" ")
            put(m, member_spans)
    elif template == "among_words":
        if len(fillers) != len(members) + 1:
            raise ParameterError(f"The among-words template needs {len(members) + 1} fillers, got {len(fillers)}.")
        for i, m in enumerate(members):
            put(" ")
            put(fillers[i], filler_spans)
            put(f" {verb} ")
            put(m, member_spans)
            put(".")
        put(" ")
        put(fillers[-1], filler_spans)
        put(f" {verb}")
    else:
        raise ParameterError(f"Unknown template {template!r}; choose one of {', '.join(TEMPLATES)}.")
    return SeqPrompt(task, template, tuple(members), answer, members[-1] if incorrect is None else incorrect,
                     tuple(fillers) if template == "among_words" else (), verb, "".join(parts),
                     tuple(member_spans), tuple(filler_spans), corruption)


def generate(task: str, template: str = "among_words", n_members: int = 4, n_prompts: int = 64,
             seed: int = 0, verb: str = DEFAULT_VERB, fillers: Optional[Sequence[str]] = None) -> list[SeqPrompt]:
    """``n_prompts`` distinct prompts of ``task`` (seeded): random start, random distinct fillers."""
    spec = get_task(task)
    if template not in TEMPLATES:
        raise ParameterError(f"Unknown template {template!r}; choose one of {', '.join(TEMPLATES)}.")
    if n_members < 2:
        raise ParameterError(f"n_members must be at least 2, got {n_members}.")
    starts = spec.starts(n_members)
    if not starts:
        raise ParameterError(f"Task {task!r} has no sequence of {n_members} members plus an answer.")
    pool = tuple(DEFAULT_FILLERS if fillers is None else fillers)
    if template == "among_words" and len(set(pool)) < n_members + 1:
        raise ParameterError(f"The filler pool needs at least {n_members + 1} distinct words, got {len(set(pool))}.")
    if template == "bare":
        capacity = len(starts)
    else:
        capacity = len(starts)
        for k in range(n_members + 1):
            capacity *= len(set(pool)) - k
    if n_prompts > capacity:
        raise ParameterError(f"Task {task!r} with template {template!r} and {n_members} members has only "
                             f"{capacity} distinct prompts; asked for {n_prompts}.")
    rng = random.Random(f"{seed}-{task}-{template}-{n_members}")
    pool = sorted(set(pool))
    seen: set[tuple] = set()
    out: list[SeqPrompt] = []
    order = starts[:] if template == "bare" else None
    if order is not None:
        rng.shuffle(order)
    while len(out) < n_prompts:
        start = order[len(out)] if order is not None else rng.choice(starts)
        chosen = tuple(rng.sample(pool, n_members + 1)) if template == "among_words" else ()
        if (start, chosen) in seen:
            continue
        seen.add((start, chosen))
        seq = spec.members_from(start, n_members + 1)
        out.append(render(task, template, seq[:-1], seq[-1], fillers=chosen, verb=verb))
    return out


def _corrupt_one(p: SeqPrompt, corruption: str, rng: random.Random, same_length: Any = None) -> SeqPrompt:
    spec = get_task(p.task)
    members = list(p.members)
    if corruption == "switch_last_two":
        members[-1], members[-2] = members[-2], members[-1]
    elif corruption == "repeat_last":
        members[-1] = members[-2]
    elif corruption == "permutation":
        if len(set(members)) < 2:
            raise ParameterError("A permutation corruption needs at least two different members.")
        while members == list(p.members):
            rng.shuffle(members)
    elif corruption == "random_members":
        vocab = list(dict.fromkeys(spec.sequence))
        for _ in range(1000):
            new: list[str] = []
            for i, old in enumerate(p.members):
                options = [v for v in vocab if (same_length is None or same_length(v) == same_length(old))
                           and not (new and spec.follows(new[-1], v))]
                if not options:
                    break
                new.append(rng.choice(options))
            if len(new) == len(members):
                members = new
                break
        else:
            raise ParameterError(f"Could not draw random members without a consecutive pair for {p.text!r}.")
    else:
        raise ParameterError(f"Unknown corruption {corruption!r}; choose one of {', '.join(CORRUPTIONS)}.")
    return render(p.task, p.template, members, p.answer, p.incorrect, p.fillers, p.verb, corruption)


def corrupt(prompts: Sequence[SeqPrompt], corruption: str, seed: int = 0,
            tokenizer: Any = None) -> list[SeqPrompt]:
    """Corrupted copies of ``prompts`` (seeded). With a tokenizer, random members keep token counts."""
    if corruption not in CORRUPTIONS:
        raise ParameterError(f"Unknown corruption {corruption!r}; choose one of {', '.join(CORRUPTIONS)}.")
    rng = random.Random(f"{seed}-{corruption}")
    length = None
    if tokenizer is not None:
        tok = get_tokenizer(tokenizer)
        known: dict[str, int] = {}

        def length(word: str) -> int:
            if word not in known:
                known[word] = len(_encode_text(tok, " " + word)[0])
            return known[word]
    return [_corrupt_one(p, corruption, rng, length) for p in prompts]


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


def _encode_text(tok: Any, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


def tokenize(model_or_tokenizer: Any, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """``BOS + tokens(text)`` and each token's character span (BOS gets ``(0, 0)``)."""
    tok = get_tokenizer(model_or_tokenizer)
    ids, offsets = _encode_text(tok, text)
    return [bos_id(tok)] + ids, [(0, 0)] + offsets


def answer_ids(model_or_tokenizer: Any, words: Iterable[str]) -> list[list[int]]:
    """Token ids of ``" " + word`` for each word (as predicted after a prompt)."""
    tok = get_tokenizer(model_or_tokenizer)
    return [_encode_text(tok, " " + w)[0] for w in words]


def ordinal_tokens(model_or_tokenizer: Any, task: str) -> torch.Tensor:
    """Token ids of the task's ordered list (e.g. ``" 1".." 100"``); each must be one token."""
    name = get_task(task).ordinal
    words = ORDINALS[name]
    ids = answer_ids(model_or_tokenizer, words)
    multi = [w for w, i in zip(words, ids) if len(i) != 1]
    if multi:
        raise ParameterError(f"Ordinal list {name!r} is not single-token for this tokenizer "
                             f"({len(multi)} words split, e.g. {multi[0]!r}).")
    return torch.tensor([i[0] for i in ids], dtype=torch.long)


def _token_at(offsets: list[tuple[int, int]], start: int, end: int) -> list[int]:
    """Indices of tokens overlapping characters ``[start, end)``."""
    return [i for i, (a, b) in enumerate(offsets) if b > a and a < end and b > start]


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


def _encode_prompt(tok: Any, p: SeqPrompt, multi_token: bool) -> tuple[list[int], list[int], list[int], list[int]]:
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


def encode(model_or_tokenizer: Any, prompts: Sequence[SeqPrompt], multi_token: bool = False) -> Encoded:
    """Tokenize prompts (BOS first) and locate members and end; all must share one token length."""
    if not prompts:
        raise ParameterError("No prompts to encode.")
    tok = get_tokenizer(model_or_tokenizer)
    rows = [_encode_prompt(tok, p, multi_token) for p in prompts]
    lengths = sorted({len(r[0]) for r in rows})
    if len(lengths) > 1:
        raise ParameterError(f"Prompts tokenize to different lengths ({', '.join(map(str, lengths))} tokens); "
                             f"split them with tasks.group_by_length first.")
    if len({len(r[1]) for r in rows}) > 1:
        raise ParameterError("Prompts have different numbers of members.")
    tokens = torch.tensor([r[0] for r in rows], dtype=torch.long)
    return Encoded(tokens, torch.tensor([r[1] for r in rows], dtype=torch.long),
                   torch.full((len(rows),), tokens.shape[1] - 1, dtype=torch.long),
                   [r[2] for r in rows], [r[3] for r in rows])


def token_positions(model_or_tokenizer: Any, prompts: Sequence[SeqPrompt],
                    multi_token: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(member_pos [n, n_members], end_pos [n])`` token positions (BOS is position 0)."""
    enc = encode(model_or_tokenizer, prompts, multi_token)
    return enc.member_pos, enc.end_pos


def group_by_length(model_or_tokenizer: Any, prompts: Sequence[SeqPrompt]) -> dict[int, list[SeqPrompt]]:
    """Prompts grouped by their token length (with BOS), shortest first."""
    tok = get_tokenizer(model_or_tokenizer)
    groups: dict[int, list[SeqPrompt]] = {}
    for p in prompts:
        groups.setdefault(len(tokenize(tok, p.text)[0]), []).append(p)
    return dict(sorted(groups.items()))


def make_batch(model_or_tokenizer: Any, prompts: Sequence[SeqPrompt], corruption: str = "random_members",
               seed: int = 0) -> PromptBatch:
    """Clean vs corrupted :class:`PromptBatch`: correct = answer, incorrect = last member shown."""
    tok = get_tokenizer(model_or_tokenizer)
    clean = encode(tok, prompts)
    bad = corrupt(prompts, corruption, seed=seed, tokenizer=tok)
    corrupted = encode(tok, bad)
    if corrupted.tokens.shape != clean.tokens.shape:
        raise ParameterError(f"Clean prompts have {clean.tokens.shape[1]} tokens but the {corruption!r} "
                             f"corruptions have {corrupted.tokens.shape[1]}; they must be equal.")
    return PromptBatch(clean.tokens, corrupted.tokens, clean.correct, clean.incorrect, clean.end_pos,
                       [p.text for p in prompts])


# ---------------------------------------------------------------------------- scoring/filtering
@torch.no_grad()
def _logits(model: Any, tokens: torch.Tensor, chunk: int = 128) -> torch.Tensor:
    outs = []
    for i in range(0, tokens.shape[0], chunk):
        outs.append(model(tokens[i:i + chunk].to(model.cfg.device)).float().cpu())
    return torch.cat(outs)


def score(model: Any, prompts: Sequence[SeqPrompt], multi_token: bool = False) -> Any:
    """Per-prompt results: top-1 hit, probability margin, logit difference and answer log-prob.

    ``margin`` = p(answer) − p(best other token); ``logit_diff`` = logit(answer) − logit(last member
    shown). For multi-token answers, ``logprob`` sums over the answer's tokens (teacher forcing),
    ``top1`` requires every answer token to be the argmax and ``logit_diff`` is the difference of
    summed log-probs of answer and incorrect.
    """
    import pandas as pd

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
                lp_a, ok_a, margin_a = _teacher_forced(model, enc.tokens[i], a)
                lp_w, _, _ = _teacher_forced(model, enc.tokens[i], w)
                row.update(top1=ok_a, logit_diff=lp_a - lp_w, logprob=lp_a, margin=margin_a)
            else:
                row["logprob"] = logits[i].log_softmax(-1)[a[0]].item()
            rows.append((index[i], row))
    rows.sort(key=lambda r: r[0])
    return pd.DataFrame([r for _, r in rows])


def _teacher_forced(model: Any, tokens: torch.Tensor, answer: list[int]) -> tuple[float, bool, float]:
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


def filter_correct(model: Any, prompts: Sequence[SeqPrompt], min_margin: float = 0.1,
                   max_keep: Optional[int] = None, seed: int = 0, multi_token: bool = False,
                   verbose: bool = True) -> FilteredPrompts:
    """Prompts whose answer is the model's top-1 with ``p(answer) - p(runner-up) >= min_margin``.

    ``max_keep`` keeps a seeded random subset of that many per task. Prints the counts per task.
    """
    table = score(model, list(prompts), multi_token)
    keep = (table["top1"] & (table["margin"] >= min_margin)).tolist()
    out = FilteredPrompts()
    out.counts = {}
    rng = random.Random(seed)
    by_task: dict[str, list[SeqPrompt]] = {}
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


def token_audit(model_or_tokenizer: Any, tasks: Sequence[str] = TASKS,
                fillers: Sequence[str] = DEFAULT_FILLERS) -> Any:
    """Per task: how many members are one token as ``" m"`` (and without the space), examples of splits."""
    import pandas as pd

    tok = get_tokenizer(model_or_tokenizer)
    rows = []
    groups = [(t, list(dict.fromkeys(get_task(t).sequence))) for t in tasks] + [("fillers", list(fillers))]
    for name, words in groups:
        spaced = answer_ids(tok, words)
        bare = [_encode_text(tok, w)[0] for w in words]
        split = [w for w, i in zip(words, spaced) if len(i) > 1]
        rows.append(dict(task=name, members=len(words),
                         single_token_spaced=sum(len(i) == 1 for i in spaced),
                         single_token_bare=sum(len(i) == 1 for i in bare),
                         max_tokens=max(len(i) for i in spaced),
                         example_split=(" | ".join(tok.convert_ids_to_tokens(_encode_text(tok, " " + split[0])[0]))
                                        if split else "")))
    return pd.DataFrame(rows)


__all__ = [
    "CORRUPTIONS", "DEFAULT_FILLERS", "DEFAULT_VERB", "Encoded", "FilteredPrompts", "ORDINALS", "SeqPrompt",
    "TASKS", "TASK_SPECS", "TEMPLATES", "Task", "answer_ids", "bos_id", "corrupt", "encode", "filter_correct",
    "generate", "get_task", "get_tokenizer", "group_by_length", "make_batch", "ordinal_tokens", "render",
    "score", "token_audit", "token_positions", "tokenize",
]
