"""Toy list tasks (find-min, find-median): generator correctness, held-out split, training to the bar,
shipped models, and the readings the chapters rest on."""
from __future__ import annotations

import pytest
import torch

from shared.analysis.answer import accuracy, answer_accuracy, direct_logit_attribution
from shared.chapters import lists as chapter
from shared.engine.ablation import mean_values, node_mask, score_node_masks
from shared.engine.graph import Graph
from shared.errors import ParameterError
from shared.tasks import lists as alg
from shared.zoo.lists import algorithmic_spec
from shared.zoo.registry import load_model, local_model_dir, local_models, model_metrics


@pytest.mark.parametrize("task", alg.TASKS)
@pytest.mark.parametrize("repeats", [False, True])
def test_generator_matches_brute_force(task: str, repeats: bool) -> None:
    data = alg.make_data(task, 12, 400, range(2, 9), "any", repeats=repeats, seed=3)
    for i in range(len(data)):
        values = data.values(i)
        L = int(data.lengths[i])
        assert len(values) == L and all(0 <= v < 12 for v in values)
        if not repeats:
            assert len(set(values)) == L
        expected = min(values) if task == "min" else sorted(values)[(L - 1) // 2]
        assert int(data.answers[i]) == expected == alg.reference_answer(task, values)
        assert int(data.tokens[i, L]) == data.sep and int(data.tokens[i, L + 1]) == expected
        assert (data.tokens[i, L + 2:] == data.V + 1).all()
    # the training mask selects exactly the prediction made at SEP
    mask = data.mask()
    assert mask.sum(1).eq(1).all() and (mask.float().argmax(1) == data.lengths).all()


def test_median_rule_by_hand() -> None:
    assert alg.reference_answer("median", [5, 1, 3]) == 3
    assert alg.reference_answer("median", [4, 1, 3, 2]) == 2  # lower median for even lengths
    assert alg.reference_answer("min", [4, 1, 3, 2]) == 1


def test_split_is_disjoint_by_multiset() -> None:
    kw = dict(task="min", V=10, count=1500, lengths=range(2, 6), repeats=False)
    train = alg.make_data(split="train", seed=1, **kw)
    test = alg.make_data(split="test", seed=2, **kw)
    key = lambda d, i: tuple(sorted(d.values(i)))  # noqa: E731
    held = {key(test, i) for i in range(len(test))}
    assert not any(key(train, i) in held for i in range(len(train)))
    # a permutation of a test list is still a test list
    perm = test.tokens.clone()
    for i in range(len(test)):
        L = int(test.lengths[i])
        perm[i, :L] = perm[i, torch.randperm(L)]
    assert alg.split_of(perm, test.lengths, 10).all()
    # the held-out share is roughly TEST_FRACTION
    share = float(alg.split_of(*(lambda d: (d.tokens, d.lengths))(
        alg.make_data("min", 64, 4000, 8, "any", seed=5)), 64).float().mean())
    assert abs(share - alg.TEST_FRACTION) < 0.04


def test_bad_parameters_raise() -> None:
    with pytest.raises(ParameterError, match="Unknown task"):
        alg.make_data("max", 10, 5, 4)
    with pytest.raises(ParameterError, match="at least 2"):
        alg.make_data("min", 10, 5, 1)
    with pytest.raises(ParameterError, match="V >= 8"):
        alg.make_data("median", 5, 5, 8)
    only = alg.split_of(torch.tensor([[0, 1, 2]]), torch.tensor([3]), 3)  # the single multiset of 3 from 3
    with pytest.raises(ParameterError, match="too few"):
        alg.make_data("min", 3, 50, 3, "train" if bool(only) else "test")


def test_median_edits_follow_rank_rule() -> None:
    data = alg.make_data("median", 20, 200, [5, 6, 7], "any", seed=4)
    for kind, shift in (("low_to_high", 1), ("high_to_low", -1), ("same_side", 0)):
        edited, predicted, idx = alg.median_edits(data, kind, seed=0)
        assert len(idx) > 100
        for j, i in enumerate(idx.tolist()):
            new = edited.values(j)
            assert alg.reference_answer("median", new) == int(predicted[j])
            old = sorted(data.values(i))
            m = (len(old) - 1) // 2
            assert int(predicted[j]) == old[m + shift]
            assert sum(a != b for a, b in zip(new, data.values(i))) == 1


def test_tiny_model_trains_to_the_bar(tmp_path, monkeypatch) -> None:
    """CI-sized training run: find-min over 2..5 values from 0..15, 1 layer, attention only."""
    monkeypatch.setenv("CIRCUITS_BOOK_CACHE", str(tmp_path))
    spec = algorithmic_spec("test-min-tiny", "min", n=5, V=16, n_layers=1, attn_only=True, n_heads=1,
                            steps=500, batch_size=128)
    monkeypatch.setitem(local_models(), "test-min-tiny", spec)  # registered for this test only
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the budget is for one CPU thread
    try:
        model = load_model("test-min-tiny")
    finally:
        torch.set_num_threads(threads)
    acc = accuracy(model, alg.test_set(spec.recipe, count=1000).prompts())
    assert acc >= 0.99
    assert model_metrics("test-min-tiny")["train_seconds"] < 60
    assert any((tmp_path / "models").glob("test-min-tiny-*/model.safetensors"))


SHIPPED = ["min-1l-attn", "min-2l-mlp", "median-1l-mlp", "median-2l-mlp"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_meet_the_bar(name: str) -> None:
    spec = local_models()[name]
    model = load_model(name)
    data = alg.test_set(spec.recipe, count=2000)
    assert accuracy(model, data.prompts()) >= 0.99
    size = sum(p.stat().st_size for p in local_model_dir(name).rglob("*") if p.is_file())
    assert size < 2_000_000


def test_dla_adds_up_and_min_head_is_monotone() -> None:
    model = load_model("min-1l-attn")
    data = alg.test_set(local_models()["min-1l-attn"].recipe, count=300)
    dla = direct_logit_attribution(model, data.prompts(), n_values=data.V)  # raises if the parts do not add up
    assert dla["a0.h0"] == dla.max()
    s = chapter.circuit_summary(model, data)
    assert s.deciding_head == "a0.h0" and s.knockout.as_dict()["a0.h0"] > 0.5
    assert s.qk_monotonicity.spearman < -0.9
    assert s.attention_on_answer[0, 0] > 0.8
    assert s.ov_diagonal_share > 0.9


def test_mean_ablation_on_the_engine_matches_a_hook() -> None:
    """Accuracy with a group of heads mean-ablated through the engine equals the same ablation done by
    hand with a hook that writes the per-position mean of ``hook_z`` over the same lists."""
    model = load_model("median-2l-mlp")
    data = alg.test_set(local_models()["median-2l-mlp"].recipe, count=300)
    graph = Graph.of(model)
    means = mean_values(model, data.tokens, per_position=True)
    engine = score_node_masks(model, data.prompts(), node_mask(graph, graph.heads(0)), means, answer_accuracy)
    _, cache = model.run_with_cache(data.tokens, names_filter="blocks.0.attn.hook_z")
    mean = cache["blocks.0.attn.hook_z"].mean(0)

    def hook(act, hook=None):
        return mean[: act.shape[1]].expand_as(act)

    by_hand = accuracy(model, data.prompts(), fwd_hooks=[("blocks.0.attn.hook_z", hook)])
    assert abs(float(engine[0]) - by_hand) < 1e-6


def test_median_mechanism_interventions() -> None:
    model = load_model("median-2l-mlp")
    data = alg.test_set(local_models()["median-2l-mlp"].recipe, count=300)
    edits = chapter.edit_intervention(model, data)
    assert (edits["model = rule prediction"] > 0.95).all()
    patch = chapter.sep_patching(model, data)
    assert patch.loc["SEP", "= edited median"] > 0.9
    assert patch.loc["list positions", "= clean median"] > 0.9


def test_median_sep_encodes_histogram() -> None:
    model = load_model("median-2l-mlp")
    data = alg.test_set(local_models()["median-2l-mlp"].recipe, count=1000)
    assert chapter.cdf_probe(model, data, "blocks.0.hook_attn_out") > 0.9
    assert chapter.cdf_probe(model, data, "hook_pos_embed") < 0.1


def test_median_last_layer_heads_carry_the_value() -> None:
    model = load_model("median-2l-mlp")
    data = alg.test_set(local_models()["median-2l-mlp"].recipe, count=300)
    readout = chapter.sep_patching(model, data, hook="blocks.1.hook_attn_out")
    assert readout.loc["SEP", "= edited median"] > 0.85
