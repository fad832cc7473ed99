"""Circuits over training (shared.chapters.training_circuits): the per-checkpoint circuit recovers the
planted greater-than circuit of shared.zoo.planted_gt, the checkpoint-to-checkpoint comparisons equal
hand-computed sets, a cached checkpoint result equals a fresh computation, and the findings page reads
the training chapters with their registered parameters."""
from __future__ import annotations

import pandas as pd
import pytest

from shared.chapters import training_circuits as tc
from shared.chapters import training_findings as tf
from shared.errors import ParameterError
from shared.tasks.greater_than import greater_than_metric
from shared.zoo.planted_gt import planted_gt_model
from shared.zoo.registry import load_model


def test_circuit_record_recovers_the_planted_greater_than_circuit():
    pm = planted_gt_model()
    gt = pm.batch(24, seed=0)
    record = tc.circuit_record(pm.bridge, gt.batch, 0.8, 5, greater_than_metric(gt.digits))
    # planted: the YY value enters a0.h0 through its value input, a0.h0 writes it for m1, m1 writes the logits
    assert set(record["edges"]) == {"input->a0.h0:v", "a0.h0->m1", "m1->logits"}
    assert record["k"] == 3 and record["reached"]
    assert set(record["nodes"]) == {"input", "a0.h0", "m1", "logits"}
    assert record["faithfulness"] == pytest.approx(1.0, abs=0.02)
    assert not any(pm.decoy in e for e in record["edges"])  # the decoy attends to YY but nothing reads it


def test_circuit_changes_against_hand_computed_sets():
    edges = [["a->b", "b->c"], ["a->b", "b->d", "d->e"], ["a->b", "b->d"]]
    nodes = [["a", "b", "c"], ["a", "b", "d", "e"], ["a", "b", "d"]]
    out = tc.circuit_changes([10, 20, 30], edges, nodes)
    assert out["edges"].tolist() == [2, 3, 2] and out["nodes"].tolist() == [3, 4, 3]
    # previous: {ab, bc} vs {ab, bd, de}: 1 shared of 4; {ab, bd, de} vs {ab, bd}: 2 of 3
    assert pd.isna(out["Jaccard previous"].iloc[0])
    assert out["Jaccard previous"].iloc[1:].tolist() == pytest.approx([1 / 4, 2 / 3])
    # final {ab, bd}: with {ab, bc} 1 of 3, with {ab, bd, de} 2 of 3, with itself 1
    assert out["Jaccard final"].tolist() == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert out["entered"].tolist() == [[], ["d", "e"], []]
    assert out["left"].tolist() == [[], ["c"], ["e"]]


def test_change_table_keeps_only_checkpoints_that_do_the_task():
    base = dict(size="s", seed=0, task="greater-than", faithfulness=0.9, reached=True)
    series = pd.DataFrame([
        {**base, "model": "m", "step": 0, "tokens": 0, "present": False, "edges": None, "nodes": None},
        {**base, "model": "m", "step": 8, "tokens": 80, "present": True, "edges": ["x->y"], "nodes": ["x", "y"]},
        {**base, "model": "m", "step": 4, "tokens": 40, "present": True, "edges": ["x->z"], "nodes": ["x", "z"]},
        {**base, "model": "m", "step": 8, "tokens": 80, "present": False, "task": "IOI", "edges": None,
         "nodes": None}])
    table = tc.change_table(series, "greater-than")
    assert table["step"].tolist() == [4, 8] and table["tokens"].tolist() == [40, 80]
    assert table["Jaccard previous"].iloc[1] == 0.0 and table["Jaccard final"].tolist() == [0.0, 1.0]
    assert table["entered"].tolist() == ["—", "y"] and table["left"].tolist() == ["—", "z"]
    assert tc.change_table(series, "IOI").empty


def test_visit_steps_adds_the_last_checkpoints():
    # 16 checkpoints; 3 spread ones are indices 0, 8 (7.5 rounds to even) and 15; the last 3 are 13..15
    assert tc.visit_steps("suite-s-s0", 3, 3) == [0, 200, 1200, 1400, 1600]
    assert tc.visit_steps("suite-s-s0", 2, 0) == [0, 1600]


def test_cached_checkpoint_circuits_equal_a_fresh_computation():
    # thresholds that every checkpoint passes, so that the circuit itself is computed and cached
    params = dict(template="dragged", n_prompts=8, seed=0, min_prob_diff=-1.0, min_gain=-1.0, min_logit_diff=0.0,
                  min_share_positive=0.0, target=0.8, ig_steps=2)
    cached = tc.circuits_at("suite-s-s0", 1600, **params)
    assert tc.circuits_at("suite-s-s0", 1600, **params) == cached
    fresh = tc.checkpoint_circuits(load_model("suite-s-s0", step=1600), **params)
    for task in tc.TASKS:
        assert cached[task]["present"] and fresh[task]["present"]
        assert cached[task]["circuit"]["edges"] == fresh[task]["circuit"]["edges"]
        assert cached[task]["circuit"]["faithfulness"] == pytest.approx(fresh[task]["circuit"]["faithfulness"],
                                                                         abs=1e-5)
        assert cached[task]["circuit"]["faithfulness"] >= 0.8 or not cached[task]["circuit"]["reached"]
    assert cached["greater-than"]["prob_diff"] == pytest.approx(fresh["greater-than"]["prob_diff"], abs=1e-6)
    assert cached["IOI"]["logit_diff"] == pytest.approx(fresh["IOI"]["logit_diff"], abs=1e-6)


def test_findings_read_the_training_chapters_registered_parameters():
    smoke = tf.sibling_parameters("training_circuits", "smoke")
    local = tf.sibling_parameters("training_circuits", "local")
    assert smoke["model_names"] == ["suite-s-s0"] and smoke["late_steps"] == 0 and smoke["n_prompts"] == 8
    assert local["model_names"][-1] == "suite-l-s0" and smoke["threshold"] == local["threshold"]
    assert tf.sibling_parameters("training_performance", "paper")["model_names"][0] == "pythia-70m"
    with pytest.raises(ParameterError, match="reads: of training_findings"):  # not in its build key: refused
        tf.sibling_parameters("model_suite", "local")


def test_consecutive_overlap_and_role_moves():
    base = dict(size="s", seed=0, task="greater-than", faithfulness=0.9, reached=True, present=True)
    series = pd.DataFrame([{**base, "model": "m", "step": s, "tokens": s, "edges": e, "nodes": ["x"]}
                           for s, e in ((1, ["a", "b"]), (2, ["a", "b", "c"]), (3, ["c"]))])
    assert tf.consecutive_overlap(series, "greater-than") == pytest.approx((1 / 3, 2 / 3))
    assert tf.consecutive_overlap(series.iloc[:1], "greater-than") is None
    summary = pd.DataFrame({"step": [1.0, None, 4.0], "best heads": [1, 0, 3]})
    assert tf.role_moves(summary) == (2, 1)
