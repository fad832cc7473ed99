"""Indirect object identification (IOI) prompts of Wang et al. (2022) on the held-out templates.

A prompt introduces two people (slots ``N1``, ``N2``), names one of them again (slot ``S``, the
subject) and stops where the other one, the indirect object, is named:

    "While Mary and John were cleaning up the market, John quietly slipped a book to"  ->  " Mary"

``ABBA``: the indirect object (IO) is named first (``N1 = IO, N2 = S``); ``BABA``: the subject first.
The templates, names, places and objects are those of :mod:`shared.tasks.heldout` (never redefined
here). Every prompt is rendered from its fields (:class:`IOIItem`); its token positions come from the
tokenizer's character offsets: ``IO``, ``S1`` (the first mention of the subject), ``S2`` (the
second) and ``END`` (the last token, where the IO is predicted).

Corruptions (``CORRUPTIONS``) keep the template, place, object and token length:

* ``abc`` — S1 and S2 become two new distinct names, so IO, S1 and S2 are all distinct (the ABC set);
* ``s2_new`` — only S2 becomes a new name (the subject is no longer repeated);
* ``swap`` — IO and S exchange names everywhere (the answer flips).

API::

    check_names(tokenizer, names) / single_token_names(tokenizer, names)
    ioi_items(template, n, seed=0, names=IOI_NAMES, orders=("ABBA", "BABA")) -> list[IOIItem]
    corrupt_items(items, corruption, seed=0, names=IOI_NAMES) -> list[IOIItem]
    encode_items(tokenizer, items) -> IOIEncoded        # tokens, positions, name ids (one length)
    ioi_batch(tokenizer, template, n, corruption="abc", seed=0) -> IOIBatch   # .batch, .positions
    ioi_batches(tokenizer, templates=None, n_per_template=32, ...) -> {template: IOIBatch}
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Optional, Sequence

import torch

from shared.analysis.ioi import IOIPositions
from shared.engine.batch import PromptBatch
from shared.errors import ParameterError
from shared.tasks.heldout import IOI_NAMES, IOI_OBJECTS, IOI_PLACES, IOI_TEMPLATES, fill_template
from shared.tasks.tokens import encode_text, get_tokenizer, tokenize

ORDERS = ("ABBA", "BABA")
CORRUPTIONS = ("abc", "s2_new", "swap")
_SLOTS = ("N1", "N2", "S")


# ------------------------------------------------------------------------------------ names
def _name_pieces(tok: Any, name: str) -> list[str]:
    ids, offsets = encode_text(tok, " " + name)
    return [(" " + name)[a:b] for a, b in offsets] if len(ids) > 1 else [" " + name]


def single_token_names(tokenizer: Any, names: Sequence[str] = IOI_NAMES) -> list[str]:
    """The names that are one token with a leading space (``" Mary"``) for this tokenizer, in order."""
    tok = get_tokenizer(tokenizer)
    return [n for n in names if len(encode_text(tok, " " + n)[0]) == 1]


def check_names(tokenizer: Any, names: Sequence[str] = IOI_NAMES) -> list[str]:
    """Return ``names`` if each is one token with a leading space; otherwise raise one sentence that
    names the first offending name and its pieces."""
    tok = get_tokenizer(tokenizer)
    names = list(names)
    if len(set(names)) < 4:
        raise ParameterError(f"IOI prompts need at least 4 distinct names (IO, S and two new ones for the "
                             f"corruptions), got {len(set(names))}.")
    for n in names:
        ids, _ = encode_text(tok, " " + n)
        if len(ids) != 1:
            pieces = " + ".join(repr(p) for p in _name_pieces(tok, n))
            raise ParameterError(f"The name {n!r} is {len(ids)} tokens ({pieces}) with a leading space for this "
                                 f"tokenizer, but IOI names must be single tokens (pass names=single_token_names("
                                 f"tokenizer) to keep only those that are).")
    return names


# ------------------------------------------------------------------------------------ prompts
@dataclass(frozen=True)
class IOIItem:
    """One IOI prompt as fields: the names in the slots ``N1``, ``N2`` and ``S`` (``n1``, ``n2``,
    ``n3``), the ``order`` that says which of ``N1``/``N2`` is the IO slot, ``place`` and ``obj``.

    ``io`` is the name in the IO slot, ``s1`` the other introduced name, ``s2`` the name in slot
    ``S``; in a clean prompt ``s1 == s2`` (the subject is repeated) and the answer is ``" " + io``.
    """

    template: str
    order: str
    n1: str
    n2: str
    n3: str
    place: str
    obj: str

    @property
    def io(self) -> str:
        return self.n1 if self.order == "ABBA" else self.n2

    @property
    def s1(self) -> str:
        return self.n2 if self.order == "ABBA" else self.n1

    @property
    def s2(self) -> str:
        return self.n3

    @property
    def text(self) -> str:
        return self.render()[0]

    def render(self) -> tuple[str, dict[str, tuple[int, int]]]:
        """The text and the character span of each name slot (``N1``, ``N2``, ``S``)."""
        values = dict(N1=self.n1, N2=self.n2, S=self.n3, PLACE=self.place, OBJECT=self.obj)
        text, spans = fill_template(IOI_TEMPLATES[self.template].text, values, f"IOI template {self.template!r}")
        return text, {slot: spans[slot] for slot in _SLOTS if slot in spans}

    @property
    def text(self) -> str:
        return self.render()[0]

    def slot_of(self, role: str) -> str:
        """The template slot of a role: ``io``, ``s1`` or ``s2``."""
        io_slot, s1_slot = ("N1", "N2") if self.order == "ABBA" else ("N2", "N1")
        return {"io": io_slot, "s1": s1_slot, "s2": "S"}[role]


def _check_template(template: str) -> None:
    if template not in IOI_TEMPLATES:
        raise ParameterError(f"Unknown IOI template {template!r}; choose one of {', '.join(IOI_TEMPLATES)}.")


def ioi_items(template: str, n: int, seed: int = 0, names: Sequence[str] = IOI_NAMES,
              orders: Sequence[str] = ORDERS) -> list[IOIItem]:
    """``n`` clean prompts of ``template`` cycling through ``orders`` (half ABBA, half BABA by
    default); IO and S are two distinct names drawn from ``names``, place and object at random (seeded)."""
    _check_template(template)
    bad = [o for o in orders if o not in ORDERS]
    if bad or not orders:
        raise ParameterError(f"orders must be a non-empty subset of {ORDERS}, got {list(orders)}.")
    names = list(dict.fromkeys(names))
    if len(names) < 4:
        raise ParameterError(f"IOI prompts need at least 4 distinct names, got {len(names)}.")
    rng = random.Random(f"{seed}-ioi-items-{template}")
    out = []
    for i in range(n):
        io, s = rng.sample(names, 2)
        order = orders[i % len(orders)]
        n1, n2 = (io, s) if order == "ABBA" else (s, io)
        out.append(IOIItem(template, order, n1, n2, s, rng.choice(IOI_PLACES), rng.choice(IOI_OBJECTS)))
    return out


def _set_role(item: IOIItem, role: str, name: str) -> IOIItem:
    slot = item.slot_of(role)
    return replace(item, **{{"N1": "n1", "N2": "n2", "S": "n3"}[slot]: name})


def corrupt_items(items: Sequence[IOIItem], corruption: str, seed: int = 0,
                  names: Sequence[str] = IOI_NAMES) -> list[IOIItem]:
    """The corrupted twin of each clean item (same template, order, place and object): ``abc``,
    ``s2_new`` or ``swap`` (see the module docstring); new names are drawn from ``names`` (seeded)."""
    if corruption not in CORRUPTIONS:
        raise ParameterError(f"Unknown IOI corruption {corruption!r}; use one of {CORRUPTIONS}.")
    rng = random.Random(f"{seed}-ioi-corrupt-{corruption}")
    pool = list(dict.fromkeys(names))
    out = []
    for it in items:
        if corruption == "swap":
            new = _set_role(_set_role(_set_role(it, "io", it.s1), "s1", it.io), "s2", it.io)
        else:
            fresh = [n for n in pool if n not in (it.io, it.s1, it.s2)]
            k = 2 if corruption == "abc" else 1
            if len(fresh) < k:
                raise ParameterError(f"The {corruption!r} corruption needs {k} names besides IO and S; "
                                     f"only {len(fresh)} are left.")
            picks = rng.sample(fresh, k)
            new = _set_role(it, "s2", picks[-1])
            if corruption == "abc":
                new = _set_role(new, "s1", picks[0])
        out.append(new)
    return out


# ------------------------------------------------------------------------------------ tokens
@dataclass
class IOIEncoded:
    """Token ids ``[n, pos]`` (BOS first) and, per prompt, the positions of IO, S1, S2 and END and
    the token ids of the names in the IO, S1 and S2 slots."""

    tokens: torch.Tensor
    positions: IOIPositions
    io_id: torch.Tensor
    s1_id: torch.Tensor
    s2_id: torch.Tensor


def _encode_item(tok: Any, item: IOIItem) -> tuple[list[int], dict[str, int], dict[str, int]]:
    text, spans = item.render()
    ids, offsets = tokenize(tok, text)
    pos, name_ids = {}, {}
    for role in ("io", "s1", "s2"):
        a, b = spans[item.slot_of(role)]
        name = text[a:b]
        hits = [i for i, (x, y) in enumerate(offsets) if y > x and x < b and y > a]
        piece = "".join(text[offsets[i][0]:offsets[i][1]] for i in hits).strip()
        expected = encode_text(tok, " " + name)[0]
        if len(hits) != 1 or piece != name or [ids[hits[0]]] != expected:
            raise ParameterError(f"The name {name!r} in {text!r} is not one token of its own with a leading space "
                                 f"for this tokenizer (it reads as {piece!r} in {len(hits)} token(s)).")
        pos[role], name_ids[role] = hits[0], ids[hits[0]]
    full, _ = tokenize(tok, text + " " + item.io)
    if full[:len(ids)] != ids or full[len(ids):] != [name_ids["io"]]:
        raise ParameterError(f"Appending ' {item.io}' to {text!r} does not add exactly the token of ' {item.io}'.")
    pos["end"] = len(ids) - 1
    return ids, pos, name_ids


def encode_items(tokenizer: Any, items: Sequence[IOIItem]) -> IOIEncoded:
    """Tokenize items that share one token length; positions from the tokenizer's offsets."""
    if not items:
        raise ParameterError("No IOI prompts to encode.")
    tok = get_tokenizer(tokenizer)
    rows = [_encode_item(tok, it) for it in items]
    lengths = sorted({len(r[0]) for r in rows})
    if len(lengths) > 1:
        raise ParameterError(f"The IOI prompts tokenize to different lengths ({', '.join(map(str, lengths))} "
                             f"tokens); build one batch per length (ioi_batch does).")
    col = lambda key, part: torch.tensor([r[part][key] for r in rows], dtype=torch.long)
    positions = IOIPositions(io=col("io", 1), s1=col("s1", 1), s2=col("s2", 1), end=col("end", 1))
    return IOIEncoded(torch.tensor([r[0] for r in rows], dtype=torch.long), positions,
                      col("io", 2), col("s1", 2), col("s2", 2))


# ------------------------------------------------------------------------------------ batches
@dataclass
class IOIBatch:
    """Clean and corrupted items of one template and token length, their encodings and the engine's
    :class:`PromptBatch` (correct = IO token, incorrect = S token, answer at END)."""

    template: str
    corruption: str
    clean_items: list[IOIItem]
    corrupt_items: list[IOIItem]
    clean: IOIEncoded
    corrupt: IOIEncoded
    batch: PromptBatch

    @property
    def positions(self) -> IOIPositions:
        return self.clean.positions

    def __len__(self) -> int:
        return len(self.clean_items)


def _length(tok: Any, item: IOIItem) -> int:
    return len(tokenize(tok, item.text)[0])


def ioi_batch(tokenizer: Any, template: str, n: int = 32, corruption: str = "abc", seed: int = 0,
              names: Sequence[str] = IOI_NAMES, orders: Sequence[str] = ORDERS,
              max_draws: Optional[int] = None) -> IOIBatch:
    """``n`` clean/corrupted pairs of ``template`` of one token length (the most common length among
    the first draws; others are skipped). Names are checked to be single tokens first."""
    tok = get_tokenizer(tokenizer)
    names = check_names(tok, names)
    max_draws = max_draws or 20 * n + 32
    pool = ioi_items(template, max_draws, seed, names, orders)
    bad = corrupt_items(pool, corruption, seed, names)
    pairs = [(c, k) for c, k in zip(pool, bad)]
    head = pairs[:max(16, n)]
    target = Counter(_length(tok, c) for c, _ in head).most_common(1)[0][0]
    chosen = []
    for c, k in pairs:
        if _length(tok, c) == target and _length(tok, k) == target:
            chosen.append((c, k))
            if len(chosen) == n:
                break
    if len(chosen) < n:
        raise ParameterError(f"Only {len(chosen)} of {max_draws} drawn {template!r} prompts share the token length "
                             f"{target} with their {corruption!r} corruption; ask for fewer than {n}.")
    clean_items, corrupt_list = [c for c, _ in chosen], [k for _, k in chosen]
    clean, corrupted = encode_items(tok, clean_items), encode_items(tok, corrupt_list)
    for role in ("io", "s1", "s2", "end"):
        if not torch.equal(getattr(clean.positions, role), getattr(corrupted.positions, role)):
            raise ParameterError(f"The {corruption!r} corruption moves the {role.upper()} token of template "
                                 f"{template!r}; clean and corrupted prompts must align.")
    batch = PromptBatch(clean.tokens, corrupted.tokens, clean.io_id, clean.s1_id, clean.positions.end,
                        [c.text for c in clean_items])
    return IOIBatch(template, corruption, clean_items, corrupt_list, clean, corrupted, batch)


def ioi_batches(tokenizer: Any, templates: Optional[Sequence[str]] = None, n_per_template: int = 32,
                corruption: str = "abc", seed: int = 0, names: Sequence[str] = IOI_NAMES,
                orders: Sequence[str] = ORDERS) -> dict[str, IOIBatch]:
    """One :func:`ioi_batch` per template (default: every held-out IOI template)."""
    templates = list(IOI_TEMPLATES) if templates is None else list(templates)
    return {t: ioi_batch(tokenizer, t, n_per_template, corruption, seed, names, orders) for t in templates}


__all__ = [
    "CORRUPTIONS", "IOIBatch", "IOIEncoded", "IOIItem", "ORDERS", "check_names", "corrupt_items", "encode_items",
    "ioi_batch", "ioi_batches", "ioi_items", "single_token_names",
]
