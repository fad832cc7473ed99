"""Evaluation forms held out from the local model suite's training text, written before any training.

Three families of prompts, each a fixed surface form the suite never reads while it trains:

* **sequence forms** (``SEQ_FORMS``): a frame repeated around consecutive members of an ordered
  sequence (numerals, number words, months, days, letters); the prompt stops where the next member
  goes. Every form puts other words, punctuation or line breaks between the members.
* **IOI templates** (``IOI_TEMPLATES``): two people are introduced, one of them (the subject) acts
  again, and the prompt stops where the other one (the indirect object) is named.
* **greater-than templates** (``GT_TEMPLATES``): a span of years ``XXYY ... XX`` stops before the
  two digits of the end year, which must be larger than ``YY``.

Each form names its ``distinctive`` phrases: word sequences that occur in its prompts and that the
training generator (:mod:`shared.zoo.text.suite_corpus`) must never produce. :func:`find_heldout`
scans any text for them; the book's own ``among_words`` template is held out the same way (its verb).
Names, places, objects and nouns filled into the templates are ordinary words the corpus also uses:
what is held out is the form, not the vocabulary. The prompts themselves are drawn, rendered and
tokenized by :mod:`shared.tasks.ioi` and :mod:`shared.tasks.greater_than`.
"""
from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from shared.errors import ParameterError
from shared.tasks.sequences import DEFAULT_VERB, SeqPrompt, get_task

# The five sequence tasks the suite is measured on (the book's other tasks are variants of numerals).
SEQ_TASKS = ("numerals", "number_words", "months", "days", "letters")
# Slot fillers of the IOI and greater-than templates (single tokens for the suite's tokenizer).
IOI_NAMES = ("Mary", "John", "Anna", "Paul", "Sarah", "David", "Laura", "Peter", "Emma", "James", "Julia",
             "Mark", "Alice", "Henry", "Grace", "Simon", "Helen", "Frank", "Clara", "Oscar", "Rose", "Victor",
             "Nina", "Hugo", "Lucy", "Adam", "Kate", "Ben", "Jane", "Carl", "Ruth", "Dan")
IOI_PLACES = ("market", "station", "library", "garden", "harbor", "bakery", "museum", "school", "river",
              "kitchen", "hospital", "theater", "farm", "office", "beach", "church")
IOI_OBJECTS = ("book", "letter", "ring", "basket", "key", "hat", "apple", "coin", "map", "lamp", "cup",
               "ticket", "box", "pen", "shirt", "ball")
GT_NOUNS = ("war", "drought", "strike", "famine", "siege", "reign", "voyage", "feud", "plague", "boom",
            "exile", "survey", "trial", "revolt", "blockade", "crusade")


# ------------------------------------------------------------------------------- sequence forms
@dataclass(frozen=True)
class SeqForm:
    """``first + " m1" + between + " m2" + ... + between`` then the answer ``" m_next"``."""

    name: str
    first: str
    between: str
    distinctive: tuple[str, ...]

    def render(self, task: str, members: Sequence[str], answer: str) -> SeqPrompt:
        text, spans = self.first, []
        for i, m in enumerate(members):
            text += " "
            spans.append((len(text), len(text) + len(m)))
            text += m + self.between
        return SeqPrompt(task, self.name, tuple(members), answer, members[-1], verb="", text=text,
                         member_spans=tuple(spans))


SEQ_FORMS: dict[str, SeqForm] = {f.name: f for f in (
    SeqForm("shelf", " On shelf", " sat a jar of honey. On shelf", ("sat a jar of honey", "on shelf")),
    SeqForm("diary", " She wrote in her diary on", ", and again on", ("wrote in her diary", "and again on")),
    SeqForm("platform", " The night train stopped at platform", ", then at platform",
            ("night train stopped", "at platform")),
    SeqForm("ticket", " Ticket", " was punched. Ticket", ("was punched",)),
    SeqForm("chapter", " Chapter", " ends with a storm; chapter", ("ends with a storm",)),
    SeqForm("arrow", "", " =>", ("=>",)),
    SeqForm("bullets", "\n* item", "\n* item", ("* item",)),
    SeqForm("voting", " In round", " the votes were counted twice. In round", ("votes were counted twice",)),
    SeqForm("relay", " Runner", ", who passed the baton to runner", ("passed the baton", "baton to runner")),
)}
# The book's own templates (shared.tasks.sequences): "bare" is a plain list of members, which no
# corpus of sequences can avoid; "among_words" is held out through its verb.
BOOK_TEMPLATES = ("bare", "among_words")
BOOK_DISTINCTIVE = {"among_words": (DEFAULT_VERB,)}


def seq_form_prompts(form: str, task: str, n_members: int = 4, n_prompts: int = 40,
                     seed: int = 0) -> list[SeqPrompt]:
    """Up to ``n_prompts`` prompts of ``form`` on ``task``, one per start (seeded choice of starts)."""
    if form not in SEQ_FORMS:
        raise ParameterError(f"Unknown sequence form {form!r}; choose one of {', '.join(SEQ_FORMS)}.")
    spec = get_task(task)
    starts = spec.starts(n_members)
    random.Random(f"{seed}-{form}-{task}").shuffle(starts)
    out = []
    for start in starts[:n_prompts]:
        seq = spec.members_from(start, n_members + 1)
        out.append(SEQ_FORMS[form].render(task, seq[:-1], seq[-1]))
    return out


# -------------------------------------------------------------------------------- IOI templates
@dataclass(frozen=True)
class IOITemplate:
    """``text`` with ``{N1} {N2}`` (the two names in order of mention), ``{S}`` (the subject who is
    named again), ``{PLACE}`` and ``{OBJECT}``; the prompt ends where the indirect object goes."""

    name: str
    text: str
    distinctive: tuple[str, ...]


# name | template | its distinctive phrases, separated by ";"
_IOI_TABLE = """
cleaning | While {N1} and {N2} were cleaning up the {PLACE}, {S} quietly slipped a {OBJECT} to
         | were cleaning up; quietly slipped; slipped a
afternoon | Yesterday {N1} and {N2} spent the whole afternoon at the {PLACE}. Later that evening, {S} mailed a {OBJECT} to
          | spent the whole afternoon; later that evening; mailed a
argued | After {N1} and {N2} argued about the {PLACE} for an hour, {S} finally offered a {OBJECT} to
       | argued about the; for an hour; finally offered; offered a
late | That day {N1} and {N2} were both late for the meeting at the {PLACE}, so {S} lent a {OBJECT} to
     | were both late; late for the meeting; lent a
rainy | On a rainy morning {N1} and {N2} set off for the {PLACE}. Halfway there, {S} handed over the {OBJECT} to
      | rainy morning; set off for; halfway there; handed over
desk | Because {N1} and {N2} shared a desk at the {PLACE}, {S} often left a {OBJECT} for
     | shared a desk; often left a; left a
lunch | Once {N1} had lunch with {N2} near the {PLACE}, and afterwards {S} wrote a long letter to
      | had lunch with; and afterwards; wrote a long letter
closed | When the {PLACE} finally closed, {N1} and {N2} walked home together, and {S} whispered a secret to
       | finally closed; walked home together; whispered a secret
table | At the {PLACE}, {N1} sat next to {N2}. After a while, {S} passed a {OBJECT} under the table to
      | sat next to; after a while; under the table; passed a
found | One summer {N1} and {N2} found an old {OBJECT} behind the {PLACE}, and {S} proudly showed it to
      | found an old; proudly showed; showed it to
queue | Last week {N1} stood behind {N2} in the long queue at the {PLACE}. Eventually {S} gave up and sold the {OBJECT} to
      | stood behind; long queue; gave up and; sold the
"""


def _table(text: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """Rows ``(name, template, phrases)`` of a table of two lines a row (see ``_IOI_TABLE``)."""
    lines = text.strip("\n").splitlines()
    rows = []
    for head, tail in zip(lines[::2], lines[1::2]):
        name, template = (cell.strip() for cell in head.split("|", 1))
        rows.append((name, template, tuple(p.strip() for p in tail.split("|", 1)[1].split(";"))))
    return rows


IOI_TEMPLATES: dict[str, IOITemplate] = {name: IOITemplate(name, text, phrases)
                                         for name, text, phrases in _table(_IOI_TABLE)}


# ------------------------------------------------------------------------- greater-than templates
@dataclass(frozen=True)
class GTTemplate:
    """``text`` with ``{NOUN}``, ``{START}`` (a four-digit year) and ``{CENTURY}`` (its first two digits,
    where the prompt ends: the next token is the end year's last two digits)."""

    name: str
    text: str
    distinctive: tuple[str, ...]


_GT_TABLE = """
dragged | The {NOUN} dragged on from the year {START} until the year {CENTURY}
        | dragged on from; until the year
finished | Work on the {NOUN} started in {START} and was not finished before {CENTURY}
         | was not finished before
unbroken | The {NOUN} ran without a break between {START} and {CENTURY}
         | ran without a break; without a break
records | Records of the {NOUN} cover every season from {START} through {CENTURY}
        | cover every season; every season from
talk | Talk of the {NOUN} never stopped from {START} right up to {CENTURY}
     | never stopped from; right up to
ledger | Each page of the {NOUN} ledger is dated, the first {START} and the last {CENTURY}
       | ledger is dated; page of the
"""
GT_TEMPLATES: dict[str, GTTemplate] = {name: GTTemplate(name, text, phrases)
                                       for name, text, phrases in _table(_GT_TABLE)}


def fill_template(text: str, values: dict[str, str], what: str) -> tuple[str, dict[str, tuple[int, int]]]:
    """``text`` with each ``{SLOT}`` replaced by ``values[SLOT]``, and the character span of each slot
    as filled (a slot used twice keeps its last span); an unknown slot is one sentence naming ``what``."""
    out, spans = "", {}
    for literal, field, _, _ in string.Formatter().parse(text):
        out += literal
        if field is None:
            continue
        if field not in values:
            raise ParameterError(f"{what} has an unknown slot {{{field}}}.")
        spans[field] = (len(out), len(out) + len(values[field]))
        out += values[field]
    return out, spans


# ------------------------------------------------------------------------------- held-out scan
def normalise(text: str) -> str:
    """Lower case with every run of whitespace made one space (how texts are compared for the scan)."""
    return re.sub(r"\s+", " ", text.lower())


def distinctive_phrases() -> dict[str, str]:
    """Every held-out phrase (normalised) and the form that owns it, e.g. ``{"was punched": "seq/ticket"}``."""
    out: dict[str, str] = {}
    groups = [("seq", SEQ_FORMS), ("ioi", IOI_TEMPLATES), ("gt", GT_TEMPLATES)]
    for family, forms in groups:
        for name, form in forms.items():
            for phrase in form.distinctive:
                out[normalise(phrase)] = f"{family}/{name}"
    for name, phrases in BOOK_DISTINCTIVE.items():
        for phrase in phrases:
            out[normalise(phrase)] = f"book/{name}"
    return out


def _pattern(phrases: Iterable[str]) -> "re.Pattern[str]":
    """One regex matching any of ``phrases`` as whole words (no letter or digit just before or after)."""
    alternatives = "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True))
    return re.compile(rf"(?<![a-z0-9])(?:{alternatives})(?![a-z0-9])")


def find_heldout(texts: Iterable[str]) -> list[tuple[str, str, str]]:
    """``(phrase, owner, excerpt)`` for every held-out phrase found in ``texts`` as whole words (first hit
    per phrase and text): "passed a" is found in "she passed a cup", not in "he passed angry"."""
    phrases = distinctive_phrases()
    hits = []
    for text in texts:
        low = normalise(text)
        for phrase, owner in phrases.items():
            match = _pattern([phrase]).search(low)
            if match:
                at = match.start()
                hits.append((phrase, owner, low[max(0, at - 40):at + len(phrase) + 40]))
    return hits


def contains_heldout(text: str, phrases: Sequence[str]) -> bool:
    """Whether normalised ``text`` contains any of the (normalised) ``phrases`` as whole words: the
    generator's filter, the same test as :func:`find_heldout`."""
    return bool(phrases) and _pattern(phrases).search(normalise(text)) is not None


__all__ = [
    "BOOK_DISTINCTIVE", "BOOK_TEMPLATES", "GTTemplate", "GT_NOUNS", "GT_TEMPLATES", "IOITemplate", "IOI_NAMES",
    "IOI_OBJECTS", "IOI_PLACES", "IOI_TEMPLATES", "SEQ_FORMS", "SEQ_TASKS", "SeqForm", "contains_heldout",
    "distinctive_phrases", "fill_template", "find_heldout", "normalise", "seq_form_prompts",
]
