"""The training series: component scores on hand-set heads, the emergence criteria on hand-made
series, the cached per-checkpoint results against a fresh computation, and the Pythia-revision path
on local GPT-NeoX folders."""
from __future__ import annotations

import random

import pandas as pd
import pytest
import torch

from shared.analysis import components as comp
from shared.analysis.ov import OrdinalList
from shared.chapters import training as tr
from shared.engine.graph import Graph
from shared.errors import ModelUnavailableError, ParameterError
from shared.zoo.planted_ioi import BOS, NAMES, planted_ioi_model
from shared.zoo.registry import boot_native, load_model

PLANTED_ROLES = {"previous-token": "a0.h0", "duplicate-token": "a0.h1", "induction": "a1.h0",
                 "S-inhibition": "a2.h0", "name mover": "a3.h0", "copy suppression": "a3.h1"}


@pytest.fixture(scope="module")
def planted_scores() -> tuple[pd.DataFrame, list[str]]:
    planted = planted_ioi_model()
    batch, positions = planted.batch(16, seed=0)
    rng = random.Random(0)
    repeated = [[BOS] + names + names for names in (rng.sample(NAMES, 4) for _ in range(16))]
    probes = comp.ComponentProbes(torch.tensor(repeated), 4, [(batch.clean, positions)], torch.tensor(NAMES),
                                  {"names": OrdinalList(torch.tensor(NAMES))})
    built = {h for heads in planted.classes.values() for h in heads}
    return comp.component_scores(planted.bridge, probes), [h for h in Graph.of(planted.bridge).heads() if h not in built]


@pytest.mark.parametrize("role", list(PLANTED_ROLES))
def test_each_role_score_is_one_on_its_planted_head_and_low_on_noise_heads(planted_scores, role):
    scores, noise = planted_scores
    head = PLANTED_ROLES[role]
    assert scores.loc[head, role] > 0.9
    assert scores[role].idxmax() == head
    # noise heads attend about evenly over the few earlier positions (<= 1/4 on a diagonal) and copy no name
    assert scores.loc[noise, role].max() < 0.35


def test_planted_heads_score_low_on_the_roles_they_were_not_built_for(planted_scores):
    scores, _ = planted_scores
    assert scores.loc["a3.h0", "copy suppression"] < 0.05 and scores.loc["a3.h1", "name mover"] < 0.05
    assert scores.loc["a2.h0", "name mover"] < 0.05 and scores.loc["a3.h0", "S-inhibition"] < 0.05
    assert scores.loc["a0.h0", "induction"] < 0.05 and scores.loc["a1.h0", "previous-token"] < 0.05


@pytest.fixture(scope="module")
def ov_model():
    """1 layer, no LayerNorm, identity embed/unembed; OV of head 0 = shift (i -> i+1), head 1 = identity,
    head 2 = minus identity, head 3 = random."""
    V = 12
    cfg = dict(n_layers=1, n_heads=4, d_model=V, d_head=V, n_ctx=8, d_vocab=V, attn_only=True,
               normalization_type=None, positional_embedding_type="standard", act_fn="relu", seed=0)
    bridge = boot_native(cfg)
    eye, shift = torch.eye(V), torch.diag(torch.ones(V - 1), 1)
    noise = torch.randn(V, V, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        for name, p in bridge.original_model.named_parameters():
            if name.endswith("tok_embed._original_component.weight") or name.endswith("head._original_component.weight"):
                p.copy_(eye)
            elif ".v._original_component.weight" in name:
                p.copy_(torch.cat([eye] * 4))
            elif ".o._original_component.weight" in name:
                p.copy_(torch.cat([shift.T, eye.T, -eye.T, noise.T], dim=1))
    assert torch.allclose(bridge.W_O[0, 0], shift) and torch.allclose(bridge.W_O[0, 3], noise)
    return bridge


def test_successor_and_name_ov_scores_of_hand_set_ov(ov_model):
    ids = torch.arange(1, 11)
    succ = comp.ov_score_table(ov_model, {"list": OrdinalList(ids)})["successor_mean"]
    assert succ["a0.h0"] == 1.0 and succ["a0.h1"] == 0.0 and succ["a0.h3"] < 0.35
    shares = comp.name_ov_shares(ov_model, ids)
    assert shares.loc["a0.h1"].tolist() == [1.0, 0.0]      # identity: copies every name
    assert shares.loc["a0.h2"].tolist() == [0.0, 1.0]      # minus identity: suppresses every name
    assert shares.loc["a0.h0", "copy"] == 0.0 and shares.loc["a0.h3"].max() < 0.35


def _series(values: dict[str, list[float]], metric: str = "m") -> pd.DataFrame:
    steps = [0, 2, 4, 8, 200]
    rows = [dict(model=name, size=name[0], seed=0, step=s, tokens=s * 100, **{metric: v})
            for name, vs in values.items() for s, v in zip(steps, vs)]
    return pd.DataFrame(rows)


def test_emergence_places_only_abilities_that_are_present():
    series = _series({"a": [0.0, 0.1, 0.6, 0.9, 1.0], "b": [0.0, 0.0, 0.0, 0.55, 1.2], "c": [0.0, 0.2, 0.3, 0.3, 0.4]})
    table = tr.emergence(series, "m", present=0.8, fraction=0.5)
    assert table.loc["a", "present"] and table.loc["a", "step"] == 4 and table.loc["a", "tokens"] == 400
    assert table.loc["b", "step"] == 200                     # 0.55 at step 8 is short of 0.6, half of 1.2
    assert not table.loc["c", "present"] and pd.isna(table.loc["c", "step"])   # 0.4 < 0.8: absent, not placed
    assert tr.spread_factor(table) == pytest.approx(20000 / 400)
    icl = tr.emergence(_series({"a": [0.1, 0.0, -0.5, -0.9, -1.0]}, "icl_score"), "icl_score", -0.2, 0.5)
    assert icl.loc["a", "present"] and icl.loc["a", "step"] == 4   # lower is better: -0.5 <= 0.1 - 0.55


def test_role_summary_counts_moves_and_heads_above():
    rows = []
    scores = {0: (0.0, 0.1, 0.0), 2: (0.5, 0.1, 0.0), 4: (0.6, 0.2, 0.5), 8: (0.3, 0.7, 0.6)}
    for step, values in scores.items():
        rows += [dict(model="x", size="s", seed=0, step=step, tokens=step * 10, role="induction", head=h, score=v)
                 for h, v in zip(("a0.h0", "a0.h1", "a1.h0"), values)]
    components = pd.DataFrame(rows)
    row = tr.role_summary(components, 0.4).loc[("x", "induction")]
    assert row["step"] == 2 and row["tokens"] == 20 and row["best head"] == "a0.h1"
    assert row["best heads"] == 2 and row["heads above"] == 2
    counts = tr.heads_above(components, 0.4)
    assert counts.sort_values("step")["above"].tolist() == [0, 1, 2, 2]
    assert pd.isna(tr.role_summary(components, 0.9).loc[("x", "induction"), "step"])


def test_checkpoint_selection_and_tokens():
    steps = tr.series_steps("suite-s-s0")
    assert steps[:4] == [0, 2, 4, 8] and steps[-1] == 1600 and len(steps) == 16
    assert tr.series_steps("suite-s-s0", 2) == [0, 1600] and tr.spread(steps, 3) == [0, steps[8], 1600]
    assert tr.tokens_seen("suite-s-s0", 200) == 200 * 32 * 128
    assert tr.model_family("suite-m-s1") == ("m", 1) and tr.model_family("pythia-160m-seed1") == ("pythia-160m", 1)
    with pytest.raises(ParameterError, match="model_names"):
        tr.check_series_models(["gpt2-small"])


def test_cached_checkpoint_results_equal_a_fresh_computation():
    params = dict(n_prompts=4, seq_len=8, n_repeated=4, seed=0)
    cached = tr.components_at("suite-s-s0", 2, **params)
    again = tr.components_at("suite-s-s0", 2, **params)       # read back from the results cache
    model = load_model("suite-s-s0", step=2)
    fresh = comp.component_scores(model, tr.component_probes(model, **params))
    assert again == cached
    for role in comp.ROLES:
        assert cached[role] == pytest.approx(fresh[role].to_dict(), abs=1e-6)
    perf_params = dict(n_prompts=4, n_windows=2, early_pos=5, late_pos=100, seed=0)
    perf = tr.performance_at("suite-s-s0", 2, **perf_params)
    direct = tr.performance(model, **perf_params)
    assert perf.pop("induction_head") == direct.pop("induction_head")
    assert perf == pytest.approx(direct, abs=1e-6)
    other = tr.performance_at("suite-s-s0", 0, **perf_params)   # another checkpoint is another entry
    assert other["loss"] != pytest.approx(perf["loss"])
    series = tr.performance_series(["suite-s-s0"], 2, progress=False, **perf_params)
    assert series["step"].tolist() == [0, 1600] and series["tokens"].tolist() == [0, 1600 * 32 * 128]
    assert series["gt_gain"].tolist() == pytest.approx((series["gt_prob_diff"] - series["gt_control"]).tolist(),
                                                       abs=1e-9)  # one set of prompts
    assert list(tr.METRICS).index("gt_gain") == list(tr.METRICS).index("gt_prob_diff") + 1


@pytest.fixture
def pythia_mirror(tmp_path, monkeypatch):
    """Two tiny GPT-NeoX folders with the suite's tokenizer saved as revisions step0 and step143000 of
    pythia-70m, and an empty results cache."""
    from hf_local import make_tiny_hf_model
    from shared.zoo.text.suite_corpus import suite_tokenizer

    tok = suite_tokenizer()
    root = tmp_path / "revisions"
    for seed, revision in enumerate(("step0", "step143000")):
        make_tiny_hf_model("neox", root / "EleutherAI" / "pythia-70m" / revision, tok, n_ctx=128, seed=seed)
    monkeypatch.setenv("CIRCUITS_BOOK_HF_REVISIONS", str(root))
    monkeypatch.setenv("CIRCUITS_BOOK_CACHE", str(tmp_path / "cache"))
    return root


def test_pythia_revisions_from_local_gpt_neox_folders(pythia_mirror):
    first, last = load_model("pythia-70m", step=0), load_model("pythia-70m", step=1600)
    assert "revision step0" in first.book_model_description and "step143000" in last.book_model_description
    assert not torch.allclose(first.W_E, last.W_E)
    assert tr.series_steps("pythia-70m", 2) == [0, 1600]
    assert tr.tokens_seen("pythia-70m", 1600) == 143_000 * 1024 * 2048
    components = tr.component_series(["pythia-70m"], 2, progress=False, n_prompts=4, seq_len=8, n_repeated=4, seed=0)
    assert set(components["step"]) == {0, 1600} and components["head"].nunique() == first.cfg.n_layers * first.cfg.n_heads
    assert set(components["role"]) == set(comp.ROLES) and components["score"].between(0, 1).all()
    performance = tr.performance_series(["pythia-70m"], 2, progress=False, n_prompts=4, n_windows=2, early_pos=5,
                                        late_pos=100, seed=0)
    assert performance["tokens"].tolist() == [0, 143_000 * 2_097_152] and performance["loss"].notna().all()


def test_a_missing_pythia_revision_names_the_parameter(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("CIRCUITS_BOOK_HF_REVISIONS", str(tmp_path))
    monkeypatch.setenv("CIRCUITS_BOOK_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelUnavailableError, match="`model_names`"):
        tr.components_at("pythia-70m", 400, n_prompts=4, seq_len=8, n_repeated=4, seed=0)
