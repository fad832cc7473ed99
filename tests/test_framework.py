"""Framework scores on hand-set weights whose answers are known in advance, the framework chapters'
choices (control head, composition sentence) and the intro's recipe for running a chapter."""
from __future__ import annotations

import re

import pandas as pd
import pytest
import torch

from shared.analysis.attention import attention_patterns
from shared.analysis.heads import head_scores, score_of, top_heads
from shared.analysis.text import bigram_log_probs, frequent_tokens, icl_score
from shared.analysis.weights import (Composition, Weights, composition_scores, copying_score, cyclic_eigenvalues,
                                     ov_copying_scores, weights)
from shared.chapters.framework import control_head, k_sources_text
from shared.chapters.registry import load_contents, load_registry
from shared.engine.ablation import mean_values, node_mask, score_node_masks
from shared.engine.graph import Graph
from shared.errors import ParameterError
from shared.paths import REPO_ROOT
from shared.tasks.repeated import RepeatedTokens, next_token_logprob, repeated_random_tokens, repeated_tokens_for
from shared.zoo.attn_only import window_batch
from shared.zoo.registry import boot_native, load_model

V, P = 24, 32          # vocabulary, context
TOK, POS, PREV, OUT = 0, V, V + P, 2 * V + P   # residual-stream slots (one-hot blocks)
D_MODEL, D_HEAD = 3 * V + P, P
SHARP = 60.0           # attention logit scale: makes the hand-built patterns near one-hot


def _linear(bridge, layer: int, name: str) -> torch.nn.Linear:
    attn = bridge.original_model.layers[layer]._original_component.attn._original_component
    return getattr(attn, name)._original_component


@torch.no_grad()
def _set_head(bridge, layer: int, head: int, W_Q, W_K, W_V, W_O) -> None:
    """Write one head's [d_model, d_head] / [d_head, d_model] matrices into the native linears."""
    rows = slice(head * D_HEAD, (head + 1) * D_HEAD)
    for name, mat in (("q", W_Q), ("k", W_K), ("v", W_V)):
        lin = _linear(bridge, layer, name)
        lin.weight[rows] = mat.T
        lin.bias[rows] = 0
    lin = _linear(bridge, layer, "o")
    lin.weight[:, rows] = W_O.T
    lin.bias.zero_()


def _block(n_rows: int, row0: int, col0: int, n: int, scale: float = 1.0, shift: int = 0, n_cols: int = D_HEAD):
    """Zero matrix with ``scale`` at (row0 + i, col0 + i + shift) for i in range(n)."""
    m = torch.zeros(n_rows, n_cols)
    for i in range(n):
        if 0 <= col0 + i + shift < n_cols:
            m[row0 + i, col0 + i + shift] = scale
    return m


def _repeated_distinct(seq_len: int, batch: int, seed: int) -> torch.Tensor:
    """Like ``repeated_random_tokens`` but without repeats inside a half (one earlier match)."""
    gen = torch.Generator().manual_seed(seed)
    half = torch.stack([torch.randperm(V, generator=gen)[:seq_len] for _ in range(batch)])
    return torch.cat([half, half], dim=1)


def ablation_table(bridge, rep: RepeatedTokens, ablations: dict[str, list[str]]) -> pd.DataFrame:
    """The chapter's ablation (framework_2l): mean loss on each copy with the heads mean-ablated."""
    rows = rep.next_token_rows()
    masks = torch.stack([node_mask(Graph.of(bridge), heads) for heads in ablations.values()])
    loss = -score_node_masks(bridge, rows.batch, masks, mean_values(bridge, rep.tokens), next_token_logprob,
                             per_prompt=True)
    return pd.DataFrame({"loss first half": loss[:, ~rows.repeated].mean(1).numpy(),
                         "loss repeated half": loss[:, rows.repeated].mean(1).numpy()}, index=list(ablations))


@pytest.fixture(scope="module")
def induction_model():
    """A 2-layer attention-only model wired by hand as previous-token head -> induction head.

    a0.h0 attends from position i to i-1 (queries/keys from one-hot positions) and writes the token
    it sees into the PREV slot. a1.h0 queries with the current token and keys with the PREV slot, so
    it attends to the position after an earlier copy of the current token (K-composition), and
    copies that position's token into the OUT slot, which the unembedding reads.
    a0.h1 and a1.h1 are distractors confined to the positional slot.
    """
    cfg = dict(n_layers=2, d_model=D_MODEL, n_heads=2, d_head=D_HEAD, d_vocab=V, n_ctx=P,
               attn_only=True, normalization_type=None, seed=0)
    bridge = boot_native(cfg)
    model = bridge.original_model
    with torch.no_grad():
        model.tok_embed._original_component.weight.copy_(_block(V, 0, TOK, V, n_cols=D_MODEL))
        model.pos._original_component.weight.copy_(_block(P, 0, POS, P, n_cols=D_MODEL))
        model.head._original_component.weight.copy_(_block(D_MODEL, OUT, 0, V, n_cols=V).T)
        model.head._original_component.bias.zero_()
        eye_tok = _block(D_MODEL, TOK, 0, V)              # token slot -> head dims 0..V
        # a0.h0: query position i on head dim i, key position j on head dim j + 1.
        _set_head(bridge, 0, 0, _block(D_MODEL, POS, 0, P, SHARP), _block(D_MODEL, POS, 0, P, 1.0, shift=1),
                  eye_tok, _block(D_HEAD, 0, PREV, V, n_cols=D_MODEL))
        # a1.h0: query = current token, key = previous token slot, value = token -> OUT slot.
        _set_head(bridge, 1, 0, _block(D_MODEL, TOK, 0, V, SHARP), _block(D_MODEL, PREV, 0, V),
                  eye_tok, _block(D_HEAD, 0, OUT, V, 5.0, n_cols=D_MODEL))
        gen = torch.Generator().manual_seed(0)
        for layer in (0, 1):  # distractors: read positions only, write into the positional slot
            reads = torch.zeros(D_MODEL, D_HEAD)
            reads[POS: POS + P] = torch.randn(P, D_HEAD, generator=gen) * 0.1
            writes = torch.zeros(D_HEAD, D_MODEL)
            writes[:, POS: POS + P] = torch.randn(D_HEAD, P, generator=gen) * 0.1
            _set_head(bridge, layer, 1, reads, reads.clone(), reads.clone(), writes)
    bridge.eval()
    return bridge


def test_copying_score_of_identity_and_negated_identity():
    eye = torch.eye(6)
    assert copying_score(cyclic_eigenvalues(eye)) == pytest.approx(1.0)
    assert copying_score(cyclic_eigenvalues(-eye)) == pytest.approx(-1.0)
    # A full OV circuit with identity embed/unembed and W_V W_O = I copies perfectly.
    w = Weights(W_E=torch.eye(6), W_U=torch.eye(6), W_V=torch.eye(6)[None, None], W_O=torch.eye(6)[None, None])
    assert ov_copying_scores(w)[0, 0] == pytest.approx(1.0)
    w.W_O = -w.W_O
    assert ov_copying_scores(w)[0, 0] == pytest.approx(-1.0)
    # A rotation by 90 degrees has eigenvalues ±i: neither copying nor anti-copying.
    rot = torch.tensor([[0.0, -1.0], [1.0, 0.0]])
    assert copying_score(cyclic_eigenvalues(rot)) == pytest.approx(0.0, abs=1e-9)


def test_cyclic_eigenvalues_match_full_product():
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(20, 3, generator=gen), torch.randn(3, 20, generator=gen)
    small = cyclic_eigenvalues(a, b)
    full = torch.linalg.eigvals((a @ b).double())
    assert len(small) == 3
    top = full[full.abs().argsort(descending=True)[:3]]
    assert sorted(small.abs().tolist()) == pytest.approx(sorted(top.abs().tolist()), rel=1e-6)


def test_hand_built_weights_are_read_back(induction_model):
    w = weights(induction_model)
    assert w.W_Q.shape == (2, 2, D_MODEL, D_HEAD)
    assert w.W_Q[1, 0][TOK + 3, 3] == pytest.approx(SHARP)
    assert w.W_O[0, 0][5, PREV + 5] == pytest.approx(1.0)


def test_hand_built_induction_circuit_is_recognised(induction_model):
    seq_len = 15
    tokens = _repeated_distinct(seq_len, batch=8, seed=0)                   # no BOS: [8, 30]
    scores = head_scores(attention_patterns(induction_model, tokens), seq_len, n_heads=2)   # start 0: no BOS
    assert score_of(scores.previous_token, "a0.h0") > 0.9
    assert score_of(scores.induction, "a1.h0") > 0.5
    assert top_heads(scores.induction, 0.5) == ["a1.h0"]
    assert top_heads(scores.previous_token, 0.5) == ["a0.h0"]
    comp = composition_scores(weights(induction_model))
    k = comp.K[1, 0, 0, 0]
    everything = torch.stack([getattr(comp, kind)[1, :, 0, :] for kind in "QKV"])
    assert k == everything.max()
    assert k > 5 * max(float(comp.Q[1, 0, 0, 0]), float(comp.V[1, 0, 0, 0]))
    assert float(comp.K[0].abs().max()) == 0.0   # no layer composes with itself or later layers
    assert comp.strongest("K") == ("a1.h0", "a0.h0", pytest.approx(float(k)))
    assert comp.source_of("K", "a1.h0") == "a0.h0"


def test_ablating_the_induction_head_hurts_only_the_repeated_half(induction_model):
    seq_len = 15
    tokens = _repeated_distinct(seq_len, batch=16, seed=1)
    table = ablation_table(induction_model, RepeatedTokens(tokens, seq_len),
                           {"none (clean)": [], "a1.h0": ["a1.h0"], "a1.h1": ["a1.h1"]})
    clean, ablated, other = table.loc["none (clean)"], table.loc["a1.h0"], table.loc["a1.h1"]
    assert clean["loss repeated half"] < 0.5 < clean["loss first half"]
    assert ablated["loss repeated half"] - clean["loss repeated half"] > 1.0
    assert abs(ablated["loss first half"] - clean["loss first half"]) < 0.5
    assert abs(other["loss repeated half"] - clean["loss repeated half"]) < 0.1


def test_bigram_statistics_and_skip_trigram_circuits():
    stream = torch.tensor([1, 2, 1, 2, 1, 3, 0])
    ids = torch.tensor([1, 2, 3])
    logp, pairs = bigram_log_probs(stream, ids)
    assert pairs[0, 1] == 2 and pairs[0, 2] == 1          # 1->2 twice, 1->3 once
    assert torch.exp(logp[0, 1]) == pytest.approx(2 / 3)
    assert torch.isinf(logp[1, 1])
    assert frequent_tokens(stream, 2).tolist() == [1, 2]


def test_icl_score_and_bad_parameters():
    loss = torch.linspace(5.0, 3.0, 100)
    assert icl_score(loss, 10, 90) < 0
    with pytest.raises(ParameterError):
        icl_score(loss, 90, 10)
    with pytest.raises(ParameterError):
        repeated_random_tokens(10, 1, 4, 0)


def test_training_windows_contain_the_documented_repeats():
    data = torch.arange(10_000) % 997 + 1          # no repeats within any window of 128
    gen = torch.Generator().manual_seed(0)
    plain = window_batch(data, 8, 128, gen)
    assert all(len(set(row.tolist())) == 128 for row in plain)
    rand = window_batch(data, 8, 128, gen, random_share=1.0, d_vocab=50)
    assert all(len(set(row.tolist())) <= 64 and row.max() < 50 for row in rand)
    spans = window_batch(data, 8, 128, gen, repeat_share=1.0, min_span=4)
    assert all(len(set(row.tolist())) <= 124 for row in spans)   # at least 4 tokens copied


def test_repeated_random_tokens_layout():
    t = repeated_random_tokens(100, 10, n=3, seed=0, bos_id=0, exclude=[0])
    assert t.shape == (3, 21) and (t[:, 0] == 0).all() and (t[:, 1:] != 0).all()
    assert torch.equal(t[:, 1:11], t[:, 11:])
    rows = RepeatedTokens(t, 10).next_token_rows()
    assert len(rows.batch) == 3 * 18 and int(rows.repeated.sum()) == 3 * 9
    assert rows.batch.answer_pos[:9].tolist() == list(range(1, 10))       # predictions inside the first copy
    assert rows.batch.answer_pos[9:18].tolist() == list(range(11, 20))    # ... and inside the second
    assert torch.equal(rows.batch.correct[:18], t[0, rows.batch.answer_pos[:18] + 1])


def test_shipped_two_layer_model_has_induction_heads():
    """The trained 2L model: heads with induction score > 0.5 whose ablation hurts the repeated half only."""
    model = load_model("attn-only-2l")
    seq_len = 25
    rep = repeated_tokens_for(model, seq_len, n=16, seed=0)
    scores = head_scores(attention_patterns(model, rep.tokens), seq_len, model.cfg.n_heads).induction
    assert scores.max() > 0.5
    heads = top_heads(scores, 0.5)
    assert all(h.startswith("a1.") for h in heads), "induction needs a layer-0 head to compose with"
    table = ablation_table(model, rep, {"none (clean)": [], "induction": heads})
    rise = table.loc["induction", "loss repeated half"] - table.loc["none (clean)", "loss repeated half"]
    first = abs(table.loc["induction", "loss first half"] - table.loc["none (clean)", "loss first half"])
    assert rise > 2.0 and first < 0.3


def test_control_head_is_never_an_induction_head():
    """framework_2l's control: the lowest induction score among heads neither induction nor ablated
    previous-token heads (the shipped 2L model has four layer-1 induction heads, so it is in layer 0)."""
    induction = torch.tensor([[0.02, 0.02, 0.00, 0.01], [0.88, 0.88, 0.84, 0.85]])
    heads = top_heads(induction, 0.5)
    assert heads == ["a1.h0", "a1.h1", "a1.h3", "a1.h2"]
    control = control_head(induction, exclude=heads + ["a0.h3"])
    assert control == "a0.h2" and control not in heads
    assert control_head(induction, exclude=heads + ["a0.h2"]) == "a0.h3"
    everyone = [f"a{layer}.h{head}" for layer in range(2) for head in range(4)]
    assert control_head(induction, exclude=everyone) is None


def _composition(k_rows: list[list[float]]) -> Composition:
    """A 2-layer, 4-head Composition whose K scores of layer-1 heads are ``k_rows`` [reader, writer]."""
    q, k, v = (torch.zeros(2, 4, 2, 4) for _ in range(3))
    k[1, :, 0, :] = torch.tensor(k_rows)
    return Composition(q, k, v)


def test_k_composition_sentence_names_each_earlier_head_once():
    same = _composition([[0.11, 0.11, 0.07, 0.15]] * 4)
    text = k_sources_text(same, ["a1.h0", "a1.h1", "a1.h3", "a1.h2"], ["a0.h3"])
    assert text.count("a0.h3") == 1 and "All 4 induction heads" in text and "a previous-token head" in text
    mixed = _composition([[0.3, 0.1, 0.0, 0.0], [0.0, 0.0, 0.2, 0.0], [0.0] * 4, [0.0] * 4])
    text = k_sources_text(mixed, ["a1.h0", "a1.h1"], ["a0.h0"])
    assert "a1.h0 with **a0.h0** (0.30)" in text and "a1.h1 with **a0.h2** (0.20)" in text
    assert "a0.h2 is not one of the previous-token heads" in text
    one = k_sources_text(mixed, ["a1.h1"], ["a0.h2"])
    assert one.startswith("The induction head a1.h1 K-composes most with **a0.h2**")


def test_intro_recipe_runs_the_committed_notebook_and_promises_only_existing_parts():
    """book/intro.md: its papermill command runs a committed notebooks/NAME.ipynb (no jupytext step)
    with parameter names from that chapter's parameters cell, and every line of work it lists in
    bold is a part of the table of contents."""
    intro = (REPO_ROOT / "book" / "intro.md").read_text()
    assert "jupytext" not in intro
    commands = [c for c in re.sub(r"\\\n\s*", "", intro).splitlines() if c.strip().startswith("papermill ")]
    assert commands, "the intro shows how to run a chapter with papermill"
    chapters = load_registry()
    for command in commands:
        words = command.split()
        notebook = REPO_ROOT / words[1]
        assert notebook.suffix == ".ipynb" and notebook.exists() and notebook.stem in chapters, command
        names = [words[i + 1] for i, w in enumerate(words) if w == "-p"]
        assert names and set(names) <= set(chapters[notebook.stem].declared), command
    captions = {caption for caption, _ in load_contents().parts}
    listed = re.findall(r"^- \*\*(.+?)\*\*", intro, flags=re.M)
    assert listed and set(listed) <= captions, set(listed) - captions
