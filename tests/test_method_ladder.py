"""The difficulty ladder of planted circuits: each knob does what it says, and the measured facts of
issue 16 (plain EAP loses the induction circuit when attention saturates, exact patching does not)."""
from __future__ import annotations

import pytest
import torch

from shared.chapters.method_comparison import PER_EDGE, accuracy, greater_than_case, ioi_case, run_ladder, run_tasks
from shared.engine.circuit import roc_auc
from shared.engine.eap import eap, eap_ig
from shared.engine.patching import path_patching
from shared.engine.runs import record
from shared.plots.circuits import method_curves, method_ladder
from shared.zoo.planted import induction_model
from shared.zoo.registry import load_model


def _aucs(pm, batch):
    return {"exact": roc_auc(path_patching(pm.bridge, batch, progress=False), pm.edges),
            "eap": roc_auc(eap(pm.bridge, batch), pm.edges),
            "eap_ig": roc_auc(eap_ig(pm.bridge, batch, steps=5), pm.edges)}


def test_default_induction_model_is_unchanged_by_the_new_knobs():
    a, b = induction_model(), induction_model(distractor=0.0, backup=0.0)
    batch = a.batch(4)
    assert torch.equal(a.bridge(batch.clean), b.bridge(batch.clean)) and a.edges == b.edges


def test_linear_attribution_fails_as_attention_saturates():
    aucs = {}
    for s in (4.0, 8.0, 10.0, 12.0, 16.0):
        pm = induction_model(sharpness=s)
        batch = pm.batch(32, seed=0)
        assert accuracy(pm, batch) == 1.0
        aucs[s] = _aucs(pm, batch)
    assert all(a["exact"] == 1.0 for a in aucs.values()), aucs
    assert aucs[4.0]["eap"] == aucs[8.0]["eap"] == 1.0
    assert 0.85 < aucs[10.0]["eap"] < 0.95 and aucs[12.0]["eap"] < 0.85 and aucs[16.0]["eap"] < 0.85
    assert aucs[10.0]["eap_ig"] == 1.0 and aucs[12.0]["eap_ig"] > 0.9 > aucs[12.0]["eap"] + 0.05
    blunt = induction_model(sharpness=2.0)  # too soft to do the task: the chapter skips this rung
    assert accuracy(blunt, blunt.batch(32, seed=0)) < 0.9


def test_distractor_is_large_but_barely_moves_the_logit_difference():
    pm = induction_model(distractor=2.0)
    batch = pm.batch(16)
    acts = record(pm.bridge, batch.clean)
    z = acts.z[1]  # [n, pos, heads, d_head]
    norms = z.norm(dim=-1).mean((0, 1))
    assert norms[3] > 0.5 * norms[0]  # the distractor head is as active as the induction head
    effects = path_patching(pm.bridge, batch, edges=["a1.h3->logits", "a1.h0->logits"], progress=False)
    # only the softmax's small leak to earlier tokens (one of them the answer) reaches the logit difference
    assert abs(effects["a1.h3->logits"]) < 0.01 * effects["a1.h0->logits"]
    assert accuracy(pm, batch) == 1.0


def test_backup_head_carries_its_share():
    pm = induction_model(backup=0.25)
    batch = pm.batch(16)
    assert "a1.h1" in pm.nodes and "a1.h1->logits" in pm.edges and len(pm.edges) == 9
    effects = path_patching(pm.bridge, batch, edges=["a1.h0->logits", "a1.h1->logits"], progress=False)
    assert effects["a1.h1->logits"] / effects["a1.h0->logits"] == pytest.approx(0.25 / 0.75, rel=1e-3)
    with pytest.raises(Exception, match="backup must be in"):
        induction_model(backup=1.0)


def test_run_ladder_scores_every_method_and_skips_models_without_the_behaviour():
    rows, skipped = run_ladder({"sharpness": [2.0, 12.0]}, 8, progress=False, ig_steps=2, mask_steps=20)
    assert skipped["value"].tolist() == [2.0] and skipped["accuracy"].iloc[0] < 0.9
    assert len(rows) == 6 and set(rows["value"]) == {12.0}
    by = rows.set_index("method")
    assert by.loc["exact path patching", "ROC AUC"] == 1.0 and by.loc["EAP", "ROC AUC"] < 0.9
    assert (rows["f@100%"] == 1.0).all() and (rows["f@0.1%"] == 0.0).all()  # 0 edges kept at 0.1 % of 81
    assert ((rows["CPR"] > 0) & (rows["CPR"] <= 1.2) & (rows["CMD"] >= 0)).all()
    fig = method_ladder(rows)
    assert len(fig.axes) == 2 and len(fig.legends[0].get_texts()) == 6


def test_suite_tasks_greater_than_on_the_model_and_ioi_on_the_planted_control():
    bridge = load_model("suite-l-s0")
    gt = greater_than_case(bridge, "suite-l-s0", "dragged", 8, 0, min_prob_diff=0.1, min_gain=0.05)
    assert gt.ok and gt.behaviour["gain"] > 0.05 and gt.metric is not None
    strict = greater_than_case(bridge, "suite-l-s0", "dragged", 8, 0, min_prob_diff=0.1, min_gain=0.9)
    assert not strict.ok  # the verdict follows the thresholds
    ioi = ioi_case(bridge, "suite-l-s0", 8, 0, min_logit_diff=1.0, min_share_positive=0.8)
    # the suite model does not do IOI, so the planted control stands in, and it does
    assert not ioi.behaviour["model does IOI"] and ioi.model == "planted (control)" and ioi.ok
    assert ioi.behaviour["control logit diff"] > 1.0 and ioi.bridge.cfg.n_layers == 5
    rows, left = run_tasks([gt, ioi, strict], max_per_edge=500, progress=False, ig_steps=2, mask_steps=10)
    # per-edge methods run on greater-than (479 edges), not on the planted IOI model (561); strict is skipped
    assert list(left["method"]) == list(PER_EDGE) and set(left["task"]) == {"IOI"} and set(left["edges"]) == {561}
    assert len(rows[rows["task"] == "greater-than"]) == 6 and len(rows[rows["task"] == "IOI"]) == 4
    assert ((rows["f@100%"] - 1).abs() < 1e-4).all() and (rows["f@0.1%"] == 0.0).all()  # all edges / none kept
    assert ((rows["CMD"] >= 0) & (rows["forward passes"] > 0)).all() and rows["ROC AUC"].isna().all()
    fig = method_curves(rows)
    assert len(fig.axes) == 2 and len(fig.legends[0].get_texts()) == 6
