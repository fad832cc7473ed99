"""The comparison with auto-circuit (``benchmarks/peers``): the name mapping, the model conversion and
the statistics here; the tiny side-by-side run only where ``.venv-peers`` exists (it is skipped, saying
why, where it does not: the CI does not set it up)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from benchmarks.peers import edges as names
from benchmarks.peers.client import PEER_VENV, Peer, peer_python
from benchmarks.peers.convert import hooked_config, hooked_state_dict, save_hooked
from benchmarks.peers.report import agreement, ranks, spearman, top_k_overlap
from shared.engine.graph import Graph
from shared.errors import ParameterError

ROOT = Path(__file__).resolve().parent.parent
NO_PEERS = (f"there is no peer environment at {PEER_VENV}: `python -m benchmarks.peers --setup` installs "
            f"auto-circuit 1.0.1 and TransformerLens 2 there (minutes of installs and about 1 GB, so the CI does not)")
needs_peers = pytest.mark.skipif(peer_python() is None, reason=NO_PEERS)


@pytest.fixture(scope="module")
def suite_s():
    from shared.zoo.registry import load_model

    torch.set_num_threads(1)
    return load_model("suite-s-s0")


def test_every_book_edge_maps_to_a_peer_name_and_back():
    graph = Graph(3, 4)
    peer = [names.book_edge_to_peer(e) for e in graph.edges]
    assert len(set(peer)) == len(graph.edges)
    assert [names.peer_edge_to_book(e) for e in peer] == graph.edges
    assert names.book_edge_to_peer("a0.h1->a2.h3:k") == "A0.1->A2.3.K"
    assert names.book_edge_to_peer("input->logits") == "Resid Start->Resid End"
    assert names.book_edge_to_peer("m1->m2") == "MLP 1->MLP 2"


@pytest.mark.parametrize("bad", ["a0.h1", "a0.h1->a1.h0", "x->logits", "input->a1.h0:z"])
def test_a_malformed_edge_name_is_refused(bad):
    with pytest.raises(ValueError):
        names.book_edge_to_peer(bad)


def test_shared_never_imports_the_benchmarks():
    for path in (ROOT / "shared").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(m.split(".")[0] == "benchmarks" for m in mods), path


def test_conversion_keeps_every_weight(suite_s):
    sd = hooked_state_dict(suite_s)
    cfg = hooked_config(suite_s)
    L, H = cfg["n_layers"], cfg["n_heads"]
    assert sd["blocks.1.attn.W_Q"].shape == (H, cfg["d_model"], cfg["d_head"])
    assert torch.equal(sd["blocks.1.attn.W_K"], suite_s.W_K[1].float())
    assert torch.equal(sd["embed.W_E"], suite_s.W_E.float())
    assert len([k for k in sd if k.startswith("blocks.")]) == L * 16  # 8 attention, 4 LayerNorm, 4 MLP tensors


def test_conversion_refuses_other_architectures_in_one_sentence():
    from shared.zoo.registry import boot_native

    rotary = boot_native(dict(n_layers=1, d_model=32, n_heads=2, d_head=16, d_mlp=64, d_vocab=50, n_ctx=16,
                              normalization_type="RMS", positional_embedding_type="rotary", rotary_dim=16,
                              act_fn="silu", seed=0))
    with pytest.raises(ParameterError, match=r"GPT-2-style models only.*RMS.*rotary"):
        hooked_config(rotary)


def test_spearman_handles_ties_and_top_k_counts_shared_edges():
    assert ranks(torch.tensor([3.0, 1.0, 3.0, 2.0])).tolist() == [2.5, 0.0, 2.5, 1.0]
    a = torch.tensor([0.1, -5.0, 2.0, 0.0, 1.0])
    assert spearman(a, 2 * a + 1) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert top_k_overlap(a, torch.tensor([0.0, 5.0, 0.0, 2.0, 1.0]), 2) == 0.5  # {1, 2} against {1, 3}
    acdc = agreement(torch.tensor([1.0, 0.0, 1.0]), torch.tensor([1.0, 1.0, 0.0]), binary=True)
    assert (acdc["kept_book"], acdc["kept_peer"], acdc["differ"]) == (2, 2, 2)


def test_setup_names_the_package_it_cannot_install(tmp_path):
    from benchmarks.peers.setup import setup

    problem = setup(tmp_path / "venv", steps=[("--no-index", "no-such-package-for-circuits-book")])
    assert problem.startswith("pip could not install") and "no-such-package-for-circuits-book" in problem


def test_the_command_stops_in_one_sentence_without_the_peer_environment(monkeypatch, capsys):
    from benchmarks.peers import __main__ as cli

    monkeypatch.setattr(cli, "peer_python", lambda: None)
    assert cli.main([]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count(".") <= 3 and "--setup" in err and "\n" not in err


# ------------------------------------------------------------------ with auto-circuit installed

@needs_peers
def test_the_converted_model_gives_the_same_logits(suite_s, tmp_path):
    tokens = torch.randint(0, suite_s.cfg.d_vocab, (3, 20), generator=torch.Generator().manual_seed(0))
    save_hooked(suite_s, tmp_path / "m.pt")
    torch.save(tokens, tmp_path / "t.pt")
    with Peer() as peer:
        ans = peer.ask("load", model=str(tmp_path / "m.pt"), edges=Graph.of(suite_s).edges)
        peer.ask("logits", tokens=str(tmp_path / "t.pt"), out=str(tmp_path / "l.pt"))
    assert ans["matched"] and sorted(ans["edges"]) == sorted(Graph.of(suite_s).edges)
    with torch.no_grad():
        ref = suite_s(tokens)
    assert (torch.load(tmp_path / "l.pt") - ref).abs().max() < 1e-4


@needs_peers
def test_a_tiny_comparison_agrees():
    from benchmarks.peers.run import Case, run_case

    with Peer() as peer:
        rows = {r["method"]: r for r in run_case(peer, Case("suite-s-s0", "ioi", 6), reps=1, ig_steps=3,
                                                 acdc_threshold=0.02, log=None)}
    assert rows["patching"]["logit_gap"] < 1e-4
    for method in ("patching", "eap"):  # the same quantity on both sides: equal up to float32 rounding
        a = rows[method]["agreement"]  # (Spearman only swaps edges whose scores are within rounding)
        assert a["pearson"] > 0.9999 and a["max_rel_diff"] < 1e-3 and a["spearman"] >= 0.99, (method, a)
    assert rows["acdc"]["agreement"]["differ"] == 0, rows["acdc"]["agreement"]
    for r in rows.values():  # the two evaluators measure any circuit alike
        for f in r["faithfulness"].values():
            assert f["book"] == pytest.approx(f["peer"], abs=1e-3), (r["method"], f)
    assert all(r["time_book"]["median"] > 0 and r["time_peer"]["median"] > 0 for r in rows.values())
