"""Training text for the sequence language model: generated passages full of ordered sequences.

Each passage strings together a few sequences (any task family, 3–8 members, random start) in
formats that differ from the evaluation templates of :mod:`shared.tasks`: comma lists, "then"
chains, clauses with *other* verbs and nouns ("Tom paid on 4; Ana paid on 5; ..."), labelled
rows. The evaluation verb ``"done in"``, its filler nouns and the bare evaluation prompt never
appear, so accuracy on them measures generalisation rather than memorised strings.
"""
from __future__ import annotations

import random

from .tasks import DEFAULT_FILLERS, DEFAULT_VERB, TASK_SPECS

NAMES = ("Tom", "Ana", "Bob", "Eve", "Max", "Lia", "Sam", "Ivy", "Leo", "Mia", "Ned", "Zoe", "Kai",
         "Ada", "Ray", "Uma", "Jon", "Pia", "Gus", "Ida")
NOUNS = ("cat", "car", "cake", "coat", "dog", "song", "game", "plan", "rock", "ship", "shoe", "key",
         "leaf", "map", "pen", "rope", "seed", "wall", "wind", "yard")
VERBS = ("paid on", "came on", "left at", "won in", "seen on", "made in", "sat at", "ran in",
         "met on", "sold in", "woke at", "fell on", "went in", "read at", "was in", "is at")
LABELS = ("Count", "List", "Order", "Row", "Series", "Steps", "Items", "Line", "Next", "Keys")
assert DEFAULT_VERB not in VERBS and not set(NAMES) & set(DEFAULT_FILLERS)


def _sequence(rng: random.Random, min_len: int = 3, max_len: int = 8) -> list[str]:
    spec = TASK_SPECS[rng.choice(list(TASK_SPECS))]
    for _ in range(20):
        n = rng.randint(min_len, max_len)
        starts = spec.starts(n - 1)
        if starts:
            return spec.members_from(rng.choice(starts), n)
    return spec.members_from(spec.starts(min_len - 1)[0], min_len)


def _format(rng: random.Random, seq: list[str]) -> str:
    kind = rng.randrange(6)
    if kind == 0:
        return f"{rng.choice(LABELS)}: " + ", ".join(seq) + "."
    if kind == 1:
        return "It was " + ", then ".join(seq) + "."
    if kind == 2:
        verb, sep = rng.choice(VERBS), rng.choice(["; ", ". ", ", "])
        names = rng.sample(NAMES, len(seq))
        return sep.join(f"{n} {verb} {m}" for n, m in zip(names, seq)) + "."
    if kind == 3:
        verb = rng.choice(VERBS)
        nouns = [rng.choice(NOUNS) for _ in seq]
        return "The " + " and the ".join(f"{n} {verb} {m}" for n, m in zip(nouns, seq)) + "."
    if kind == 4:
        return f"{rng.choice(LABELS)} " + " ".join(seq) + " end."
    return "From " + seq[0] + " to " + seq[-1] + ": " + " ".join(seq) + "."


def passage(rng: random.Random, sentences: tuple[int, int] = (2, 5)) -> str:
    """A few sentences, each showing one generated sequence in a training format."""
    return " ".join(_format(rng, _sequence(rng)) for _ in range(rng.randint(*sentences)))


def passages(count: int, seed: int = 0) -> list[str]:
    """``count`` seeded passages."""
    rng = random.Random(f"seq-corpus-{seed}")
    return [passage(rng) for _ in range(count)]
