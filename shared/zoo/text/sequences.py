"""Training text for the sequence language model: generated passages full of ordered sequences.

Each passage strings together a few sequences (any task family, 3–8 members, random start) in
formats that differ from the evaluation templates of :mod:`shared.tasks.sequences`: comma lists, "then"
chains, clauses headed by arbitrary words with *other* verbs ("Tom paid on 4; Kite paid on 5;
..."), "word: member" rows, labelled rows. The evaluation verb ``"done in"`` (indeed the word
"done") and the evaluation filler nouns never appear in these passages. That is not enough to
make accuracy on the evaluation template a measure of generalisation: the model trained on this
text (``seq-lm``) answers the among-words template because it ends like its commonest clause (a
one-token word, a verb with in/at/on/to, then the member), and fails most other surface forms of
the same tasks (measured in the ``sequence_data`` and ``seq_findings`` chapters). The book's
sequence chapters therefore run on the model suite (:mod:`shared.zoo.suite`), whose corpus holds
out whole surface forms.
"""
from __future__ import annotations

import random
from typing import Optional

from shared.tasks.sequences import DEFAULT_FILLERS, DEFAULT_VERB, TASK_SPECS

NAMES = ("Tom", "Ana", "Bob", "Eve", "Max", "Lia", "Sam", "Ivy", "Leo", "Mia", "Ned", "Zoe", "Kai",
         "Ada", "Ray", "Uma", "Jon", "Pia", "Gus", "Ida")
NOUNS = ("cat", "car", "cake", "coat", "dog", "song", "game", "plan", "rock", "ship", "shoe", "key",
         "leaf", "map", "pen", "rope", "seed", "wall", "wind", "yard")
# Many more words to head clauses, so the model learns to skip *any* word between members.
WORDS = ("Apple", "Arm", "Bag", "Ball", "Bank", "Bed", "Bike", "Bone", "Book", "Bowl", "Bread", "Brick",
         "Bus", "Cake", "Camp", "Card", "Cart", "Chair", "Chalk", "Cloud", "Coat", "Coin", "Corn", "Cow",
         "Crab", "Drum", "Duck", "Egg", "Farm", "Fence", "Field", "Flag", "Foot", "Fork", "Frog", "Gate",
         "Glass", "Goat", "Gold", "Grass", "Hand", "Hill", "Horn", "Horse", "House", "Ink", "Jar", "Kite",
         "Knife", "Lake", "Leaf", "Lion", "Lock", "Milk", "Moon", "Mouse", "Nail", "Nest", "Nose", "Oak",
         "Owl", "Page", "Park", "Pear", "Pig", "Pipe", "Plate", "Pond", "Rain", "Rice", "River", "Roof",
         "Rose", "Salt", "Sand", "Seal", "Shell", "Shirt", "Sink", "Snow", "Sock", "Soup", "Spoon", "Stone",
         "Table", "Tent", "Toy", "Train", "Truck", "Wall", "Well", "Wheel", "Whip", "Wolf", "Wood", "Yarn")
VERBS = ("paid on", "came on", "left at", "won in", "seen on", "made in", "sat at", "ran in",
         "met on", "sold in", "woke at", "fell on", "went in", "read at", "was in", "is at", "kept at",
         "found on", "put in", "set at", "fixed on", "lost in", "moved to", "sent on", "built in",
         "shown at", "held on", "used in", "got to", "came to", "packed in", "given at")
LABELS = ("Count", "List", "Order", "Row", "Series", "Steps", "Items", "Line", "Next", "Keys")
assert DEFAULT_VERB not in VERBS and not (set(NAMES) | set(WORDS)) & set(DEFAULT_FILLERS)
assert not any(v.startswith(DEFAULT_VERB.split()[0] + " ") for v in VERBS)


def _sequence(rng: random.Random, weights: dict[str, float], min_len: int = 3, max_len: int = 8) -> list[str]:
    names = list(TASK_SPECS)
    if weights:
        spec = TASK_SPECS[rng.choices(names, [weights.get(n, 1.0) for n in names])[0]]
    else:
        spec = TASK_SPECS[rng.choice(names)]
    for _ in range(20):
        n = rng.randint(min_len, max_len)
        starts = spec.starts(n - 1)
        if starts:
            return spec.members_from(rng.choice(starts), n)
    return spec.members_from(spec.starts(min_len - 1)[0], min_len)


def _heads(rng: random.Random, n: int) -> list[str]:
    pool = NAMES + WORDS if rng.random() < 0.5 else WORDS
    return [rng.choice(pool) for _ in range(n)]


def _format(rng: random.Random, seq: list[str]) -> str:
    kind = rng.randrange(10)
    if kind == 0:
        return f"{rng.choice(LABELS)}: " + ", ".join(seq) + "."
    if kind == 1:
        return "It was " + ", then ".join(seq) + "."
    if kind in (2, 3, 4, 5):  # clauses headed by arbitrary words: the most common shape
        verb, sep = rng.choice(VERBS), rng.choice(["; ", ". ", ", ", ". "])
        return sep.join(f"{w} {verb} {m}" for w, m in zip(_heads(rng, len(seq)), seq)) + "."
    if kind == 6:
        verb = rng.choice(VERBS)
        nouns = [rng.choice(NOUNS) for _ in seq]
        return "The " + " and the ".join(f"{n} {verb} {m}" for n, m in zip(nouns, seq)) + "."
    if kind == 7:
        return f"{rng.choice(LABELS)} " + " ".join(seq) + " end."
    if kind == 8:
        return ". ".join(f"{w}: {m}" for w, m in zip(_heads(rng, len(seq)), seq)) + "."
    return "From " + seq[0] + " to " + seq[-1] + ": " + " ".join(seq) + "."


def passage(rng: random.Random, sentences: tuple[int, int] = (2, 5),
            weights: Optional[dict[str, float]] = None) -> str:
    """A few sentences, each showing one generated sequence in a training format.

    ``weights`` ({task: weight}, default 1) skews which task families are drawn; ``None`` or ``{}``
    draws them uniformly.
    """
    return " ".join(_format(rng, _sequence(rng, weights or {})) for _ in range(rng.randint(*sentences)))


def passages(count: int, seed: int = 0, weights: Optional[dict[str, float]] = None) -> list[str]:
    """``count`` seeded passages (the tokenizers use uniform weights; the LM's recipe sets its own)."""
    rng = random.Random(f"seq-corpus-{seed}")
    return [passage(rng, weights=weights) for _ in range(count)]


__all__ = ["LABELS", "NAMES", "NOUNS", "VERBS", "WORDS", "passage", "passages"]
