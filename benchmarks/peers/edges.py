"""The one mapping between the book's node and edge names and auto-circuit's.

========================  =============================  ==========================================
what                      book (``shared.engine.graph``)  auto-circuit 1.0.1 (factorized, separate qkv)
========================  =============================  ==========================================
token + position embed    ``input``                      ``Resid Start`` (``blocks.0.hook_resid_pre``)
head output (no bias)     ``a{L}.h{H}``                  ``A{L}.{H}`` (``blocks.L.attn.hook_result``)
MLP output                ``m{L}``                       ``MLP {L}`` (``blocks.L.hook_mlp_out``)
head input q / k / v      ``a{L}.h{H}:q`` (``k``, ``v``)  ``A{L}.{H}.Q`` (``blocks.L.hook_q_input``)
MLP input                 ``m{L}``                       ``MLP {L}`` (``blocks.L.hook_mlp_in``)
final residual            ``logits``                     ``Resid End`` (last ``hook_resid_post``)
========================  =============================  ==========================================

An edge is ``sender->receiver`` on both sides (``a0.h1->a1.h0:k`` is ``A0.1->A1.0.K``). Both
libraries patch an edge the same way: the receiver reads the residual stream minus the sender's
output plus the sender's corrupted output, renormalised by the receiver's own LayerNorm. Standard
library only: the peer worker imports this module too."""
from __future__ import annotations

import re

_BOOK_HEAD = re.compile(r"^a(\d+)\.h(\d+)$")
_BOOK_MLP = re.compile(r"^m(\d+)$")
_PEER_HEAD = re.compile(r"^A(\d+)\.(\d+)$")
_PEER_HEAD_IN = re.compile(r"^A(\d+)\.(\d+)\.([QKV])$")
_PEER_MLP = re.compile(r"^MLP (\d+)$")


def book_sender_to_peer(node: str) -> str:
    if node == "input":
        return "Resid Start"
    m = _BOOK_HEAD.match(node)
    if m:
        return f"A{m.group(1)}.{m.group(2)}"
    m = _BOOK_MLP.match(node)
    if m:
        return f"MLP {m.group(1)}"
    raise ValueError(f"{node!r} is not a sender of the book's graph (input, a<L>.h<H> or m<L>).")


def book_receiver_to_peer(receiver: str) -> str:
    if receiver == "logits":
        return "Resid End"
    node, _, port = receiver.partition(":")
    m = _BOOK_HEAD.match(node)
    if m and port in ("q", "k", "v"):
        return f"A{m.group(1)}.{m.group(2)}.{port.upper()}"
    m = _BOOK_MLP.match(node)
    if m and not port:
        return f"MLP {m.group(1)}"
    raise ValueError(f"{receiver!r} is not a receiver of the book's graph (a<L>.h<H>:q|k|v, m<L> or logits).")


def peer_sender_to_book(node: str) -> str:
    if node == "Resid Start":
        return "input"
    m = _PEER_HEAD.match(node)
    if m:
        return f"a{m.group(1)}.h{m.group(2)}"
    m = _PEER_MLP.match(node)
    if m:
        return f"m{m.group(1)}"
    raise ValueError(f"{node!r} is not an auto-circuit source node (Resid Start, A<L>.<H> or MLP <L>).")


def peer_receiver_to_book(node: str) -> str:
    if node == "Resid End":
        return "logits"
    m = _PEER_HEAD_IN.match(node)
    if m:
        return f"a{m.group(1)}.h{m.group(2)}:{m.group(3).lower()}"
    m = _PEER_MLP.match(node)
    if m:
        return f"m{m.group(1)}"
    raise ValueError(f"{node!r} is not an auto-circuit destination node (A<L>.<H>.Q|K|V, MLP <L> or Resid End).")


def book_edge_to_peer(edge: str) -> str:
    """``"a0.h1->a1.h0:k"`` -> ``"A0.1->A1.0.K"``."""
    sender, arrow, receiver = edge.partition("->")
    if not arrow:
        raise ValueError(f"{edge!r} is not an edge name of the form sender->receiver.")
    return f"{book_sender_to_peer(sender)}->{book_receiver_to_peer(receiver)}"


def peer_edge_to_book(edge: str) -> str:
    """``"A0.1->A1.0.K"`` -> ``"a0.h1->a1.h0:k"``."""
    src, arrow, dest = edge.partition("->")
    if not arrow:
        raise ValueError(f"{edge!r} is not an edge name of the form src->dest.")
    return f"{peer_sender_to_book(src)}->{peer_receiver_to_book(dest)}"


__all__ = ["book_edge_to_peer", "book_receiver_to_peer", "book_sender_to_peer", "peer_edge_to_book",
           "peer_receiver_to_book", "peer_sender_to_book"]
