"""Sequence-continuation tasks: ordered sequences, prompts rendered from fields, corruptions and batches.

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

Public API (tokenizing, positions and scoring live in :mod:`shared.tasks.tokens`)::

    generate(task, template="among_words", n_members=4, n_prompts=64, seed=0, verb="done in",
             fillers=None) -> list[SeqPrompt]
    render(task, template, members, answer, incorrect=None, fillers=(), verb="done in") -> SeqPrompt
    corrupt(prompts, corruption, seed=0, tokenizer=None) -> list[SeqPrompt]
    make_batch(model_or_tokenizer, prompts, corruption="random_members", seed=0) -> PromptBatch
    get_task(task) -> Task     # .sequence, .step, .cyclic, .ordinal, .starts(n), .follows(a, b)
    ordinal_tokens(model_or_tokenizer, task) -> LongTensor      # e.g. " 1".." 100" in order
    ordinal_lists(model_or_tokenizer, tasks) -> {list name: OrdinalList(ids, cyclic)}
    token_audit(model_or_tokenizer, tasks=TASKS) -> pandas.DataFrame

``make_batch`` gives a :class:`~shared.engine.batch.PromptBatch` whose ``correct`` is the answer token and
``incorrect`` the last member shown; clean and corrupted prompts must tokenize to one common length.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import pandas as pd
import torch

from shared.analysis.ov import OrdinalList
from shared.analysis.text import token_strings
from shared.engine.batch import PromptBatch
from shared.errors import ParameterError
from shared.tasks.tokens import answer_ids, encode, encode_text, get_tokenizer

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
    if len(members) == 0:
        raise ParameterError("A prompt needs at least one member to show; got an empty list of members.")
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
    if n_prompts < 1:
        raise ParameterError(f"n_prompts must be at least 1, got {n_prompts}.")
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
                known[word] = len(encode_text(tok, " " + word)[0])
            return known[word]
    return [_corrupt_one(p, corruption, rng, length) for p in prompts]


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


# ------------------------------------------------------------------------ ordinal token lists
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


def ordinal_lists(model_or_tokenizer: Any, task_names: Sequence[str]) -> dict[str, OrdinalList]:
    """The ordinal token list of each task, once per list, skipping lists that are not single-token
    for this tokenizer (their names are printed)."""
    out: dict[str, OrdinalList] = {}
    skipped = []
    for t in task_names:
        spec = get_task(t)
        if spec.ordinal in out:
            continue
        try:
            out[spec.ordinal] = OrdinalList(ordinal_tokens(model_or_tokenizer, t), spec.cyclic)
        except ParameterError:
            skipped.append(spec.ordinal)
    if skipped:
        print(f"Skipped ordinal lists that are not single tokens here: {', '.join(skipped)}")
    if not out:
        raise ParameterError("None of the tasks' ordinal lists is single-token for this model's tokenizer.")
    return out


def token_audit(model_or_tokenizer: Any, tasks: Sequence[str] = TASKS,
                fillers: Sequence[str] = DEFAULT_FILLERS) -> pd.DataFrame:
    """Per task: how many members are one token as ``" m"`` (and without the space), and how the first
    member that is not splits into tokens (readable labels in quotes, ``' ' | '1'``)."""
    tok = get_tokenizer(model_or_tokenizer)
    rows = []
    groups = [(t, list(dict.fromkeys(get_task(t).sequence))) for t in tasks] + [("fillers", list(fillers))]
    for name, words in groups:
        spaced = answer_ids(tok, words)
        bare = [encode_text(tok, w)[0] for w in words]
        split = [w for w, i in zip(words, spaced) if len(i) > 1]
        rows.append(dict(task=name, members=len(words),
                         single_token_spaced=sum(len(i) == 1 for i in spaced),
                         single_token_bare=sum(len(i) == 1 for i in bare),
                         max_tokens=max(len(i) for i in spaced),
                         example_split=(" | ".join(token_strings(tok, encode_text(tok, " " + split[0])[0]))
                                        if split else "")))
    return pd.DataFrame(rows)


__all__ = [
    "CORRUPTIONS", "DEFAULT_FILLERS", "DEFAULT_VERB", "ORDINALS", "SeqPrompt", "TASKS",
    "TASK_SPECS", "TEMPLATES", "Task", "corrupt", "generate", "get_task", "make_batch", "ordinal_lists",
    "ordinal_tokens", "render", "token_audit",
]
