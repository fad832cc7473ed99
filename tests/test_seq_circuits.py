"""The sequence chapters' analyses — logit lens (shared.analysis.lens), OV scores (shared.analysis.ov),
attention between roles (shared.analysis.roles) — and their glue (shared.chapters.sequences: circuit
comparison and transfer), checked against hand-made models and hand-computed answers."""
from __future__ import annotations

import pytest
import torch

from shared.analysis import lens, ov, roles
from shared.chapters import sequences as sc
from shared.chapters.registry import chapter_entry, check_parameters
from shared.engine.runs import final_norm
from shared.errors import ParameterError
from shared.tasks.sequences import ordinal_lists
from shared.zoo.registry import boot_native


@pytest.fixture(scope="module")
def ln_model():
    """A random 2-layer model with LayerNorm and MLPs (final LN has non-trivial weight and bias)."""
    torch.manual_seed(0)
    cfg = dict(n_layers=2, n_heads=2, d_model=16, d_head=8, d_mlp=32, n_ctx=12, d_vocab=40, act_fn="gelu",
               normalization_type="LN", positional_embedding_type="standard", seed=0)
    bridge = boot_native(cfg)
    with torch.no_grad():
        ln = bridge.ln_final.original_component
        ln.weight.copy_(torch.rand_like(ln.weight) + 0.5)
        ln.bias.copy_(torch.randn_like(ln.bias))
    bridge.eval()
    return bridge


@pytest.fixture(scope="module")
def shift_model():
    """1 layer, 2 heads, no LayerNorm, identity embed/unembed: head 0's OV maps token i to i+1,
    head 1's OV maps each token to itself."""
    V = 8
    cfg = dict(n_layers=1, n_heads=2, d_model=V, d_head=V, n_ctx=8, d_vocab=V, attn_only=True,
               normalization_type=None, positional_embedding_type="standard", act_fn="relu", seed=0)
    bridge = boot_native(cfg)
    params = dict(bridge.original_model.named_parameters())
    eye = torch.eye(V)
    shift = torch.diag(torch.ones(V - 1), 1)  # row i has its 1 in column i + 1
    with torch.no_grad():
        for name, p in params.items():
            if name.endswith("tok_embed._original_component.weight") or name.endswith("head._original_component.weight"):
                p.copy_(eye)
            elif ".v._original_component.weight" in name:
                p.copy_(torch.cat([eye, eye]))  # W_V = identity for both heads
            elif ".o._original_component.weight" in name:
                p.copy_(torch.cat([shift.T, eye.T], dim=1))  # W_O[0] = shift, W_O[1] = identity
    assert torch.allclose(bridge.W_O[0, 0], shift) and torch.allclose(bridge.W_V[0, 1], eye)
    return bridge


def test_final_norm_once_at_last_layer_gives_model_logits(ln_model):
    tokens = torch.randint(0, 40, (3, 10), generator=torch.Generator().manual_seed(1))
    logits = ln_model(tokens)[:, -1]
    resid = lens.residual_stack(ln_model, tokens)
    assert resid.shape == (3, 3, 16)
    lens_logits = final_norm(ln_model, resid[-1]) @ ln_model.W_U + ln_model.b_U
    assert torch.allclose(lens_logits, logits, atol=1e-4)
    # applying the normalisation twice would not reproduce the model (the seed bug this guards)
    twice = final_norm(ln_model, final_norm(ln_model, resid[-1])) @ ln_model.W_U + ln_model.b_U
    assert not torch.allclose(twice, logits, atol=1e-2)
    # the lens's final-stage ranks equal the ranks in the model's own logits
    targets = torch.tensor([3, 7, 11])
    res = lens.logit_lens(ln_model, tokens, {"t": targets})
    expected = (logits > logits[torch.arange(3), targets].unsqueeze(1)).sum(1)
    assert torch.equal(res.ranks["t"][-1], expected)


def test_logit_lens_embedding_stage_matches_hand_computation(ln_model):
    tokens = torch.tensor([[5, 9, 2, 17]])
    target = 23
    x = ln_model.W_E[17] + ln_model.W_pos[3]  # residual at the last position before layer 0
    ln = ln_model.ln_final.original_component
    normed = torch.nn.functional.layer_norm(x, (16,), ln.weight, ln.bias, eps=ln.eps)
    logits = normed @ ln_model.W_U + ln_model.b_U
    hand_rank = int((logits > logits[target]).sum())
    res = lens.logit_lens(ln_model, tokens, {"answer": torch.tensor([target])})
    assert res.stages == ["embed", "after L0", "after L1"]
    assert int(res.ranks["answer"][0, 0]) == hand_rank


def test_token_ranks_and_switch_stage():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0]])
    assert lens.token_ranks(logits, torch.tensor([1])).item() == 0
    assert lens.token_ranks(logits, torch.tensor([0])).item() == 3
    ranks = {"answer": torch.tensor([[9, 9], [5, 0], [0, 0]]), "last member": torch.tensor([[0, 0], [0, 3], [4, 4]])}
    res = lens.LensResult(["embed", "after L0", "after L1"], ranks, {k: v.float() for k, v in ranks.items()})
    assert res.overtake_stage() == "after L1"  # after L0 the answer leads on only half the prompts
    assert res.switch_stage() == "after L1"  # top-1 on both prompts only at the last stage
    ranks["answer"] = torch.tensor([[0, 0], [1, 1], [0, 0]])
    assert res.switch_stage() == "after L1" and res.overtake_stage() == "after L1"
    ranks["answer"] = torch.tensor([[3, 3], [0, 0], [0, 0]])
    assert res.switch_stage() == "after L0"
    assert res.table().shape[0] == 6


def test_successor_and_copy_scores_of_hand_set_ov(shift_model):
    ids = torch.arange(8)
    logits = ov.ov_logits(shift_model, ids, mlp0=False)
    assert logits.shape == (2, 8, 8)
    assert ov.successor_score(logits[0], ids).item() == 1.0
    assert ov.topk_successor_score(logits[0], ids, k=1).item() == 1.0
    assert ov.topk_copy_score(logits[0], ids, k=1).item() == 0.0
    assert ov.topk_copy_score(logits[1], ids, k=1).item() == 1.0
    assert ov.successor_score(logits[1], ids).item() == 0.0
    table = ov.ov_score_table(shift_model, {"digits": ov.OrdinalList(ids, False)}, k=1, mlp0=False)
    assert table.loc["a0.h0", "successor digits"] == 1.0 and table.loc["a0.h1", "copy@1 digits"] == 1.0


def test_successor_score_on_a_sub_list_and_cyclic():
    vocab = 10
    ids = torch.tensor([7, 2, 5])  # an ordered list of three tokens
    logits = torch.zeros(3, vocab)
    logits[0, 2] = 1.0  # 7 -> 2 (right)
    logits[1, 5] = 1.0  # 2 -> 5 (right)
    logits[2, 2] = 1.0  # 5 -> 2 (wrong if cyclic: should be 7)
    assert ov.successor_score(logits, ids).item() == 1.0
    assert ov.successor_score(logits, ids, cyclic=True).item() == pytest.approx(2 / 3)


def test_ov_logits_include_layernorm_and_mlp0(ln_model):
    ids = torch.tensor([1, 4, 6])
    got = ov.ov_logits(ln_model, ids, mlp0=True, heads=[(1, 0)])[0]
    block0, block1 = ln_model.blocks[0], ln_model.blocks[1]
    x = ln_model.W_E[ids]
    x = x + block0.mlp(block0.ln2(x[None]))[0]
    ln1 = block1.ln1.original_component
    v = torch.nn.functional.layer_norm(x, (16,), ln1.weight, ln1.bias, eps=ln1.eps) @ ln_model.W_V[1, 0] @ ln_model.W_O[1, 0]
    lnf = ln_model.ln_final.original_component
    want = torch.nn.functional.layer_norm(v, (16,), lnf.weight, None, eps=lnf.eps) @ ln_model.W_U
    assert torch.allclose(got, want, atol=1e-4)


def test_aligned_attention_reads_role_positions():
    # 1 prompt, 1 head, 6 positions; members at 1, 3, 5 would be too late for an end at 5, so
    # members at 1, 2, 3 and end at 5.
    p = torch.zeros(1, 1, 6, 6)
    p[0, 0, 2, 1] = 0.8   # member 2 -> member 1
    p[0, 0, 3, 2] = 0.4   # member 3 -> member 2
    p[0, 0, 5, 3] = 0.7   # end -> member 3
    p[0, 0, 5, 1] = 0.1   # end -> member 1
    p[0, 0, 5, 0] = 0.2   # end -> BOS
    p[0, 0, 2, 2] = 0.3   # position 2 (just before member 3) -> member 2
    a = roles.role_attention(p, torch.tensor([[1, 2, 3]]), torch.tensor([5]))
    assert a.prev_member[0, 0].item() == pytest.approx(0.6)
    assert a.end_to_member[0, 0].tolist() == pytest.approx([0.1, 0.0, 0.7])
    assert a.end_to_members[0, 0].item() == pytest.approx(0.8)
    assert a.end_to_bos[0, 0].item() == pytest.approx(0.2)
    # from just before member 2 (position 1) to member 1, and from just before member 3 (position 2) to member 2
    assert a.before_to_prev[0, 0].item() == pytest.approx((0.0 + 0.3) / 2)
    table = roles.role_table(p, torch.tensor([[1, 2, 3]]), torch.tensor([5]), ["a0.h0"])
    assert table.loc["a0.h0", "end→member 3"] == pytest.approx(0.7)


def test_position_labels_name_roles():
    class Stub:
        def to_str_tokens(self, ids):
            return [f"t{i}" for i in ids.tolist()]

    tokens = torch.tensor([[0, 10, 11, 20, 12, 13], [0, 14, 11, 21, 12, 13]])
    labels = roles.position_labels(Stub(), tokens, torch.tensor([[3], [3]]), torch.tensor([5, 5]))
    assert labels == ["BOS", "x1", "t11", "M1", "t12", "END t13"]
    with pytest.raises(ParameterError):
        roles.position_labels(Stub(), tokens, torch.tensor([[3], [2]]), torch.tensor([5, 5]))


def test_jaccard_overlap_and_common_nodes():
    circuits = {"a": ["a0.h1", "m0", "a2.h3"], "b": ["a0.h1", "m0"], "c": ["m0", "a1.h0"]}
    assert sc.jaccard(circuits["a"], circuits["b"]) == pytest.approx(2 / 3)
    assert sc.jaccard(circuits["b"], circuits["c"]) == pytest.approx(1 / 3)
    assert sc.jaccard([], []) == 1.0
    table = sc.overlap_table(circuits)
    assert table.loc["a", "a"] == 1.0 and table.loc["a", "c"] == pytest.approx(1 / 4)
    assert sc.common_nodes(circuits) == ["m0"]
    assert sc.common_nodes({"a": circuits["a"], "b": circuits["b"]}, order=["m0", "a0.h1"]) == ["m0", "a0.h1"]


def test_head_grid():
    grid = ov.head_grid({"a1.h0": 0.5, "m0": 3.0}, 2, 2)
    assert grid[1, 0] == 0.5 and torch.isnan(grid[0, 0])


def test_bad_parameters_raise_one_sentence():
    """The sequence chapters' parameters are checked from notebooks/chapters.yml before any model loads."""
    chapter = chapter_entry("seq_shared_circuits")
    for bad in ({"task_names": ["numerals", "weekdays"]}, {"task_names": ["months", "months"]},
                {"task_names": ["months"]}, {"threshold": 1.5}, {"n_prompts": 1}):
        with pytest.raises(ParameterError):
            check_parameters(chapter, bad)
    assert check_parameters(chapter, {"task_names": ["months", "numerals"], "threshold": 1})["threshold"] == 1.0


def test_transfer_table_on_a_planted_circuit():
    """The planted copy-first-token circuit keeps the behaviour on two prompt sets; without its last
    head it keeps next to nothing (rows: circuit, columns: prompt set)."""
    from shared.zoo.planted import copy_first_model

    planted = copy_first_model()

    def prompts(seed: int) -> sc.TaskData:
        batch = planted.batch(32, seed)
        return sc.TaskData("copy", [], batch, torch.zeros(32, 1, dtype=torch.long), batch.answer_pos, 32, 32)

    data = {"A": prompts(0), "B": prompts(1)}
    circuits = {"planted": planted.nodes, "without a1.h2": [n for n in planted.nodes if n != "a1.h2"]}
    table = sc.transfer_table(planted.bridge, data, circuits, progress=False)
    assert (table.loc["planted"] > 90).all()
    assert (table.loc["without a1.h2"].abs() < 10).all()
    assert sc.circuit_score(planted.bridge, data["A"], planted.nodes) == pytest.approx(
        table.loc["planted", "A"] / 100 * sc.full_score(planted.bridge, data["A"]), rel=1e-4)


@pytest.mark.parametrize("arch", ["gpt2", "neox", "llama"])
def test_final_norm_once_matches_hugging_face_models(hf_folders, arch):
    """LayerNorm (GPT-2, GPT-NeoX) and RMSNorm (Llama): the lens's last stage is the model's output."""
    from shared.zoo.registry import load_model

    bridge = load_model(str(hf_folders[arch]))
    tokens = torch.randint(0, 300, (2, 8), generator=torch.Generator().manual_seed(0))
    logits = bridge(tokens)[:, -1]
    last = final_norm(bridge, lens.residual_stack(bridge, tokens)[-1]) @ bridge.W_U
    if getattr(bridge, "b_U", None) is not None:
        last = last + bridge.b_U
    assert torch.allclose(last, logits, atol=1e-4)
    assert ov.ov_logits(bridge, torch.tensor([3, 4, 5]), mlp0=True).shape == (bridge.cfg.n_layers * bridge.cfg.n_heads, 3, 300)


def test_stage_phrase():
    assert lens.stage_phrase("after L2") == "after layer 2"
    assert lens.stage_phrase("embed") == "already at the embedding"
    assert lens.stage_phrase(None) == "at no layer"


def test_head_role_table_reads_the_attention_reader(ln_model):
    """The role table of named heads is the role table of their patterns from the one reader,
    which are the model's own hook_pattern values."""
    from shared.analysis.attention import attention_patterns

    tokens = torch.randint(0, 40, (3, 8), generator=torch.Generator().manual_seed(2))
    member_pos, end_pos = torch.tensor([[1, 3, 5]] * 3), torch.tensor([7, 7, 7])
    heads = ["a1.h0", "a0.h1"]
    got = roles.head_role_table(ln_model, tokens, member_pos, end_pos, heads)
    pattern = attention_patterns(ln_model, tokens, heads)
    _, cache = ln_model.run_with_cache(tokens)
    assert torch.allclose(pattern[:, 0], cache["blocks.1.attn.hook_pattern"][:, 0].float(), atol=1e-6)
    want = roles.role_table(pattern, member_pos, end_pos, heads)
    assert list(got.index) == heads and (got - want).abs().max().max() < 1e-7
    assert got.loc["a1.h0", "end→member 3"] == pytest.approx(float(pattern[:, 0, 7, 5].mean()))


def test_node_circuit_result_and_knockout_table():
    r = sc.NodeCircuitResult("numerals", ["a0.h1", "m0"], 8, full=4.0, score=3.0, heldout_full=5.0, heldout_score=4.5,
                             n_components=6)
    assert (r.size, r.percent, r.heldout_percent) == (2, 75.0, 90.0)
    row = sc.circuit_table({"numerals": r}).loc["numerals"]
    assert (row["circuit"], row["nodes kept"], row["% kept"]) == ("a0.h1, m0", "2 of 6", 75.0)
    from shared.engine.ablation import KnockoutResult

    table = sc.knockout_table({"t": KnockoutResult(["a0.h0", "m0"], torch.tensor([3.0, 1.0]), 4.0, "mean")})
    assert table["t"].tolist() == [25.0, 75.0] and table.index.name == "node"


def test_eap_ig_circuit_is_a_circuit_with_its_score():
    """On the planted copy-first-token model, the top EAP-IG edges form a Circuit whose score is
    re-measured with every other edge mean-ablated."""
    from shared.engine.circuit import Circuit
    from shared.engine.patching import score_circuit_edges
    from shared.zoo.planted import copy_first_model

    planted = copy_first_model()
    batch = planted.batch(16, 0)
    data = sc.TaskData("copy", [], batch, torch.zeros(16, 1, dtype=torch.long), batch.answer_pos, 16, 16)
    c = sc.eap_ig_circuit(planted.bridge, data, size=4, steps=2)
    assert isinstance(c, Circuit) and len(c.edges) == 4 and c.method == "EAP-IG"
    assert min(c.scores[e] for e in c.edges) >= max(s for o, s in c.scores.items() if o not in c.edges)
    assert c.full == pytest.approx(sc.full_score(planted.bridge, data))
    assert c.score == pytest.approx(score_circuit_edges(planted.bridge, batch, c.edges, sc.mean_values(planted.bridge, data)))


def test_sequence_figures_are_built():
    """Each figure function of shared.plots.sequences returns a figure when not given a name."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from shared.plots import sequences as plots

    ranks = {"answer": torch.tensor([[9, 9], [0, 1], [0, 0]]), "last member": torch.tensor([[3, 4], [5, 6], [7, 8]])}
    res = lens.LensResult(["embed", "after L0", "after L1"], ranks, {k: v.float() for k, v in ranks.items()})
    table = pd.DataFrame({"numerals": [10.0, -2.0], "months": [5.0, 1.0]}, index=["a0.h0", "m0"])
    r = sc.NodeCircuitResult("numerals", ["m0"], 8, 4.0, 3.0, 5.0, 4.5, 6)
    figures = [plots.lens_ranks({"numerals": res}), plots.knockout_bars(table), plots.circuit_scores({"numerals": r}, 0.8),
               plots.table_matrix(sc.overlap_table({"a": ["m0"], "b": ["m0", "a0.h0"]})),
               plots.circuit_membership({"a": ["m0"], "b": ["m0", "a0.h0"]}, ["a0.h0", "m0"]),
               plots.role_attention_maps(torch.rand(2, 4, 4), ["BOS", "M1", "x1", "END"], ["a0.h0", "a1.h1"])]
    assert all(isinstance(f, plt.Figure) for f in figures)
    plt.close("all")
