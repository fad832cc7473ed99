"""Every circuit method recovers the circuits planted by hand in shared.zoo.planted (ROC AUC = 1)."""
from __future__ import annotations

import pytest
import torch

from shared.engine.ablation import knockout_sweep
from shared.engine.circuit import Circuit, faithfulness, faithfulness_curve, roc_auc
from shared.plots.circuits import knockout_heatmap
from shared.engine.eap import eap, eap_ig
from shared.engine.patching import activation_patching, path_patching
from shared.zoo.planted import copy_first_model, induction_model
from shared.engine.pruning import acdc, prune_nodes

MODELS = {"induction": induction_model, "copy_first": copy_first_model}


@pytest.fixture(scope="module", params=sorted(MODELS))
def planted(request):
    pm = MODELS[request.param]()
    return pm, pm.batch(16, seed=0)


def test_planted_models_do_their_task(planted):
    pm, batch = planted
    with torch.no_grad():
        logits = pm.bridge(batch.clean)[torch.arange(len(batch)), batch.answer_pos]
    assert (logits.argmax(-1) == batch.correct).all()


@pytest.mark.parametrize("ablation", ["mean", "zero", "resample", "corrupt"])
def test_knockout_sweep_finds_planted_nodes(planted, ablation):
    pm, batch = planted
    ko = knockout_sweep(pm.bridge, batch, ablation=ablation, progress=False)
    assert roc_auc(ko.as_dict(), pm.nodes) == 1.0
    assert min(ko.as_dict()[n] for n in pm.nodes) > 2.0  # the noise nodes move it by < 0.3
    fig = knockout_heatmap(ko)
    assert fig.axes[0].get_xlabel() == "head" and all(float(x).is_integer() for x in fig.axes[0].get_xticks())


def test_activation_patching_both_directions(planted):
    pm, batch = planted
    den = activation_patching(pm.bridge, batch, "denoising")
    noi = activation_patching(pm.bridge, batch, "noising")
    full = {n: v for n, v in den.items()}
    assert roc_auc({n: v - min(full.values()) for n, v in den.items()}, pm.nodes) == 1.0
    assert roc_auc({n: max(noi.values()) - v for n, v in noi.items()}, pm.nodes) == 1.0


@pytest.mark.parametrize("order", ["backward", "forward"])
def test_node_pruning_recovers_planted_nodes(planted, order):
    pm, batch = planted
    c = prune_nodes(pm.bridge, batch, order=order, threshold=0.8, progress=False)
    assert c.nodes == pm.nodes
    assert c.info["relative_score"] >= 0.8 and c.score == pytest.approx(faithfulness(
        pm.bridge, batch, Circuit(nodes=c.nodes), ablation="mean").score, abs=1e-4)


def test_path_patching_and_eap_rank_planted_edges_first(planted):
    pm, batch = planted
    aucs = {}
    for name, scores in (("path_patching", path_patching(pm.bridge, batch, progress=False)),
                         ("eap", eap(pm.bridge, batch)), ("eap_ig", eap_ig(pm.bridge, batch, steps=4))):
        aucs[name] = roc_auc(scores, pm.edges)
        top = sorted(scores, key=lambda e: -abs(scores[e]))[:len(pm.edges)]
        assert set(top) == set(pm.edges), name
    assert all(a == 1.0 for a in aucs.values()), aucs


def test_acdc_recovers_planted_edges_and_is_faithful(planted):
    pm, batch = planted
    batch = batch.subset(slice(0, 8))
    c = acdc(pm.bridge, batch, threshold=0.02, progress=False)
    assert set(pm.edges) <= set(c.edges) and len(c.edges) <= len(pm.edges) + 2
    f = faithfulness(pm.bridge, batch, c)
    assert f.normalized > 0.9 and f.score == pytest.approx(c.score, abs=1e-4)
    curve = faithfulness_curve(pm.bridge, batch, eap(pm.bridge, batch), sizes=[0, len(pm.edges), 30])
    assert curve.normalized[0] < 0.1 and curve.normalized[1] > 0.9
