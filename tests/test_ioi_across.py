"""The pieces of the ``ioi_across_models`` chapter on models whose answer is known: the IOI algorithm
test says yes on the planted model and no when one link is cut, the EAP-IG circuit at 80% keeps the
planted links, Jaccard overlaps match hand-computed sets, and the controls are what they claim."""
from __future__ import annotations

import huggingface_hub
import pytest
import yaml

from shared.analysis.ioi import classify_ioi_heads
from shared.analysis.ioi_algorithm import ioi_algorithm
from shared.chapters import ioi_across as ia
from shared.engine.ablation import ablation_values
from shared.engine.circuit import Circuit, faithfulness_curve, smallest_faithful_circuit
from shared.engine.eap import eap_ig
from shared.engine.patching import path_patching
from shared.errors import ModelUnavailableError, ParameterError
from shared.paths import REPO_ROOT
from shared.zoo.planted_ioi import CONTROLS, MOVED, ioi_control, planted_ioi_model

CUT = "induction / duplicate token → S-inhibition (v)"


@pytest.fixture(scope="module")
def planted():
    pm = ioi_control("planted")
    return (pm, *pm.batch(16, seed=0))


@pytest.fixture(scope="module")
def cut():
    pm = ioi_control("planted-cut")
    return (pm, *pm.batch(16, seed=0))


def test_algorithm_holds_on_planted_model(planted):
    pm, batch, pos = planted
    result = ioi_algorithm(pm.bridge, batch, pos, pm.classes, min_effect=0.1, min_upstream_effect=0.05)
    assert result.uses_algorithm and result.missing == []
    links = result.links
    assert links["holds"].all() and (links["relative"] > 0.5).all(), links
    assert links.loc[CUT, "senders"] == "a1.h0, a0.h1" and links.loc[CUT, "edges"] == 2
    # a one-edge link is that edge's path-patching effect, measured on its own
    alone = path_patching(pm.bridge, batch, ["a3.h0->logits"], progress=False)["a3.h0->logits"]
    assert links.loc["name mover → logits", "effect"] == pytest.approx(alone, abs=1e-4)
    assert result.clean_logit_diff > 1.0


def test_algorithm_fails_when_a_link_is_cut(cut):
    pm, batch, pos = cut
    # the planted heads are all there; only the link into the S-inhibition values is gone
    result = ioi_algorithm(pm.bridge, batch, pos, pm.classes, min_effect=0.1, min_upstream_effect=0.05)
    links = result.links
    assert result.clean_logit_diff > 1.0, "the cut control must still do IOI"
    assert links.loc[CUT, "edges"] == 2 and abs(links.loc[CUT, "relative"]) < 0.01
    others = links[links["required"]].drop(index=CUT)
    assert others["holds"].all(), "every other required link holds, so only the link check can say no"
    assert not result.uses_algorithm and result.missing == [CUT]


def test_algorithm_missing_class_and_threshold(planted):
    pm, batch, pos = planted
    no_induction = {**pm.classes, "induction": [], "duplicate token": []}
    result = ioi_algorithm(pm.bridge, batch, pos, no_induction)
    assert result.missing == [CUT] and result.links.loc[CUT, "edges"] == 0
    strict = ioi_algorithm(pm.bridge, batch, pos, pm.classes, min_effect=5.0)  # above every link's effect
    assert not strict.uses_algorithm and set(strict.missing) == {"name mover → logits", "S-inhibition → name mover (q)"}


def test_eap_ig_circuit_keeps_planted_links(planted):
    pm, batch, _ = planted
    result = ia.edge_circuit(pm.bridge, batch, target=0.8, ig_steps=5)
    info = result.circuit.info
    assert info["reached"] and info["normalized"] >= 0.8
    assert result.faith.normalized == pytest.approx(info["normalized"], abs=1e-4)  # re-measured by patching
    planted_links = ["a0.h0->a1.h0:k", "a1.h0->a2.h0:v", "a0.h1->a2.h0:v", "a2.h0->a3.h0:q", "a3.h0->logits"]
    assert set(planted_links) <= set(result.circuit.edges), sorted(result.circuit.edges)
    assert info["k"] == len(result.circuit.edges) < result.n_edges / 10
    assert set(pm.classes["name mover"] + pm.classes["S-inhibition"]) <= set(result.heads)
    # no scanned size below k reaches the target (every size is checked in the next test)
    assert all(f < 0.8 for k, f in zip(result.curve.sizes, result.curve.normalized) if k < info["k"])

def test_smallest_circuit_is_smallest_on_every_size(planted):
    pm, batch, _ = planted
    values = ablation_values(pm.bridge, batch, "corrupt")
    scores = eap_ig(pm.bridge, batch, steps=3, values=values)
    circuit, _ = smallest_faithful_circuit(pm.bridge, batch, scores, 0.8, values=values)
    k = circuit.info["k"]
    every = faithfulness_curve(pm.bridge, batch, scores, list(range(1, k + 1)), values=values)
    reach = [s for s, f in zip(every.sizes, every.normalized) if f >= 0.8]
    assert reach[0] == k, (k, reach)
    with pytest.raises(ParameterError, match="faithfulness target"):
        smallest_faithful_circuit(pm.bridge, batch, scores, 1.5, values=values)


def _edge_circuit(edges):
    return ia.EdgeCircuit(Circuit.from_edges(edges), None, None, 100)


def test_jaccard_against_hand_computed_sets():
    a = _edge_circuit(["a0.h0->a1.h0:k", "a1.h0->logits"])
    b = _edge_circuit(["a1.h0->logits", "a0.h1->logits"])
    c = _edge_circuit(["input->a0.h0:q", "a0.h0->a2.h1:v"])
    assert a.heads == ["a0.h0", "a1.h0"] and c.heads == ["a0.h0", "a2.h1"]  # input and logits are not heads
    edges, heads = ia.overlaps({"a": a, "b": b, "c": c})
    assert edges.loc["a", "b"] == pytest.approx(1 / 3)  # {a1.h0->logits} of 3 edges
    assert edges.loc["a", "c"] == 0.0 and edges.loc["b", "c"] == 0.0
    assert heads.loc["a", "b"] == pytest.approx(1 / 3)  # {a1.h0} of {a0.h0, a1.h0, a0.h1}
    assert heads.loc["a", "c"] == pytest.approx(1 / 3)  # {a0.h0} of {a0.h0, a1.h0, a2.h1}
    assert heads.loc["b", "c"] == 0.0
    assert (edges.values.diagonal() == 1).all() and (edges == edges.T).all().all()


def test_moved_control_is_recovered_in_its_new_heads():
    pm = ioi_control("planted-moved")
    batch, pos = pm.batch(16, seed=0)
    assert pm.bridge.cfg.n_layers == 6
    assert pm.classes == {c: [f"a{l}.h{h}"] for c, (l, h) in MOVED.items()}
    found = classify_ioi_heads(pm.bridge, batch, pos).as_dict()
    assert found == {c: pm.classes[c] for c in found}
    assert ioi_algorithm(pm.bridge, batch, pos, found).uses_algorithm


def test_controls_and_registry_agree_and_bad_placements_stop():
    registry = yaml.safe_load((REPO_ROOT / "notebooks" / "chapters.yml").read_text())
    entry = next(c for c in registry["chapters"] if c.get("name") == "ioi_across_models")
    assert entry["types"]["controls"]["choices"] == list(CONTROLS)
    assert entry["params"]["local"]["controls"] == list(CONTROLS)
    with pytest.raises(ParameterError, match="after the classes it reads"):
        planted_ioi_model(placement={**MOVED, "S-inhibition": (1, 3)}, n_layers=6)
    with pytest.raises(ParameterError, match="Unknown IOI control"):
        ioi_control("planted-nothing")


def test_paper_model_offline_names_the_parameter(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelUnavailableError, match="`model_names`") as err:
        ia.load_subjects(["gpt2-small"], [])
    assert "\n" not in str(err.value)
