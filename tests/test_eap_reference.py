"""EAP and EAP-IG give today the scores of the implementation before the GPU rework (issue 18),
with and without chunking the prompts, and bfloat16 scores rank the edges like float32 ones."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))

import eap_reference  # noqa: E402
from shared.engine.eap import eap, eap_ig  # noqa: E402
from shared.errors import ParameterError  # noqa: E402


@pytest.fixture(scope="module")
def cases():
    return eap_reference.reference_cases()


@pytest.fixture(scope="module")
def reference():
    return json.loads(eap_reference.FIXTURE.read_text())


def _max_rel(got: dict, want: dict) -> float:
    assert got.keys() == want.keys()
    scale = max(abs(v) for v in want.values())
    return max(abs(got[k] - want[k]) for k in want) / scale


@pytest.mark.parametrize("chunk", [None, 4, 1])
def test_scores_equal_the_saved_reference(cases, reference, chunk):
    for name, bridge, batch in cases:
        want = reference[name]
        assert _max_rel(eap(bridge, batch, chunk=chunk), want["eap"]) <= 1e-5, name
        assert _max_rel(eap_ig(bridge, batch, steps=3, chunk=chunk), want["eap_ig_3"]) <= 1e-5, name
        assert _max_rel(eap(bridge, batch, ablation="mean", chunk=chunk), want["eap_mean"]) <= 1e-5, name


def test_a_changed_score_is_detected(cases, reference):
    name, bridge, batch = cases[0]
    got = eap(bridge, batch.subset(slice(0, 5)))  # one prompt fewer: the check must notice
    assert _max_rel(got, reference[name]["eap"]) > 1e-3


def test_parameters_keep_requiring_grad_and_chunk_is_checked(cases):
    _, bridge, batch = cases[1]
    before = [p.requires_grad for p in bridge.parameters()]
    eap(bridge, batch)
    assert [p.requires_grad for p in bridge.parameters()] == before
    with pytest.raises(ParameterError, match="chunk"):
        eap(bridge, batch, chunk=0)


def test_bfloat16_scores_rank_edges_like_float32(cases):
    name, bridge, batch = cases[0]
    ref = eap_ig(bridge, batch, steps=3)
    weights = {k: v.clone() for k, v in bridge.state_dict().items()}  # bfloat16 and back would round them
    low = bridge.to(torch.bfloat16)
    try:
        got = eap_ig(low, batch, steps=3, chunk=3)
    finally:
        bridge.to(torch.float32).load_state_dict(weights)
    keys = sorted(ref)
    a = torch.tensor([ref[k] for k in keys])
    b = torch.tensor([got[k] for k in keys])
    rank = lambda x: x.argsort().argsort().double()
    spearman = torch.corrcoef(torch.stack([rank(a), rank(b)]))[0, 1]
    assert spearman >= 0.99, float(spearman)


def test_layers_batched_in_groups_give_the_same_scores_and_groups_follow_kind_and_budget(cases, reference, monkeypatch):
    """The per-step work on the heads' gradients runs in groups of consecutive layers (fewer operators);
    one layer a group (a budget of one byte) gives the saved scores too. Groups break where the norm kind
    or epsilon changes, at a layer that is not deferred, and where the float32 gradients pass the budget."""
    from shared.engine.eap_gradients import LayerInputs, SummedGradients
    whole = SummedGradients.groups
    seen = []

    def one_layer_each(self, k, budget=1):
        seen.append(whole(self, k, budget))
        return seen[-1]
    monkeypatch.setattr(SummedGradients, "groups", one_layer_each)
    for name, bridge, batch in cases:
        assert _max_rel(eap_ig(bridge, batch, steps=3), reference[name]["eap_ig_3"]) <= 1e-5, name
    assert seen and all(len(g) == 1 for groups in seen for g in groups)
    monkeypatch.undo()
    Wt = torch.zeros(6, 4, 16)  # 3 x 2 heads of d_head 4, d_model 16: 6 * 4 * 4 bytes a position
    ln, ln_eps, other = torch.nn.LayerNorm(16), torch.nn.LayerNorm(16, eps=1e-3), torch.nn.Tanh()
    layers = [LayerInputs(ln, "layer", Wt, None), LayerInputs(ln, "layer", Wt, None),
              LayerInputs(ln_eps, "layer", Wt, None), LayerInputs(other, "other", Wt, None),
              LayerInputs(ln, "layer", Wt, None), LayerInputs(ln, "layer", Wt, None), LayerInputs(ln, "layer", Wt, None)]
    assert SummedGradients(layers).groups(k=10) == [[0, 1], [2], [4, 5, 6]]
    assert SummedGradients(layers).groups(k=10, budget=2 * 96 * 10) == [[0, 1], [2], [4, 5], [6]]
