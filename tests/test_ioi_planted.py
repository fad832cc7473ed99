"""The hand-set IOI model (shared.zoo.planted_ioi) solves its prompts, and the head classification of
shared.analysis.ioi recovers every planted head in its class and nothing else."""
from __future__ import annotations

import pytest
import torch

from shared.analysis.ioi import (IOIPositions, backup_name_movers, classify_ioi_heads, clean_logit_diff,
                                 induction_and_duplicate_heads, name_copy_scores, name_movers, s_inhibition_heads)
from shared.engine.batch import PromptBatch
from shared.errors import ParameterError
from shared.zoo.planted_ioi import planted_ioi_model


@pytest.fixture(scope="module")
def planted():
    pm = planted_ioi_model()
    batch, pos = pm.batch(32, seed=0)
    return pm, batch, pos


@pytest.fixture(scope="module")
def classes(planted):
    pm, batch, pos = planted
    return classify_ioi_heads(pm.bridge, batch, pos)


def test_planted_model_solves_ioi(planted):
    pm, batch, pos = planted
    with torch.no_grad():
        logits = pm.bridge(batch.clean)[torch.arange(len(batch)), pos.end]
    ld = logits.gather(1, batch.correct.view(-1, 1)) - logits.gather(1, batch.incorrect.view(-1, 1))
    assert (ld > 1.0).all(), ld.view(-1)
    assert (logits.argmax(-1) == batch.correct).all()
    assert {int(p) for p in pos.io} == {1, 3}  # both orders
    assert clean_logit_diff(pm.bridge, batch) == pytest.approx(float(ld.mean()), abs=1e-4)


def test_classification_recovers_planted_heads(planted, classes):
    pm, _, _ = planted
    assert classes.as_dict() == pm.classes
    for c in classes.classes().values():
        assert c.scores.index[c.scores["selected"]].tolist() == sorted(c.heads) and c.criteria and c.thresholds


def test_planted_heads_clear_the_thresholds_with_margin(planted, classes):
    """Each planted head is far above its thresholds and every other head far below."""
    nm = classes.name_movers.scores
    assert nm.loc["a3.h0", "relative"] > 0.5 and nm.loc["a3.h1", "relative"] < -0.2
    others = nm.drop(index=["a3.h0", "a3.h1", "a4.h0"])
    assert others["relative"].abs().max() < 0.05
    assert nm.loc["a3.h0", "copy"] > 0 > nm.loc["a3.h1", "copy"]
    assert classes.s_inhibition.scores.drop(index="a2.h0")["relative"].abs().max() < 1e-3
    up = classes.induction.scores
    assert up.loc[["a0.h1", "a1.h0"], "relative"].min() > 0.3
    assert up.drop(index=["a0.h1", "a1.h0"])["relative"].abs().max() < 1e-3
    assert up.loc["a1.h0", "s2→s1+1"] > 0.9 and up.loc["a0.h1", "s2→s1"] > 0.9
    prev = classes.previous_token.scores
    assert prev.loc["a0.h0", "s1+1→s1"] > 0.9 and prev.loc["a0.h0", "relative"] > 0.3
    backup = classes.backup_name_movers.scores
    assert backup.loc["a4.h0", "relative rise"] > 0.5
    assert backup.drop(index=["a4.h0", "a3.h0"])["relative rise"].abs().max() < 1e-3


@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_classification_is_stable_under_threshold_changes(planted, scale):
    pm, batch, pos = planted
    res = classify_ioi_heads(pm.bridge, batch, pos, min_effect=0.1 * scale, min_attention=0.2 * scale,
                             min_upstream_effect=0.05 * scale, min_rise=0.1 * scale)
    assert res.as_dict() == pm.classes


def test_ports_are_patched_separately(planted, classes):
    """The name mover's key does not read the S-inhibition head; its query does."""
    pm, batch, pos = planted
    kw = dict(attention=None, clean=classes.clean_logit_diff)
    by_key = s_inhibition_heads(pm.bridge, batch, pos, ["a3.h0"], ports=("k",), **kw)
    assert by_key.heads == [] and by_key.scores["relative"].abs().max() < 1e-3
    ind, dup = induction_and_duplicate_heads(pm.bridge, batch, pos, ["a2.h0"], ports=("q",), **kw)
    assert ind.heads == dup.heads == []


def test_no_corruption_means_no_classes(planted):
    pm, batch, pos = planted
    same = PromptBatch(batch.clean, batch.clean, batch.correct, batch.incorrect, batch.answer_pos)
    res = classify_ioi_heads(pm.bridge, same, pos)
    assert all(v == [] for v in res.as_dict().values())
    assert backup_name_movers(pm.bridge, same, []).heads == []


def test_positions_are_checked(planted):
    pm, batch, pos = planted
    bad = IOIPositions(io=pos.io, s1=pos.s2, s2=pos.s1, end=pos.end)
    with pytest.raises(ParameterError, match="S2"):
        name_movers(pm.bridge, batch, bad)
    with pytest.raises(ParameterError, match="end"):
        name_movers(pm.bridge, batch, IOIPositions(pos.io, pos.s1, pos.s2, pos.end + 5))


def test_copy_scores_read_the_weights(planted):
    pm, batch, _ = planted
    copy = name_copy_scores(pm.bridge, batch.correct)
    assert copy["a3.h0"] == pytest.approx(4.0) and copy["a3.h1"] == pytest.approx(-1.2)
    assert copy["a4.h0"] == pytest.approx(2.0) and copy["a0.h0"] == pytest.approx(0.0)


def test_classification_runs_on_a_layernorm_mlp_model_with_real_prompts():
    """Integration: tasks.ioi batches on the suite tokenizer, a random LN + MLP bridge (no IOI skill,
    so the individual steps, not the chain, which refuses a non-positive logit difference)."""
    from shared.tasks.ioi import ioi_batch
    from shared.zoo.registry import boot_native
    from shared.zoo.text.suite_corpus import suite_tokenizer

    tok = suite_tokenizer()
    b = ioi_batch(tok, "desk", n=4, corruption="abc")
    bridge = boot_native(dict(n_layers=2, d_model=32, n_heads=2, d_head=16, d_vocab=len(tok), n_ctx=64,
                              d_mlp=64, act_fn="gelu", normalization_type="LN", seed=0))
    nm, nnm = name_movers(bridge, b.batch, b.positions, clean=1.0)
    assert len(nm.scores) == 4 and {"direct", "copy", "end→io"} <= set(nm.scores.columns)
    assert torch.isfinite(torch.tensor(nm.scores["direct"].to_numpy())).all()
    si = s_inhibition_heads(bridge, b.batch, b.positions, ["a1.h0"], clean=1.0)
    assert si.scores.loc[["a1.h0", "a1.h1"], "to movers"].abs().max() == 0  # same layer: no edge
    if clean_logit_diff(bridge, b.batch) <= 0:
        with pytest.raises(ParameterError, match="logit difference"):
            classify_ioi_heads(bridge, b.batch, b.positions)
    else:
        assert set(classify_ioi_heads(bridge, b.batch, b.positions).as_dict()) >= {"name mover", "induction"}
