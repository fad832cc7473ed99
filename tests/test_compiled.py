"""Tracr-compiled models (shared/zoo/compiled.py): the shipped checkpoints compute their programs, and
their ground truth is exact — keeping only the true edges reproduces the model, patching any other
edge changes nothing. Only the compile test needs tracr (skipped without it)."""
from __future__ import annotations

import importlib.util
import random
import sys

import pytest
import torch
from safetensors.torch import load_file

from shared.chapters.compiled import truth_check
from shared.engine.ablation import ablation_values
from shared.engine.circuit import Circuit
from shared.engine.graph import Graph
from shared.engine.mib import ranking
from shared.engine.patching import edge_mask, score_edge_masks
from shared.errors import ModelUnavailableError
from shared.zoo.compiled import PROGRAMS, SEQ_LEN, compiled_model, model_name, weight_edges
from shared.zoo.registry import load_model, local_model_dir

ALL = sorted(PROGRAMS)


@pytest.fixture(scope="module")
def models():
    return {p: compiled_model(p) for p in ALL}


@pytest.mark.parametrize("program", ALL)
def test_model_computes_its_program(models, program):
    """At every position the compiled model's top output is the plain-Python reference answer."""
    cm = models[program]
    rng = random.Random(1)
    seqs = [rng.sample(cm.program.vocab, SEQ_LEN) if cm.program.distinct
            else [rng.choice(cm.program.vocab) for _ in range(SEQ_LEN)] for _ in range(64)]
    with torch.no_grad():
        pred = cm.bridge(cm.encode(seqs))[:, 1:].argmax(-1)
    assert torch.equal(pred, cm.outputs(seqs))
    assert cm.record["agreement_with_tracr"] == 1.0


@pytest.mark.parametrize("program", ALL)
def test_truth_edges_are_exact(models, program):
    """Only the true edges kept (the rest patched to the corrupted run): the same logit difference
    as the intact model on every prompt; any single other edge patched: no change; the fully
    patched model differs (so the check can fail), and some true edge alone moves the metric."""
    cm = models[program]
    batch = cm.batch(12, seed=3)
    graph = Graph.of(cm.bridge)
    values = ablation_values(cm.bridge, batch, "corrupt")
    truth = edge_mask(graph, cm.edges)
    others = [e for e in graph.edges if e not in set(cm.edges)]
    singles = [edge_mask(graph, [e]) for e in graph.edges]
    masks = torch.stack([~truth, torch.zeros_like(truth), torch.ones_like(truth)] + singles)
    out = score_edge_masks(cm.bridge, batch, masks, values, per_prompt=True)
    only_truth, full, empty = out[0], out[1], out[2]
    assert torch.allclose(only_truth, full, atol=1e-5)
    assert (full - empty).abs().min() > 1.0  # clean answer vs corrupted answer: +1 against -1
    effect = (out[3:] - full).abs().max(1).values
    index = graph.edge_index
    assert max(float(effect[index[e]]) for e in others) < 1e-5
    assert max(float(effect[index[e]]) for e in cm.edges) > 0.5
    assert others, "a graph with every edge true would make this test empty"


def test_truth_matches_weights_and_program(models):
    """The edges read off Tracr's blocks equal those of the weights' nonzero pattern, and follow the
    program: reverse computes length -> opp_idx -> opp_idx-1 -> fetch; sort feeds its count into
    the fetching head's key; sort_freq chains hist -> key -> target_pos -> sort."""
    for cm in models.values():
        assert sorted(weight_edges(cm.bridge)) == sorted(cm.edges)
        assert cm.edges and set(cm.nodes) <= set(Graph.of(cm.bridge).components)
    rev = models["reverse"]
    assert rev.ops == {"a0.h0": "length", "m0": "length", "m1": "opp_idx", "m2": "opp_idx-1", "a3.h0": "reverse"}
    assert {"a0.h0->m0", "m0->m1", "m1->m2", "m2->a3.h0:q", "input->a3.h0:v", "a3.h0->logits"} <= set(rev.edges)
    assert "m0->a3.h0:q" not in rev.edges and "a0.h0->logits" not in rev.edges
    srt = models["sort"]
    assert {"a0.h0->m0", "m0->a1.h0:k", "input->a1.h0:v", "a1.h0->logits"} <= set(srt.edges)
    assert "m0->a1.h0:q" not in srt.edges and "m0->a1.h0:v" not in srt.edges
    assert sorted(models["hist"].edges) == sorted(["input->a0.h0:q", "input->a0.h0:k", "input->a0.h0:v",
                                                   "input->m0", "a0.h0->m0", "m0->logits"])
    sf = models["sort_freq"]
    assert {"a0.h0->m0", "m0->m1", "m1->m2", "m2->a3.h0:q", "m2->a3.h0:k", "a3.h0->m3", "m3->a4.h0:k",
            "a4.h0->logits"} <= set(sf.edges)
    assert sf.ops["a0.h0"] == "hist" and sf.ops["a4.h0"] == "sort_freq"


def test_truth_check_counts_active_edges(models):
    """In reverse only the token-fetching edges move the answer when all inputs have one length."""
    cm = models["reverse"]
    row = truth_check(cm, cm.batch(16))
    assert row["largest |truth only - full|"] < 1e-5 and row["largest other-edge effect"] < 1e-5
    assert row["weights agree"] and row["truth edges"] == 13
    assert sorted(cm.active) == ["a3.h0->logits", "input->a3.h0:v"]


def test_node_circuit_ranks_edges_between_its_nodes(models):
    """A node-pruning circuit ranks the edges among its nodes (input and logits always) first."""
    graph = Graph.of(models["hist"].bridge)
    scores = ranking(Circuit(nodes=["a0.h0"], method="node_pruning"), graph)
    assert sorted(e for e, v in scores.items() if v == 1.0) == sorted(
        ["input->a0.h0:q", "input->a0.h0:k", "input->a0.h0:v", "input->logits", "a0.h0->logits"])
    assert sum(v == 0.0 for v in scores.values()) == 3


def test_compile_without_tracr_says_how(monkeypatch, tmp_path):
    """Compiling again without tracr stops with one sentence naming the install command."""
    monkeypatch.setenv("CIRCUITS_BOOK_CACHE", str(tmp_path))
    monkeypatch.setitem(sys.modules, "tracr", None)  # import tracr -> ImportError
    with pytest.raises(ModelUnavailableError, match="pip install --target .* tracr-pypi"):
        load_model(model_name("hist"), retrain=True)


@pytest.mark.skipif(importlib.util.find_spec("tracr") is None,
                    reason="tracr is not installed (pip install --target <folder> tracr-pypi, then PYTHONPATH)")
def test_compiling_again_gives_the_shipped_model(monkeypatch, tmp_path):
    """Compiling hist again gives the shipped weights and ground truth."""
    shipped = local_model_dir(model_name("hist"))
    monkeypatch.setenv("CIRCUITS_BOOK_CACHE", str(tmp_path))
    fresh = local_model_dir(model_name("hist"))
    assert fresh != shipped and fresh.name == shipped.name
    a, b = load_file(str(shipped / "model.safetensors")), load_file(str(fresh / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    import json
    ma, mb = (json.loads((f / "metrics.json").read_text()) for f in (shipped, fresh))
    assert ma["truth_edges"] == mb["truth_edges"] and ma["blocks"] == mb["blocks"]
