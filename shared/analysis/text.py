"""Token statistics of a text corpus and next-token losses on text windows.

A corpus is handled as one 1-D token stream (:func:`tokenize_stream`). From it come the most
frequent tokens, the bigram table ``log P(next | current)`` that a zero-layer model can learn, and
random windows on which a model's loss is measured position by position (the in-context-learning
score compares late positions with early ones).
"""
from __future__ import annotations

import unicodedata
from typing import Any, Iterable, Optional, Sequence

import torch
import torch.nn.functional as F

from shared.errors import ParameterError


def _byte_table() -> dict[str, int]:
    """The byte-level BPE alphabet (GPT-2 and its descendants): every byte is stored as one printable
    character, printable Latin-1 bytes as themselves and the others as characters from U+0100 up."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {chr(b): b for b in printable}
    spare = 0
    for b in range(256):
        if b not in printable:
            table[chr(256 + spare)] = b
            spare += 1
    return table


_BYTE_OF = _byte_table()
_SHOWN = {"\n": "↵", "\t": "⇥", "\r": "␍", "\ufffd": "‹?›"}


def _byte_label(b: int) -> str:
    return f"‹0x{b:02X}›"


def _bytes_text(raw: bytes) -> str:
    """``raw`` decoded as UTF-8 where it can be; each byte of an incomplete character as ``‹0xNN›``."""
    out, i = [], 0
    while i < len(raw):
        for j in range(min(len(raw), i + 4), i, -1):
            try:
                out.append(raw[i:j].decode("utf-8"))
                i = j
                break
            except UnicodeDecodeError:
                continue
        else:
            out.append(_byte_label(raw[i]))
            i += 1
    return "".join(out)


def _token_bytes(tokenizer: Any, token_id: int) -> Optional[bytes]:
    """The raw bytes of one token of a byte-level or byte-fallback tokenizer (``None`` otherwise)."""
    piece = tokenizer.convert_ids_to_tokens(int(token_id))
    if not isinstance(piece, str) or not piece:
        return None
    if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
        return bytes.fromhex(piece[3:5])  # sentencepiece byte fallback
    if all(c in _BYTE_OF for c in piece):
        return bytes(_BYTE_OF[c] for c in piece)
    return None


def token_label(text: str) -> str:
    """How one token is shown to a reader (tables, figure ticks, circuitsvis strips): newline, tab and
    carriage return as ``↵ ⇥ ␍``, other control characters as ``‹0xNN›``, an undecodable byte
    (the replacement character) as ``‹?›``, a token made only of spaces as one ``␣`` per space. Ordinary text, including a word's leading space, is left as it is."""
    if text and text.strip(" ") == "":
        return "␣" * len(text)
    out = []
    for ch in text:
        if ch in _SHOWN:
            out.append(_SHOWN[ch])
        elif unicodedata.category(ch) == "Cc":
            out.append(_byte_label(ord(ch)))
        else:
            out.append(ch)
    return "".join(out)


def token_strings(tokenizer: Any, ids: Iterable[int], quotes: bool = True) -> list[str]:
    """Readable single tokens (see :func:`token_label`); a token that is only part of a UTF-8
    character shows its bytes (``‹0xE2›``) instead of the replacement character. ``quotes`` wraps
    each label in quote marks, so a leading space shows in a table."""
    out = []
    for i in ids:
        text = tokenizer.decode([int(i)])
        if "\ufffd" in text:
            raw = _token_bytes(tokenizer, int(i))
            text = _bytes_text(raw) if raw is not None else text
        label = token_label(text)
        out.append(f"'{label}'" if quotes else label)
    return out


def widget_labels(labels: Sequence[str], spaced: Optional[bool] = None) -> list[str]:
    """Labels for a strip of tokens drawn side by side (circuitsvis): each made readable with
    :func:`token_label`, with ``< >`` as ``‹ ›`` (circuitsvis inserts labels as HTML) and, when
    ``spaced`` (default: when no label carries its own space, as list items or digits), followed by
    a space so that neighbours do not run together."""
    shown = [token_label(str(t)).replace("<", "‹").replace(">", "›") for t in labels]
    if spaced is None:
        spaced = not any(t[:1].isspace() or t[-1:].isspace() or t.startswith("␣") for t in shown)
    return [t + " " for t in shown] if spaced else shown


def special_ids(tokenizer: Any) -> list[int]:
    """Ids of the tokenizer's special tokens (BOS, padding ...), empty without a tokenizer."""
    return list(getattr(tokenizer, "all_special_ids", []) or []) if tokenizer is not None else []


def tokenize_stream(tokenizer: Any, texts: Sequence[str]) -> torch.Tensor:
    """Texts tokenized with any Hugging Face tokenizer and concatenated (no special tokens)."""
    ids: list[int] = []
    for text in texts:
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
    return torch.tensor(ids, dtype=torch.long)


def frequent_tokens(stream: torch.Tensor, count: int, exclude: Sequence[int] = ()) -> torch.Tensor:
    """The ``count`` most frequent token ids of a stream (without ``exclude``), most frequent first."""
    freq = torch.bincount(stream)
    if len(exclude):
        dropped = torch.tensor(list(exclude))
        freq[dropped[dropped < len(freq)]] = 0
    count = min(count, int((freq > 0).sum()))
    return freq.argsort(descending=True)[:count]


def bigram_log_probs(stream: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Corpus estimate of ``log P(next | current)`` for ``ids`` x ``ids`` and the pair counts.

    The denominator counts every token that follows ``current`` (also those outside ``ids``);
    pairs never seen get ``-inf``.
    """
    index = torch.full((int(max(stream.max(), ids.max())) + 1,), -1, dtype=torch.long)
    index[ids] = torch.arange(len(ids))
    cur, nxt = index[stream[:-1]], index[stream[1:]]
    totals = torch.bincount(cur[cur >= 0], minlength=len(ids)).double()
    keep = (cur >= 0) & (nxt >= 0)
    pairs = torch.bincount(cur[keep] * len(ids) + nxt[keep], minlength=len(ids) ** 2).view(len(ids), len(ids))
    logp = (pairs.double() / totals.clamp_min(1)[:, None]).log()
    return logp.float(), pairs


def text_windows(stream: torch.Tensor, n_ctx: int, count: int, seed: int,
                 bos_id: Optional[int] = None) -> torch.Tensor:
    """``count`` seeded random windows of a token stream, ``n_ctx`` tokens each (BOS first if given)."""
    length = n_ctx - (1 if bos_id is not None else 0)
    if len(stream) <= length:
        raise ParameterError(f"The text has {len(stream)} tokens, too few for windows of {length}.")
    gen = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(stream) - length, (count,), generator=gen).tolist()
    windows = torch.stack([stream[s: s + length] for s in starts])
    if bos_id is not None:
        windows = torch.cat([torch.full((count, 1), bos_id, dtype=torch.long), windows], dim=1)
    return windows


@torch.no_grad()
def per_token_loss(bridge: Any, tokens: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy at every position: [batch, pos - 1] (column p predicts token p + 1)."""
    logits = bridge(tokens).float()
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten(),
                           reduction="none").view(tokens.shape[0], -1).cpu()


def loss_by_position(bridge: Any, windows: torch.Tensor, chunk: int = 32) -> torch.Tensor:
    """Mean next-token loss at each position of the windows, ``chunk`` windows per forward pass: [pos - 1]."""
    parts = [per_token_loss(bridge, windows[i: i + chunk]) for i in range(0, len(windows), chunk)]
    return torch.cat(parts).mean(0)


def icl_score(position_loss: torch.Tensor, early: int, late: int, width: int = 4) -> float:
    """In-context-learning score: mean loss within ``width`` positions of ``late`` minus that around
    ``early`` (negative when later tokens are easier to predict)."""
    n = len(position_loss)
    if not (0 <= early < late < n):
        raise ParameterError(f"Need 0 <= early < late < {n} for the ICL score (got {early}, {late}).")

    def around(p: int) -> float:
        return float(position_loss[max(0, p - width): min(n, p + width + 1)].mean())

    return around(late) - around(early)


__all__ = ["bigram_log_probs", "frequent_tokens", "icl_score", "loss_by_position", "per_token_loss", "special_ids",
           "text_windows", "token_label", "token_strings", "tokenize_stream", "widget_labels"]
