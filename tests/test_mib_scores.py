"""MIB-style scores (faithfulness at edge shares, CPR, CMD, cost), MIB's JSON edge format, and
learned edge masks recovering the planted circuits."""
from __future__ import annotations

import json

import pytest
import torch

from shared.engine.circuit import Circuit, faithfulness
from shared.engine.eap import eap
from shared.engine.edge_pruning import edge_pruning, hard_concrete, keep_probability
from shared.engine.graph import Graph
from shared.engine.mib import (MIB_PERCENTS, area_scores, from_mib, mib_curve, ranking, save_mib, score_method,
                               to_mib, top_k_sizes)
from shared.errors import ParameterError
from shared.zoo.planted import copy_first_model, induction_model

MODELS = {"induction": induction_model, "copy_first": copy_first_model}


@pytest.fixture(scope="module", params=sorted(MODELS))
def planted(request):
    pm = MODELS[request.param]()
    return pm, pm.batch(16, seed=0)


def test_top_k_sizes_and_areas_hand_computed():
    assert top_k_sizes(110) == [0, 0, 0, 1, 2, 5, 11, 22, 55, 110]
    assert top_k_sizes(1000, [0.1, 50, 100]) == [1, 500, 1000]
    # f = 0, 0.5, 1 at 10 %, 50 %, 100 %: trapezoids 0.4 * 0.25 + 0.5 * 0.75 over a span of 0.9
    cpr, cmd = area_scores([10, 50, 100], [0.0, 0.5, 1.0])
    assert cpr == pytest.approx(0.475 / 0.9) and cmd == pytest.approx(0.425 / 0.9)
    # a curve above 1 counts against CMD: |1 - 1.2| = 0.2 everywhere
    assert area_scores([10, 100], [1.2, 1.2]) == pytest.approx((1.2, 0.2))
    assert area_scores(MIB_PERCENTS, [1.0] * 10) == (1.0, 0.0)  # the full model at every size
    assert area_scores(MIB_PERCENTS, [0.0] * 10) == (0.0, 1.0)  # the empty circuit at every size
    with pytest.raises(ParameterError, match="increase"):
        area_scores([50, 10], [0, 1])
    with pytest.raises(ParameterError, match="percentages"):
        top_k_sizes(10, [0, 50])


def test_faithfulness_at_edge_shares(planted):
    pm, batch = planted
    g = Graph.of(pm.bridge)
    scores = eap(pm.bridge, batch)
    # the whole graph is the model (f = 1) and nothing kept is the corrupted run (f = 0), by construction
    curve = mib_curve(pm.bridge, batch, scores, percents=[0.1, 100])
    assert curve.sizes == [0, len(g.edges)] and curve.normalized == [0.0, 1.0]
    # f at the fixed shares equals the faithfulness of the top-k edges measured on their own
    curve = mib_curve(pm.bridge, batch, scores)
    ranked = sorted(scores, key=lambda e: -abs(scores[e]))
    for k, f in zip(curve.sizes, curve.normalized):
        if 0 < k < len(g.edges):
            ref = faithfulness(pm.bridge, batch, Circuit.from_edges(ranked[:k])).normalized
            assert f == pytest.approx(ref, abs=1e-5)
    # at 10 % of the edges (8 or 11) the planted circuit is inside the top-k: f close to 1
    assert curve.normalized[MIB_PERCENTS.index(10)] > 0.95


def test_score_method_reports_cpr_cmd_auc_and_cost(planted):
    pm, batch = planted
    g = Graph.of(pm.bridge)
    # an oracle that ranks the planted edges first, against one that ranks them last
    oracle = {e: (2.0 if e in pm.edges else 1.0) for e in g.edges}
    worst = {e: (1.0 if e in pm.edges else 2.0) for e in g.edges}
    good = score_method(pm.bridge, batch, "oracle", lambda: oracle, truth=pm.edges)
    bad = score_method(pm.bridge, batch, "worst", lambda: worst, truth=pm.edges)
    assert good.auc == 1.0 and bad.auc == 0.0
    assert good.cpr > 0.9 and good.cmd < 0.1 and bad.cpr < good.cpr - 0.3
    assert good.faithfulness[-1] == 1.0 and good.seconds >= 0 and good.forward_passes >= 0
    # a set-valued result (a circuit) is ranked with its edges first
    c = Circuit.from_edges(pm.edges, scores={e: 1.0 for e in pm.edges})
    r = ranking(c, g)
    assert set(sorted(r, key=lambda e: -r[e])[:len(pm.edges)]) == set(pm.edges) and len(r) == len(g.edges)


def test_mib_json_format_round_trip(tmp_path):
    pm = copy_first_model()
    g = Graph.of(pm.bridge)
    c = Circuit.from_edges(pm.edges, scores={e: float(i + 1) for i, e in enumerate(pm.edges)})
    data = json.loads(save_mib(c, pm.bridge, tmp_path / "c.json").read_text())
    assert data["cfg"] == {"n_layers": 2, "n_heads": 4, "d_model": pm.bridge.cfg.d_model, "parallel_attn_mlp": False}
    assert len(data["edges"]) == len(g.edges) and data["edges"]["m0->a1.h2<v>"] == {"score": 3.0, "in_graph": True}
    assert data["edges"]["a0.h0->m0"]["in_graph"] is False
    assert {n for n, v in data["nodes"].items() if v["in_graph"]} == {"input", "a0.h1", "m0", "a1.h2", "logits"}
    back = from_mib(tmp_path / "c.json")
    assert set(back.edges) == set(pm.edges) and back.scores["m0->a1.h2:v"] == 3.0
    scores = to_mib(eap(pm.bridge, pm.batch(8)), pm.bridge)  # raw scores: every edge in the graph
    assert all(v["in_graph"] for v in scores["edges"].values())
    with pytest.raises(ParameterError, match="no 'edges'"):
        from_mib({"nodes": {}})


def test_hard_concrete_gates():
    la = torch.tensor([-10.0, 0.0, 10.0])
    z = hard_concrete(la)
    assert z[0] == 0.0 and z[2] == 1.0 and z[1] == pytest.approx(0.5)
    p = keep_probability(la)
    assert p[0] < 0.01 and p[2] > 0.99
    samples = torch.stack([hard_concrete(la, torch.Generator().manual_seed(s)) for s in range(200)])
    assert ((samples >= 0) & (samples <= 1)).all() and (samples[:, 1] == 0).any() and (samples[:, 1] == 1).any()


@pytest.mark.parametrize("seed", [0, 1])
def test_edge_pruning_recovers_planted_circuits(planted, seed):
    pm, batch = planted
    c = edge_pruning(pm.bridge, batch, seed=seed)
    assert set(c.edges) == set(pm.edges), sorted(set(c.edges) ^ set(pm.edges))
    f = faithfulness(pm.bridge, batch, c)
    assert f.normalized > 0.9 and f.score == pytest.approx(c.score, abs=1e-4)
    assert min(c.scores[e] for e in pm.edges) > max(v for e, v in c.scores.items() if e not in pm.edges)
    with pytest.raises(ParameterError, match="l0 >= 0"):
        edge_pruning(pm.bridge, batch, l0=-1)
