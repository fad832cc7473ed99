"""Dense indirect-object stories for the suite's corpus (document kind ``ioi``).

Each document is one to three short scenes. A scene introduces two people, each named once (in either
order, in one of many sentence shapes), may add sentences that name neither of them, and ends with one
of them (the subject, first or second named with equal chance) doing something to or for the other,
who is named last: ``"While Ana and Tom were at the park, Tom gave the old key to"`` -> ``" Ana"``.
Predicting that last name requires what IOI requires: copy a name from the context, but not the one
that was just repeated. A third of the scenes go on with a second event between the same two people
(the roles may swap), where the answer is again "the other person".

The verbs that end the held-out IOI templates (:mod:`shared.tasks.heldout`) are not used, and
documents with any held-out phrase are dropped by the caller (:func:`shared.zoo.text.suite_corpus.document`).
"""
from __future__ import annotations

import random

from shared.zoo.text import suite_words as W

_PAIR_PLURAL = ("went to the {P}", "were at the {P}", "met at the {P}", "spent the day at the {P}",
                "walked to the {P}", "cleaned the {P}", "played near the {P}", "waited at the {P}",
                "were working at the {P}", "got lost near the {P}", "arrived at the {P}", "were talking at the {P}",
                "sat in the {P}", "had dinner at the {P}", "came back from the {P}", "ran to the {P}",
                "were painting the {P}", "looked around the {P}", "stayed at the {P}", "were studying at the {P}")
_PAIR_TWO = ("{A} met {B} at the {P}", "{A} visited {B} at the {P}", "{A} saw {B} near the {P}",
             "{A} was at the {P} with {B}", "{A} sat beside {B} in the {P}", "{A} walked with {B} to the {P}",
             "{A} found {B} at the {P}", "{A} waited for {B} at the {P}", "{A} followed {B} into the {P}",
             "{A} joined {B} at the {P}", "{A} called {B} from the {P}", "{A} played with {B} in the {P}",
             "{A} went to the {P} with {B}", "{A} worked with {B} at the {P}")
_OPENERS = ("", "", "", "One day, ", "Yesterday ", "In the morning ", "Last week ", "After lunch, ", "On Monday ",
            "Early that day ", "That winter ", "Once ", "At dawn ", "Today ", "Some time ago ")
_SUBORDINATORS = ("When", "While", "After", "Because", "Since", "As", "Before", "Once", "Just after", "As soon as")
_FILLERS = ("It was a {ADJ} day.", "The {P} was {ADJ}.", "They talked about the {N}.", "They {PAST} {ADV}.",
            "There was a {O} on the shelf.", "The weather was {ADJ}.", "Nobody else was there.",
            "They were both {ADJ}.", "The {N} was {ADJ} and {ADJ}.", "It took a long time.",
            "They looked at the {O}.", "Everyone was {ADJ}.", "The {P} smelled of {N}.", "They laughed.")
_CONNECTORS = W.CONNECTORS + ("So", "Then", "Suddenly,", "Without a word,", "Smiling,", "At last,", "Later on,")
# "{S} <phrase> {IO}": the recipient right after the phrase ({O}: an object with its article)
_TO = ("gave {O} to", "brought {O} to", "sent {O} to", "threw {O} to", "returned {O} to", "delivered {O} to",
       "carried {O} to", "took {O} to", "kicked {O} to", "tossed {O} to", "gave back {O} to", "read a story to",
       "sang a song to", "told a joke to", "explained the plan to", "said goodbye to", "spoke to", "waved to",
       "talked to", "introduced {O} to", "sent a message to", "described {O} to", "threw {O} at", "smiled at",
       "pointed at", "shouted at", "bought {O} for", "made {O} for", "fetched {O} for", "baked a cake for",
       "cooked dinner for", "opened the door for", "found {O} for", "kept {O} for", "saved a seat for",
       "picked {O} for", "carried {O} for", "waited for", "looked for", "asked about", "cared for")
_BARE = ("gave", "brought", "sent", "told", "asked", "thanked", "called", "helped", "visited", "followed",
         "hugged", "greeted", "watched", "thanked", "paid", "warned", "taught", "answered", "invited", "praised")
_DOUBLE = ("gave", "brought", "sent", "told", "asked", "paid", "taught")  # "S gave IO the key"


def _object(rng: random.Random) -> str:
    obj = rng.choice(W.OBJECTS)
    if rng.random() < 0.3:
        obj = f"{rng.choice(W.ADJECTIVES)} {obj}"
    article = rng.choice(["the", "a", "the", "his", "her", "their"])
    if article == "a" and obj[0] in "aeiou":
        article = "an"
    return f"{article} {obj}"


def _fill(text: str, rng: random.Random, place: str) -> str:
    return text.format(P=place, ADJ=rng.choice(W.ADJECTIVES), N=rng.choice(W.NOUNS), ADV=rng.choice(W.ADVERBS),
                       PAST=rng.choice(W.INTRANSITIVE)[1], O=rng.choice(W.OBJECTS))


def _intro_clause(rng: random.Random, first: str, second: str, place: str) -> str:
    if rng.random() < 0.55:
        return f"{first} and {second} " + rng.choice(_PAIR_PLURAL).format(P=place)
    return rng.choice(_PAIR_TWO).format(A=first, B=second, P=place)


def _event(rng: random.Random, s: str, io: str) -> str:
    """``"S <phrase> IO"`` with an optional adverb before the verb, and sometimes a tail after IO."""
    adverb = rng.choice(W.ADVERBS) + " " if rng.random() < 0.25 else ""
    if rng.random() < 0.2:
        verb = rng.choice(_BARE)
        tails = [f" {_object(rng)}", " a question", " the news", " everything"] if verb in _DOUBLE else [" again", ""]
        return f"{s} {adverb}{verb} {io}{rng.choice(tails)}"
    phrase = rng.choice(_TO).format(O=_object(rng))
    tail = rng.choice(["", "", "", " after a while", " at the door", " with a smile", " again"])
    return f"{s} {adverb}{phrase} {io}{tail}"


def _scene(rng: random.Random) -> str:
    a, b = rng.sample(W.NAMES, 2)
    place = rng.choice(W.PLACES)
    first, second = (a, b) if rng.random() < 0.5 else (b, a)
    s = rng.choice([a, b])
    io = b if s == a else a
    intro = _intro_clause(rng, first, second, place)
    fillers = [_fill(rng.choice(_FILLERS), rng, place) for _ in range(rng.choice([0, 0, 1, 1, 2]))]
    if rng.random() < 0.4 and not fillers:  # one sentence: "When A and B ..., S ... IO."
        text = f"{rng.choice(_SUBORDINATORS)} {intro}, {_event(rng, s, io)}."
    else:
        opener = rng.choice(_OPENERS)
        connector = rng.choice(_CONNECTORS) + " " if rng.random() < 0.5 else ""
        text = " ".join([f"{opener}{intro}."[:1].upper() + f"{opener}{intro}."[1:]] + fillers
                        + [f"{connector}{_event(rng, s, io)}."])
    if rng.random() < 0.33:
        s2 = rng.choice([s, io])
        text += " " + f"{rng.choice(_CONNECTORS)} {_event(rng, s2, io if s2 == s else s)}."
    return text


def ioi_document(rng: random.Random) -> str:
    """One to three scenes, each with its own two people."""
    return " ".join(_scene(rng) for _ in range(rng.choice([1, 2, 2, 3])))


__all__ = ["ioi_document"]
