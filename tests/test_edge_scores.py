"""``EdgeScores`` (what ``eap`` returns) behaves like the dict of edge scores it replaced, and the
vectorised sender x receiver edge table equals the one built by parsing every edge name."""
from __future__ import annotations

import pickle

import pytest
import torch

from shared.engine.graph import EdgeScores, Graph, split_edge
from shared.engine.patching import _EdgeIndex
from shared.errors import ParameterError


@pytest.mark.parametrize("shape", [(2, 4, True, False), (3, 2, True, True), (2, 3, False, False)])
def test_edge_table_equals_parsing_the_edge_names(shape):
    g = Graph(*shape)
    table = torch.full((len(g.senders), len(g.receivers)), -1, dtype=torch.long)
    s_col = {s: i for i, s in enumerate(g.senders)}
    r_col = {r: i for i, r in enumerate(g.receivers)}
    for i, e in enumerate(g.edges):
        s, r, p = split_edge(e)
        table[s_col[s], r_col[r if p is None else f"{r}:{p}"]] = i
    assert torch.equal(_EdgeIndex(g).table, table)
    assert sum(g.upstream_counts) == len(g.edges) == int(g.edge_mask().sum())


def test_edge_scores_read_like_a_dict():
    g = Graph(2, 2, True, False)
    values = torch.arange(len(g.edges), dtype=torch.float64) - 7.5
    scores = EdgeScores(g, values)
    plain = dict(zip(g.edges, values.tolist()))
    assert scores == plain and dict(scores) == plain and scores.to_dict() == plain
    assert list(scores) == g.edges and len(scores) == len(g.edges)
    assert scores.items() == list(plain.items()) and scores.values() == list(plain.values())
    e = g.edges[5]
    assert scores[e] == plain[e] == scores.get(e) and e in scores and "m9->logits" not in scores
    assert scores.get("m9->logits", 0.0) == 0.0
    assert sorted(scores, key=scores.get)[:3] == sorted(plain, key=plain.get)[:3]
    with pytest.raises(KeyError):
        scores["a0.h0->a0.h1:q"]
    data = pickle.dumps(scores)
    again = pickle.loads(data)
    assert again == plain and again.graph.edges == g.edges
    assert b"input->a0" not in data  # pickled by shape and tensor, not by edge names
    with pytest.raises(ParameterError, match="one score per edge"):
        EdgeScores(g, values[:-1])
