"""The local model suite's training text: a seeded generator of short English documents, and its tokenizer.

Nothing is downloaded and no file is read: every document comes from a grammar over the word lists of
:mod:`shared.zoo.text.suite_words`, drawn with ``random.Random`` seeded by (data seed, step), so the
text a model trained on at any step can be generated again on its own. Six kinds of documents:

* ``sequence``: ordered members (numerals, number words, months, days, letters, steps of 2 or 3,
  counting down) in lists and in clauses whose frame words are drawn at random, often with a
  different head word per clause, plus calendars where a day and a date advance together;
* ``story``: two people meet, something happens, one of them does something *to* or *for* the other
  ("... Ana gave the key to Tom."), in many orders and structures (indirect-object identification);
* ``years``: spans of years ("from 1732 to 1789", always increasing) and timelines (greater-than);
* ``prose``: sentences from a small recursive grammar (clauses, subordinates, questions, quotes);
* ``repeat``: a span of random words or letter strings shown twice (induction);
* ``ioi``: dense scenes of two people where one acts on the other, who is named last
  (:mod:`shared.zoo.text.suite_stories`; used by the suite from version 3 on).

Documents containing any held-out phrase of :mod:`shared.tasks.heldout` are never emitted (the
generator draws again), so the evaluation forms cannot occur in training; ``tests/test_suite.py``
scans the whole training stream to check it.

The tokenizer (:func:`suite_tokenizer`) is a byte-level BPE trained on generated documents. Digit runs
are cut into pairs before BPE (``" 1732"`` is ``" 17" + "32"``, as in GPT-2) except ``" 100"``; every
numeral ``" 1"``..``" 100"``, pair ``"00"``..``"99"``, task member, name, place and object is one token.
"""
from __future__ import annotations

import random
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shared.errors import ParameterError
from shared.tasks.heldout import contains_heldout, distinctive_phrases
from shared.tasks.sequences import ORDINALS, get_task
from shared.zoo.cache import cached_dir
from shared.zoo.text import suite_words as W
from shared.zoo.text.suite_stories import ioi_document

SPECIAL = "<|endoftext|>"
KINDS = ("sequence", "story", "ioi", "years", "prose", "repeat")
DEFAULT_MIX = {"sequence": 0.27, "story": 0.38, "years": 0.15, "prose": 0.1, "repeat": 0.1}
SEQ_WEIGHTS = {"numerals": 3.0, "number_words": 1.5, "months": 1.5, "days": 1.5, "letters": 1.5,
               "plus2": 0.4, "plus3": 0.3, "decreasing": 0.4}
_HELDOUT = tuple(distinctive_phrases())
_NAME_SET = frozenset(W.NAMES)
_PAST = tuple(p for _, p in W.INTRANSITIVE + W.TRANSITIVE)
_FRAME_WORDS = W.NOUNS + W.ADJECTIVES + W.ADVERBS + W.PREPOSITIONS + _PAST + W.FUNCTION + ("the", "a", "was", "and")
_TIMES = ("In the morning", "In the evening", "At night", "Last week", "Last year", "Every day", "One day",
          "That summer", "In winter", "Early on", "Later", "At noon")
_SEPARATORS = (". ", ", ", "; ", " ", "\n", " and ", " - ", ": ", " / ")


def _pick(rng: random.Random, options: dict[str, float]) -> str:
    names = list(options)
    return rng.choices(names, [options[n] for n in names])[0]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


# -------------------------------------------------------------------------------- sequences
def _members(rng: random.Random) -> list[str]:
    spec = get_task(_pick(rng, SEQ_WEIGHTS))
    for n in (rng.randint(3, 9), 3):
        starts = spec.starts(n - 1)
        if starts:
            return spec.members_from(rng.choice(starts), n)
    raise AssertionError("every task has three consecutive members")


def _frame(rng: random.Random) -> tuple[list[str], list[str]]:
    """Words before and after the member slot: half grammar-like, half random words."""
    if rng.random() < 0.5:
        verb, prep, noun = rng.choice(_PAST), rng.choice(W.PREPOSITIONS), rng.choice(W.NOUNS)
        shapes = ([verb, prep], [verb], ["the", noun, verb, prep], [prep], [noun, verb, prep],
                  ["was", rng.choice(W.ADJECTIVES), prep], [verb, "the", noun, prep])
        before = list(rng.choice(shapes))
        after = rng.choice([[], [], [noun + "s"], [rng.choice(W.ADVERBS)], [prep, "the", noun]])
        return before, after
    return ([rng.choice(_FRAME_WORDS) for _ in range(rng.randint(0, 3))],
            [rng.choice(_FRAME_WORDS) for _ in range(rng.randint(0, 3))])


def _clauses(rng: random.Random, members: list[str]) -> str:
    before, after = _frame(rng)
    heads = rng.choice(["none", "fixed", "varying", "names"])
    fixed = rng.choice(W.NOUNS).capitalize()
    sep = rng.choice(_SEPARATORS)
    parts = []
    for m in members:
        head = {"none": [], "fixed": [fixed], "varying": [rng.choice(W.NOUNS).capitalize()],
                "names": [rng.choice(W.NAMES)]}[heads]
        clause = " ".join(head + before + [m] + after)
        parts.append(_cap(clause) if sep in (". ", "\n") else clause)
    return sep.join(parts) + rng.choice([".", ".", "", "!"])


def _sequence(rng: random.Random) -> str:
    members = _members(rng)
    kind = rng.randrange(12)
    if kind < 5:
        text = _clauses(rng, members)
    elif kind == 5:
        text = " ".join(members)
    elif kind == 6:
        text = ", ".join(members[:-1]) + rng.choice([" and ", ", ", ", and "]) + members[-1] + "."
    elif kind == 7:
        text = "\n".join(f"{rng.choice(['-', '*', '+', '>'])} {m}" for m in members)
    elif kind == 8:
        name, verb = rng.choice(W.NAMES), rng.choice(["counted", "said", "wrote", "read", "listed", "sang"])
        text = f"{name} {verb} " + rng.choice([" ", ", ", " then "]).join(members) + "."
    elif kind == 9:
        text = f"From {members[0]} to {members[-1]}: " + " ".join(members) + "."
    elif kind == 10:  # a calendar: a day and a date advance together
        day, date = get_task("days"), rng.randint(1, 20)
        start = rng.randrange(7)
        month = rng.choice(ORDINALS["months"])
        text = ", ".join(f"{day.sequence[(start + i) % 7]} {date + i} {month}" for i in range(rng.randint(3, 8)))
    else:
        text = " then ".join(members) + "."
    return _cap(_prose_sentence(rng)) + " " + text if rng.random() < 0.3 else text


# ------------------------------------------------------------------------------------ stories
def _story(rng: random.Random) -> str:
    a, b = rng.sample(W.NAMES, 2)
    place, obj = rng.choice(W.PLACES), rng.choice(W.OBJECTS)
    first, second = (a, b) if rng.random() < 0.5 else (b, a)
    parts = [rng.choice(W.INTROS).format(A=first, B=second, P=place)]
    for _ in range(rng.randint(0, 2)):
        who = rng.choice([a, b, "They", "The " + place])
        parts.append(rng.choice([f"{who} was {rng.choice(W.ADJECTIVES)}.",
                                 f"{who} {rng.choice(_PAST)} {rng.choice(W.ADVERBS)}.",
                                 f"It was a {rng.choice(W.ADJECTIVES)} day.",
                                 f"{who} looked at the {obj}.", f"They talked about the {rng.choice(W.NOUNS)}."]))
    for turn in range(rng.choice([1, 1, 1, 2])):
        s = rng.choice([a, b])
        io = b if s == a else a
        phrase = rng.choice(W.TRANSFER).format(O=rng.choice(W.OBJECTS))
        tail = "" if " " in phrase or phrase in ("thanked", "called", "helped", "visited", "followed") else \
            rng.choice([f" the {obj}", " a story", " everything", f" about the {place}"])
        connector = rng.choice(W.CONNECTORS) + " " if rng.random() < 0.6 else ""
        parts.append(f"{connector}{s} {phrase} {io}{tail}.")
    if rng.random() < 0.3:
        parts.append(rng.choice([f"{io} thanked {s}.", f"{io} smiled.", f"{io} was {rng.choice(W.ADJECTIVES)}."]))
    return " ".join(parts)


# -------------------------------------------------------------------------------------- years
def _year_pair(rng: random.Random) -> tuple[int, int]:
    start = rng.randint(1000, 2050)
    yy = start % 100
    if yy < 99 and rng.random() < 0.85:
        return start, start - yy + rng.randint(yy + 1, 99)
    return start, start - yy + 100 + rng.randint(0, 99)


def _years(rng: random.Random) -> str:
    kind = rng.randrange(5)
    if kind <= 2:
        out = []
        for _ in range(rng.randint(1, 3)):
            y1, y2 = _year_pair(rng)
            frame = rng.choice(W.YEAR_FRAMES).format(Y1=y1, Y2=y2)
            out.append(f"The {rng.choice(W.ADJECTIVES)} {rng.choice(W.YEAR_SUBJECTS)} {frame}."
                       if rng.random() < 0.5 else f"The {rng.choice(W.YEAR_SUBJECTS)} {frame}.")
        return " ".join(out)
    years = sorted(rng.sample(range(1000, 2060), rng.randint(3, 6)))
    if kind == 3:
        return " ".join(f"In {y} the {rng.choice(W.YEAR_SUBJECTS)} {rng.choice(_PAST)}." for y in years)
    step = rng.choice([1, 2, 5, 10, 25])
    start = rng.randint(1000, 2000)
    return f"The {rng.choice(W.YEAR_SUBJECTS)} records: " + ", ".join(str(start + step * i) for i in range(rng.randint(3, 7))) + "."


# -------------------------------------------------------------------------------------- prose
def _noun_phrase(rng: random.Random) -> str:
    kind = rng.randrange(6)
    if kind == 0:
        return rng.choice(W.NAMES)
    if kind == 1:
        return f"the {rng.choice(W.ADJECTIVES)} {rng.choice(W.NOUNS)}"
    if kind == 2:
        return f"the {rng.choice(W.NOUNS)} of the {rng.choice(W.NOUNS)}"
    return f"{rng.choice(['the', 'a', 'the', 'her', 'his', 'their'])} {rng.choice(W.NOUNS)}"


def _clause(rng: random.Random) -> str:
    subject = rng.choice([_noun_phrase(rng), rng.choice(["he", "she", "they", "we"])])
    kind = rng.randrange(5)
    if kind == 0:
        verb = f"{rng.choice(W.INTRANSITIVE)[1]} {rng.choice(W.ADVERBS)}"
    elif kind == 1:
        verb = f"{rng.choice(W.TRANSITIVE)[1]} {_noun_phrase(rng)}"
    elif kind == 2:
        verb = f"{rng.choice(W.TRANSITIVE)[1]} {_noun_phrase(rng)} {rng.choice(W.PREPOSITIONS)} the {rng.choice(W.NOUNS)}"
    elif kind == 3:
        verb = f"{rng.choice(['was', 'seemed', 'felt'])} {rng.choice(W.ADJECTIVES)}"
    else:
        verb = f"wanted to {rng.choice(W.TRANSITIVE)[0]} {_noun_phrase(rng)}"
    return f"{subject} {verb}"


def _listing(rng: random.Random) -> str:
    items = rng.sample(W.OBJECTS, 3)
    return f"{rng.choice(W.NAMES)} {rng.choice(W.TRANSITIVE)[1]} a {items[0]}, a {items[1]} and a {items[2]}."


def _counting(rng: random.Random) -> str:
    count = rng.randint(2, 12)
    return f"{rng.choice(W.NAMES)} had {count} {rng.choice(W.NOUNS)}s and {rng.choice(W.FUNCTION[:8])} {_clause(rng)}."


def _plain(rng: random.Random) -> str:
    return f"{_cap(_clause(rng))}."


# Sentence shapes of the prose grammar, drawn uniformly.
_SENTENCES = (
    lambda rng: f"{_cap(_clause(rng))}, and {_clause(rng)}.",
    lambda rng: f"{rng.choice(['When', 'Because', 'If', 'Although', 'Before', 'After'])} {_clause(rng)}, {_clause(rng)}.",
    lambda rng: f"{_cap(_clause(rng))} because {_clause(rng)}.",
    lambda rng: f'"{_cap(_clause(rng))}," said {rng.choice(W.NAMES)}.',
    lambda rng: f"Did {_noun_phrase(rng)} {rng.choice(W.TRANSITIVE)[0]} {_noun_phrase(rng)}?",
    _listing, _plain, _plain,
    lambda rng: f"There {rng.choice(['was', 'is'])} {_noun_phrase(rng)} {rng.choice(W.PREPOSITIONS)} the {rng.choice(W.NOUNS)}.",
    lambda rng: f"{_cap(_noun_phrase(rng))} who {rng.choice(W.TRANSITIVE)[1]} {_noun_phrase(rng)} "
                f"{rng.choice(W.INTRANSITIVE)[1]}.",
    lambda rng: f"{rng.choice(_TIMES)}, {_clause(rng)} {rng.choice(W.FUNCTION[-14:])}.",
    _counting,
    lambda rng: f"{rng.choice(W.FUNCTION[:8]).capitalize()} did {_noun_phrase(rng)} {rng.choice(W.TRANSITIVE)[0]} "
                f"{_noun_phrase(rng)}?",
)


def _prose_sentence(rng: random.Random) -> str:
    return _SENTENCES[rng.randrange(len(_SENTENCES))](rng)


def _prose(rng: random.Random) -> str:
    return " ".join(_prose_sentence(rng) for _ in range(rng.randint(2, 6)))


# ------------------------------------------------------------------------------------- repeats
def _random_string(rng: random.Random) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(rng.randint(2, 5)))


def _repeat(rng: random.Random) -> str:
    k = rng.randint(3, 12)
    pool = rng.choice(["words", "strings", "mixed"])
    items = [rng.choice(_FRAME_WORDS + W.NAMES) if pool == "words" or (pool == "mixed" and rng.random() < 0.5)
             else _random_string(rng) for _ in range(k)]
    span = " ".join(items)
    label = rng.choice(["Code", "Password", "Note", "List", "Say", "Copy", "Key"])
    middle = " " + _prose_sentence(rng) + " " if rng.random() < 0.4 else " "
    copies = [f"{rng.choice(['Again', 'Once more', 'Repeat', label])}: {span}." for _ in range(rng.randint(1, 2))]
    return f"{label}: {span}.{middle}" + " ".join(copies)


_MAKERS = {"sequence": _sequence, "story": _story, "ioi": ioi_document, "years": _years, "prose": _prose,
           "repeat": _repeat}


def document(rng: random.Random, mix: dict[str, float] = DEFAULT_MIX) -> str:
    """One generated document of a kind drawn from ``mix``; never one containing a held-out phrase."""
    while True:
        text = _MAKERS[_pick(rng, mix)](rng)
        if not contains_heldout(text, _HELDOUT):
            return text


# --------------------------------------------------------------------------- tokens and tokenizer
def _leading_space(rng: random.Random, text: str) -> str:
    """``text`` after a space when it starts with a name (so every mention of a name is the same
    spaced token, as in mid-sentence), otherwise half the time (both forms of a first word occur)."""
    first = text.split(" ", 1)[0].rstrip(",.")
    return " " + text if first in _NAME_SET or rng.random() < 0.5 else text


def step_documents(tokenizer: Any, step: int, n_tokens: int, seed: int = 0,
                   mix: dict[str, float] = DEFAULT_MIX) -> tuple[list[str], np.ndarray]:
    """The documents of training step ``step`` and their tokens (BOS before each), at least ``n_tokens``."""
    rng = random.Random(f"suite-data-{seed}-{step}")
    raw, bos = tokenizer.backend_tokenizer, tokenizer.bos_token_id
    docs, ids = [], []
    while len(ids) < n_tokens:
        docs.append(_leading_space(rng, document(rng, mix)))
        ids.append(bos)
        ids.extend(raw.encode(docs[-1], add_special_tokens=False).ids)
    return docs, np.asarray(ids, dtype=np.int64)


@lru_cache(maxsize=4)
def word_tokens(tokenizer: Any) -> np.ndarray:
    """Ids of the tokens that are letters or digits (with or without a leading space): the pool of
    the repeated random rows, so that no punctuation of a held-out form can arise there."""
    words = [i for i in range(len(tokenizer)) if tokenizer.decode([i]).strip().isalnum()]
    return np.asarray(words, dtype=np.int64)


def repeated_rows(step: int, rows: int, seed: int = 0, share: float = 0.0) -> list[int]:
    """Which rows of step ``step`` hold repeated random tokens instead of text (a share ``share``)."""
    rng = random.Random(f"suite-repeats-{seed}-{step}")
    return [r for r in range(rows) if rng.random() < share]


def step_batch(tokenizer: Any, step: int, rows: int, n_ctx: int, seed: int = 0,
               mix: dict[str, float] = DEFAULT_MIX, random_share: float = 0.0) -> torch.Tensor:
    """The ``[rows, n_ctx]`` token batch of ``step``: its documents packed back to back, except the rows
    of :func:`repeated_rows`, which are BOS and a span of 8 to 48 random word tokens (:func:`word_tokens`)
    repeated to the end of the row (copying pays off there and nowhere else: induction)."""
    repeated = repeated_rows(step, rows, seed, random_share)
    n_text = rows - len(repeated)
    _, ids = step_documents(tokenizer, step, n_text * n_ctx, seed, mix)
    text = iter(ids[:n_text * n_ctx].reshape(n_text, n_ctx))
    rng = np.random.default_rng([seed, step, 7])
    out = np.empty((rows, n_ctx), dtype=np.int64)
    for row in range(rows):
        if row in repeated:
            pool = word_tokens(tokenizer)
            while True:  # a random span may spell a held-out phrase (or one across its repeat): draw again
                span = pool[rng.integers(0, len(pool), size=int(rng.integers(8, 49)))]
                if not contains_heldout(tokenizer.decode(np.tile(span, 3)), _HELDOUT):
                    break
            out[row] = np.concatenate([[tokenizer.bos_token_id], np.tile(span, n_ctx // len(span) + 1)])[:n_ctx]
        else:
            out[row] = next(text)
    return torch.from_numpy(out)


def required_tokens() -> list[str]:
    """Strings the tokenizer must keep whole: spaced members, names, places, objects; digit pairs."""
    words = [w for seq in ORDINALS.values() for w in seq] + list(W.NAMES + W.PLACES + W.OBJECTS)
    return [" " + w for w in dict.fromkeys(words)] + [f"{i:02d}" for i in range(100)]


def _training_text(n_docs: int, seed: int) -> list[str]:
    rng = random.Random(f"suite-tokenizer-{seed}")
    glossary = " ".join(w.strip() for w in required_tokens()[:-100])
    years = " ".join(str(y) for y in range(1000, 2100))
    return [document(rng) for _ in range(n_docs)] + [glossary] * 300 + [years] * 20


@lru_cache(maxsize=4)
def suite_tokenizer(vocab_size: int = 2048, n_docs: int = 30_000, seed: int = 0) -> Any:
    """The suite's cached ``PreTrainedTokenizerFast`` (``<|endoftext|>`` is BOS, EOS and padding)."""
    key = dict(kind="suite-bpe", vocab_size=vocab_size, n_docs=n_docs, seed=seed, mix=DEFAULT_MIX, version=2)

    def build(tmp: Path) -> None:
        from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

        byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
        pairs = pre_tokenizers.Split(Regex(r" ?100(?![0-9])| ?[0-9]{1,2}"), behavior="isolated")
        bpe = Tokenizer(models.BPE())
        bpe.pre_tokenizer, bpe.decoder = pre_tokenizers.Sequence([pairs, byte_level]), decoders.ByteLevel()
        bpe.train_from_iterator(_training_text(n_docs, seed), trainer=trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=[SPECIAL], show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        bpe.save(str(tmp / "tokenizer.json"))

    folder = cached_dir("tokenizers", "suite-bpe", key, build)
    tokenizer = _wrap(folder / "tokenizer.json")
    split = [w for w in required_tokens() if len(tokenizer(w, add_special_tokens=False)["input_ids"]) != 1]
    if split:
        raise ParameterError(f"The suite tokenizer splits {len(split)} required strings (e.g. {split[0]!r}); "
                             f"raise vocab_size.")
    return tokenizer


def _wrap(path: Path) -> Any:
    from transformers import PreTrainedTokenizerFast

    specials = dict(bos_token=SPECIAL, eos_token=SPECIAL, pad_token=SPECIAL)
    return PreTrainedTokenizerFast(tokenizer_file=str(path), add_bos_token=True, name_or_path=str(path.parent),
                                   **specials)


__all__ = ["DEFAULT_MIX", "KINDS", "SEQ_WEIGHTS", "SPECIAL", "document", "repeated_rows", "required_tokens",
           "step_batch", "step_documents", "suite_tokenizer", "word_tokens"]
