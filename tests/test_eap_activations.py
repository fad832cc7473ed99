"""EAP-IG over activations (shared/engine/eap_activations.py): its degenerate case is plain EAP, it is
exact where the model is linear in the senders, its group sums converge to the patched drop
(completeness) where plain EAP does not, and it ranks the planted edges first."""
from __future__ import annotations

import pytest
import torch

from shared.engine.ablation import ablation_values, node_mask, score_node_masks
from shared.engine.circuit import roc_auc
from shared.engine.eap import eap
from shared.engine.eap_activations import eap_ig_activations, sender_groups
from shared.engine.graph import Graph
from shared.engine.patching import path_patching
from shared.engine.batch import PromptBatch
from shared.errors import ParameterError
from shared.tasks.greater_than import gt_batch
from shared.zoo.planted import copy_first_model, induction_model
from shared.zoo.registry import boot_native, load_model


def _max_gap(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(abs(a[e] - b[e]) for e in a) / max(abs(v) for v in b.values())


@pytest.mark.parametrize("make", [induction_model, copy_first_model])
def test_one_step_is_plain_eap(make):
    pm = make(sharpness=12.0)
    batch = pm.batch(8, seed=1)
    assert _max_gap(eap_ig_activations(pm.bridge, batch, steps=1), eap(pm.bridge, batch)) < 1e-5
    mean = ablation_values(pm.bridge, batch, "mean")
    assert _max_gap(eap_ig_activations(pm.bridge, batch, steps=1, values=mean), eap(pm.bridge, batch, values=mean)) < 1e-5


def test_one_step_is_plain_eap_with_layer_norm_and_mlps():
    bridge = load_model("suite-s-s0")  # LayerNorm, MLPs, a real tokenizer
    batch = gt_batch(bridge, "dragged", 4).batch
    assert _max_gap(eap_ig_activations(bridge, batch, steps=1), eap(bridge, batch)) < 1e-5


def test_exact_on_a_model_linear_in_its_senders():
    # queries and keys are zero, so every head attends uniformly whatever the input: without
    # normalisation the logit difference is linear in every sender's output and the estimate is exact
    bridge = boot_native(dict(n_layers=3, d_model=32, n_heads=2, d_head=8, d_vocab=16, n_ctx=8, attn_only=True,
                              normalization_type=None, seed=3))
    with torch.no_grad():
        for name, p in bridge.original_model.named_parameters():
            name = name.replace("._original_component", "")
            if ".attn.q." in name or ".attn.k." in name:
                p.zero_()
            else:
                p.mul_(4.0)  # larger than the initialisation, so that edges move the metric
    g = torch.Generator().manual_seed(0)
    clean, corrupt = torch.randint(0, 16, (6, 8), generator=g), torch.randint(0, 16, (6, 8), generator=g)
    batch = PromptBatch(clean, corrupt, clean[:, 0], corrupt[:, 0])
    exact = path_patching(bridge, batch, progress=False)
    got = eap_ig_activations(bridge, batch, steps=3)
    assert max(abs(v) for v in exact.values()) > 0.1  # the edges do move the metric
    assert _max_gap(got, exact) < 1e-4, _max_gap(got, exact)


def test_group_sums_reach_the_patched_drop_where_eap_does_not():
    pm = induction_model(sharpness=12.0)  # saturated attention: first-order EAP misreads layer 0
    batch = pm.batch(16)
    graph = Graph.of(pm.bridge)
    values = ablation_values(pm.bridge, batch, "corrupt")
    none = torch.zeros(1, len(graph.components), dtype=torch.bool)
    full = float(score_node_masks(pm.bridge, batch, none, values)[0])
    drop = full - float(score_node_masks(pm.bridge, batch, node_mask(graph, graph.heads(0))[None], values)[0])
    layer0 = lambda scores: sum(v for e, v in scores.items() if e.split("->")[0] in graph.heads(0))  # noqa: E731
    sums = {s: layer0(eap_ig_activations(pm.bridge, batch, steps=s)) for s in (5, 50)}
    assert drop > 3.0
    assert abs(sums[50] - drop) < 0.02 * drop < abs(sums[5] - drop)  # the Riemann sum converges
    assert abs(layer0(eap(pm.bridge, batch)) - drop) > 0.9 * drop  # plain EAP sees almost nothing


@pytest.mark.parametrize("make", [induction_model, copy_first_model])
def test_recovers_the_planted_circuits(make):
    pm = make()
    batch = pm.batch(16)
    scores = eap_ig_activations(pm.bridge, batch, steps=5)
    assert roc_auc(scores, pm.edges) == 1.0
    assert set(scores) == set(Graph.of(pm.bridge).edges)


def test_groups_and_bad_steps():
    assert sender_groups(Graph(2, 4, has_mlp=True)) == [("input", 0), ("attn", 0), ("mlp", 0), ("attn", 1), ("mlp", 1)]
    assert sender_groups(Graph(1, 4, has_mlp=False)) == [("input", 0), ("attn", 0)]
    pm = induction_model()
    with pytest.raises(ParameterError, match="at least one step"):
        eap_ig_activations(pm.bridge, pm.batch(2), steps=0)
