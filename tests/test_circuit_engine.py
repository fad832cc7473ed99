"""The circuit-method engine checked against plain hooked runs, TransformerLens's own patching
functions, a Hugging Face GPT-2 bridge, and bad inputs."""
from __future__ import annotations

import pytest
import torch

from shared.engine.runs import record
from shared.engine.ablation import (ablation_values, knockout_sweep, mean_values, node_mask,
                             score_node_masks)
from shared.engine.batch import PromptBatch
from shared.engine.circuit import Circuit, faithfulness
from shared.plots.circuits import circuit_graph
from shared.engine.eap import eap
from shared.errors import ParameterError
from shared.engine.graph import Graph
from shared.engine.metrics import kl_to, logit_diff, normalized, percent_of_full, prob_diff
from shared.zoo.registry import boot_native
from shared.engine.patching import activation_patching, edge_mask, path_patching, score_edge_masks
from shared.zoo.planted import copy_first_model


@pytest.fixture(scope="module")
def copy_first():
    return copy_first_model()


def _plain_logit_diff(bridge, batch, tokens, hooks=()):
    with torch.no_grad():
        logits = bridge.run_with_hooks(tokens, fwd_hooks=list(hooks))
    r = torch.arange(len(batch))
    last = logits[r, batch.answer_pos]
    return float((last[r, batch.correct] - last[r, batch.incorrect]).mean())


def _random_batch(vocab, n=6, pos=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return PromptBatch(torch.randint(0, vocab, (n, pos), generator=g), torch.randint(0, vocab, (n, pos), generator=g),
                       torch.randint(0, vocab, (n,), generator=g), torch.randint(0, vocab, (n,), generator=g))

def _assert_edge_identities(b, batch, node: str, abs_tol: float = 1e-4):
    """Patching every edge reproduces the corrupted run; patching all of ``node``'s outgoing edges
    equals ablating ``node``. Returns the graph and the corrupted values."""
    g = Graph.of(b)
    values = ablation_values(b, batch, "corrupt")
    all_patched = score_edge_masks(b, batch, torch.ones(len(g.edges), dtype=torch.bool), values)
    assert float(all_patched) == pytest.approx(_plain_logit_diff(b, batch, batch.corrupt), abs=abs_tol)
    outgoing = [e for e in g.edges if e.startswith(node + "->")]
    assert float(score_node_masks(b, batch, node_mask(g, [node]), values)) == pytest.approx(
        float(score_edge_masks(b, batch, edge_mask(g, outgoing), values)), abs=1e-4)
    return g, values



def test_graph_names_and_same_layer_mlp_edges():
    g = Graph(2, 2, has_mlp=True)
    assert g.components == ["a0.h0", "a0.h1", "m0", "a1.h0", "a1.h1", "m1"]
    assert "a0.h1->m0" in g.edge_index and "a1.h0->m1" in g.edge_index  # same-layer attention -> MLP
    assert "a1.h0->a1.h1:q" not in g.edge_index and "m0->a1.h1:k" in g.edge_index
    assert "m1->logits" in g.edge_index and "input->logits" in g.edge_index
    assert "a0.h0->m0" not in Graph(2, 2, parallel=True).edge_index
    # per layer: 2 heads * 3 inputs + 1 MLP receivers; senders upstream of each
    assert len(g.edges) == 6 * 1 + 3 + 6 * 4 + 6 + 7


def test_metrics_hand_computed(copy_first):
    b = copy_first.bridge
    batch = copy_first.batch(4)
    acts = record(b, batch.clean)
    final = acts.resid[-1][torch.arange(4), batch.answer_pos]  # no final norm in this model
    logits = final @ b.W_U + b.b_U
    r = torch.arange(4)
    expect = logits[r, batch.correct] - logits[r, batch.incorrect]
    assert torch.allclose(logit_diff(b, final, batch), expect, atol=1e-5)
    p = logits.softmax(-1)
    assert torch.allclose(prob_diff(b, final, batch), p[r, batch.correct] - p[r, batch.incorrect], atol=1e-6)
    assert torch.allclose(kl_to(final)(b, final, batch), torch.zeros(4), atol=1e-6)
    m = normalized(logit_diff, clean=2.0, corrupt=-2.0)
    assert torch.allclose(m(b, final, batch), (expect + 2) / 4, atol=1e-5)
    assert torch.allclose(percent_of_full(logit_diff, 2.0)(b, final, batch), 50 * expect, atol=1e-4)


@pytest.mark.parametrize("kind", ["zero", "mean", "corrupt"])
def test_knockout_matches_plain_hook_runs(copy_first, kind):
    b = copy_first.bridge
    batch = copy_first.batch(8)
    values = ablation_values(b, batch, kind)
    ko = knockout_sweep(b, batch, values=values, progress=False)
    for node in ("a0.h1", "a1.h3", "m0"):
        if node.startswith("m"):
            name, fn = "blocks.0.hook_mlp_out", (lambda x, hook: values.mlp[0].expand_as(x).clone())
        else:
            l, h = int(node[1]), int(node[4])

            def fn(x, hook, l=l, h=h):
                x = x.clone()
                x[:, :, h] = values.z[l][:, :, h].expand_as(x[:, :, h])
                return x
            name = f"blocks.{l}.attn.hook_z"
        expect = _plain_logit_diff(b, batch, batch.clean, [(name, fn)])
        assert ko.as_dict()[node] == pytest.approx(ko.full - expect, abs=1e-4)
    assert ko.full == pytest.approx(_plain_logit_diff(b, batch, batch.clean), abs=1e-4)


def test_means_computed_once_fit_any_batch_size(copy_first):
    b = copy_first.bridge
    ref = copy_first.batch(40, seed=3).clean
    means = mean_values(b, ref, chunk=16)
    assert means.z[0].shape[:2] == (1, 1)
    direct = record(b, ref).z[1].mean(dim=(0, 1))
    assert torch.allclose(means.z[1][0, 0], direct, atol=1e-5)
    g = Graph.of(b)
    for n in (1, 5, 13):
        batch = copy_first.batch(n, seed=n)
        score = score_node_masks(b, batch, node_mask(g, ["a1.h2"]), means)
        assert score.shape == (1,)


def test_node_pruning_independent_of_batch_size(copy_first):
    from shared.engine.pruning import prune_nodes

    b = copy_first.bridge
    means = mean_values(b, copy_first.batch(64, seed=9).clean)
    found = [prune_nodes(b, copy_first.batch(n, seed=1), values=means, progress=False).nodes for n in (4, 16, 48)]
    assert found[0] == found[1] == found[2] == ["a0.h1", "m0", "a1.h2"]


def test_activation_patching_agrees_with_transformer_lens(copy_first):
    import transformer_lens.patching as tlp

    b = copy_first.bridge
    batch = copy_first.batch(6)
    _, cache = b.run_with_cache(batch.clean)
    r = torch.arange(len(batch))

    def metric(logits):
        last = logits[r, batch.answer_pos]
        return (last[r, batch.correct] - last[r, batch.incorrect]).mean()

    theirs = tlp.get_act_patch_attn_head_out_all_pos(b, batch.corrupt, cache, metric)
    ours = activation_patching(b, batch, "denoising")
    for l in range(2):
        for h in range(4):
            assert ours[f"a{l}.h{h}"] == pytest.approx(float(theirs[l, h]), abs=1e-4)
    theirs_mlp = tlp.get_act_patch_mlp_out(b, batch.corrupt, cache, metric)  # [layer, pos]
    for p in (0, 5):
        ours_p = activation_patching(b, batch, "denoising", nodes=["m0", "m1"], positions=[p])
        assert ours_p["m0"] == pytest.approx(float(theirs_mlp[0, p]), abs=1e-4)
        assert ours_p["m1"] == pytest.approx(float(theirs_mlp[1, p]), abs=1e-4)
    noising = activation_patching(b, batch, "noising")
    assert noising["a0.h1"] < 0 < noising["a0.h0"] + 4  # the planted head flips the answer


def test_edge_patching_identities(copy_first):
    b = copy_first.bridge
    batch = copy_first.batch(8)
    g = Graph.of(b)
    values = ablation_values(b, batch, "corrupt")
    base = record(b, batch.clean)
    for node in ("a0.h1", "m0", "a1.h2", "a0.h3"):
        outgoing = [e for e in g.edges if e.startswith(node + "->")]
        by_node = score_node_masks(b, batch, node_mask(g, [node]), values, base=base)
        by_edges = score_edge_masks(b, batch, edge_mask(g, outgoing), values, base=base)
        assert float(by_node) == pytest.approx(float(by_edges), abs=1e-4)
    all_patched = score_edge_masks(b, batch, torch.ones(len(g.edges), dtype=torch.bool), values, base=base)
    assert float(all_patched) == pytest.approx(_plain_logit_diff(b, batch, batch.corrupt), abs=1e-4)


def test_eap_correlates_with_exact_patching_on_small_model():
    b = boot_native(dict(n_layers=2, d_model=32, n_heads=2, d_head=16, d_vocab=30, n_ctx=12, attn_only=False,
                         d_mlp=64, normalization_type="LN", act_fn="gelu", seed=0))
    batch = _random_batch(30, n=8, pos=6)
    clean = record(b, batch.clean)
    corrupt = ablation_values(b, batch, "corrupt")
    # a small corruption (10% of the way to the corrupted activations): first order is accurate
    mix = lambda c, x: None if c is None else c + 0.1 * (x - c)
    from shared.engine.ablation import Values
    values = Values([mix(c, x) for c, x in zip(clean.z, corrupt.z)], [mix(c, x) for c, x in zip(clean.mlp, corrupt.mlp)],
                    mix(clean.embed, corrupt.embed), "mixed")
    exact = path_patching(b, batch, values=values, progress=False)
    approx = eap(b, batch, values=values)
    x = torch.tensor([exact[e] for e in exact])
    y = torch.tensor([approx[e] for e in exact])
    assert torch.corrcoef(torch.stack([x, y]))[0, 1] > 0.98
    full = path_patching(b, batch, progress=False)
    first_order = eap(b, batch)
    y_full = torch.tensor([first_order[e] for e in full])
    assert torch.corrcoef(torch.stack([torch.tensor(list(full.values())), y_full]))[0, 1] > 0.7


def _tiny_hf_gpt2(folder):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(["the cat sat on the mat", "a dog ran in the park", "when mary and john"] * 4,
                            trainers.BpeTrainer(vocab_size=80, special_tokens=["<unk>", "<|endoftext|>"]))
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<|endoftext|>",
                            eos_token="<|endoftext|>").save_pretrained(folder)
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=32, n_embd=32, n_layer=2, n_head=4,
                               bos_token_id=1, eos_token_id=1)).save_pretrained(folder)
    from transformer_lens.model_bridge import TransformerBridge

    return TransformerBridge.boot_transformers(str(folder), device="cpu")


def test_methods_run_on_hf_gpt2(tmp_path):
    b = _tiny_hf_gpt2(tmp_path)
    clean = b.to_tokens(["the cat sat on the", "a dog ran in the"])
    corrupt = b.to_tokens(["a dog sat on the", "the cat ran in the"])
    batch = PromptBatch(clean, corrupt, b.to_tokens(" mat", prepend_bos=False)[0, :1].repeat(2),
                        b.to_tokens(" park", prepend_bos=False)[0, :1].repeat(2))
    ko = knockout_sweep(b, batch, ablation="corrupt", progress=False)
    assert ko.full == pytest.approx(_plain_logit_diff(b, batch, batch.clean), abs=1e-4)
    g, _ = _assert_edge_identities(b, batch, "a0.h2", abs_tol=1e-3)
    scores = eap(b, batch)
    assert len(scores) == len(g.edges) and any(abs(v) > 0 for v in scores.values())


def test_bad_inputs_raise_clear_errors(copy_first, tmp_path):
    b = copy_first.bridge
    batch = copy_first.batch(4)
    with pytest.raises(ParameterError, match="different shapes"):
        PromptBatch(torch.zeros(2, 5, dtype=torch.long), torch.zeros(2, 6, dtype=torch.long), [1, 2], [3, 4])
    with pytest.raises(ParameterError, match="Unknown node name"):
        knockout_sweep(b, batch, nodes=["head7"], progress=False)
    with pytest.raises(ParameterError, match="does not exist"):
        knockout_sweep(b, batch, nodes=["a5.h0"], progress=False)
    with pytest.raises(ParameterError, match="empty"):
        knockout_sweep(b, batch, nodes=[], progress=False)
    with pytest.raises(ParameterError, match="empty"):
        faithfulness(b, batch, Circuit(nodes=[]))
    with pytest.raises(ParameterError, match="not an edge"):
        path_patching(b, batch, edges=["a1.h0->a0.h1:q"], progress=False)
    with pytest.raises(ParameterError, match="Unknown ablation"):
        ablation_values(b, batch, "median")
    with pytest.raises(ParameterError, match="do not fit"):
        score_node_masks(b, batch, node_mask(Graph.of(b), ["m0"]), ablation_values(b, copy_first.batch(3), "corrupt"))


def test_circuit_json_roundtrip_and_figure(tmp_path):
    c = Circuit.from_edges(["input->a0.h0:v", "a0.h0->a1.h0:k", "a1.h0->logits"], scores={"a1.h0->logits": 2.0},
                           method="test", score=1.5, full=2.0)
    path = c.save(tmp_path / "c.json")
    back = Circuit.load(path)
    assert back == c and back.nodes == ["input", "a0.h0", "a1.h0", "logits"]
    fig = circuit_graph(c)
    labels = {t.get_text() for t in fig.axes[0].texts if t.get_bbox_patch() is not None}
    assert labels == {"input", "a0.h0", "a1.h0", "logits"}


def test_edge_patching_on_rotary_rmsnorm_gated_model():
    """Llama-style blocks: patching every edge reproduces the corrupted run, patching all of a node's
    outgoing edges equals ablating the node, and EAP is the derivative of path patching."""
    b = boot_native(dict(n_layers=2, d_model=32, n_heads=2, d_head=16, d_vocab=30, n_ctx=12, attn_only=False,
                         d_mlp=64, normalization_type="RMS", positional_embedding_type="rotary", gated_mlp=True,
                         act_fn="silu", seed=0))
    batch = _random_batch(30, n=4, pos=6)
    g = Graph.of(b)
    values = ablation_values(b, batch, "corrupt")
    base = record(b, batch.clean)
    all_patched = score_edge_masks(b, batch, torch.ones(len(g.edges), dtype=torch.bool), values, base=base)
    assert float(all_patched) == pytest.approx(_plain_logit_diff(b, batch, batch.corrupt), abs=1e-4)
    for node in ("a0.h0", "m0", "a1.h1"):
        outgoing = [e for e in g.edges if e.startswith(node + "->")]
        assert float(score_node_masks(b, batch, node_mask(g, [node]), values, base=base)) == pytest.approx(
            float(score_edge_masks(b, batch, edge_mask(g, outgoing), values, base=base)), abs=1e-4)
    exact, approx = _eap_vs_derivative(b.double(), batch, eps=1e-3)
    assert float((exact - approx).abs().max()) < 5e-3 * float(approx.abs().max())


def test_closed_form_norm_backward_matches_autograd():
    from transformer_lens.model_bridge.sources.native.model import NativeRMSNorm

    from shared.engine.eap_gradients import norm_backward

    torch.manual_seed(0)
    for norm in (torch.nn.LayerNorm(16), NativeRMSNorm(16)):
        with torch.no_grad():
            norm.weight.normal_()
        x, g = torch.randn(2, 3, 16), torch.randn(2, 3, 5, 16)
        _, vjp = torch.func.vjp(norm, x)
        expect = torch.stack([vjp(g[:, :, k])[0] for k in range(5)], 2)
        assert torch.allclose(norm_backward(norm, x, g), expect, atol=1e-5)


def _mixed_values(clean, corrupt, eps):
    """Replacement values a fraction ``eps`` of the way from the clean to the corrupted outputs."""
    from shared.engine.ablation import Values

    mix = lambda c, x: None if c is None else c + eps * (x - c)
    return Values([mix(c, x) for c, x in zip(clean.z, corrupt.z)], [mix(c, x) for c, x in zip(clean.mlp, corrupt.mlp)],
                  mix(clean.embed, corrupt.embed), "mixed")


def _eap_vs_derivative(b, batch, eps):
    """EAP scores and the derivative of exact path patching (finite difference at ``eps``)."""
    clean, corrupt = record(b, batch.clean), ablation_values(b, batch, "corrupt")
    exact = path_patching(b, batch, values=_mixed_values(clean, corrupt, eps), progress=False)
    approx = eap(b, batch, values=corrupt)
    return torch.tensor([exact[e] / eps for e in exact]), torch.tensor([approx[e] for e in exact])


@pytest.mark.parametrize("norm", ["LN", "LNPre", "RMS", None])
def test_eap_is_the_derivative_of_path_patching(norm):
    """EAP is the first-order term of path patching: against a finite difference in float64 it agrees
    to 0.5% of the largest score for every edge (dropping the LayerNorm mean term of the closed-form
    backward gives ~9%, dropping its variance term ~50%)."""
    b = boot_native(dict(n_layers=2, d_model=32, n_heads=2, d_head=16, d_vocab=30, n_ctx=12, attn_only=False,
                         d_mlp=64, normalization_type=norm, act_fn="gelu", seed=0)).double()
    exact, approx = _eap_vs_derivative(b, _random_batch(30, n=5, pos=6), eps=1e-3)
    assert float((exact - approx).abs().max()) < 5e-3 * float(approx.abs().max())


@pytest.mark.parametrize("arch", ["gpt2", "neox", "llama"])
def test_edge_methods_on_hf_bridges(hf_folders, arch):
    """Hugging Face GPT-2, GPT-NeoX (parallel attention and MLP, rotary) and Llama (RMSNorm, rotary, no
    biases) bridges: all edges patched = the corrupted run, a node's outgoing edges = the node, and
    EAP = the derivative of path patching."""
    from transformer_lens.model_bridge import TransformerBridge

    b = TransformerBridge.boot_transformers(str(hf_folders[arch]), device="cpu")
    batch = _random_batch(b.cfg.d_vocab, n=4, pos=6)
    _assert_edge_identities(b, batch, "a0.h1")
    exact, approx = _eap_vs_derivative(b, batch, eps=1e-2)
    assert float((exact - approx).abs().max()) < 0.03 * float(approx.abs().max())
    assert torch.corrcoef(torch.stack([exact, approx]))[0, 1] > 0.999


def test_closed_form_head_input_grads_match_autograd():
    """The folded LayerNorm/RMSNorm backward of the per-head q/k/v input gradients equals autograd's."""
    from transformer_lens.model_bridge.sources.native.model import NativeRMSNorm

    from shared.engine.eap_gradients import LayerInputs, head_input_grads

    torch.manual_seed(0)
    H, d, dh, n, pos = 3, 16, 4, 2, 5
    W = torch.randn(3, H, d, dh)
    Wt = W.permute(1, 0, 3, 2).reshape(3 * H, dh, d)
    for norm in (torch.nn.LayerNorm(d), NativeRMSNorm(d)):
        with torch.no_grad():
            norm.weight.normal_()
        x, grads = torch.randn(n, pos, d), [torch.randn(n, pos, H, dh) for _ in range(3)]
        kind = "layer" if isinstance(norm, torch.nn.LayerNorm) else "rms"
        folded = LayerInputs(norm, kind, (Wt * norm.weight.detach()).contiguous(),
                              (Wt * norm.weight.detach()).mean(-1, keepdim=True) if kind == "layer" else None)
        generic = LayerInputs(norm, "other", Wt, None)
        assert torch.allclose(head_input_grads(folded, x, grads), head_input_grads(generic, x, grads), atol=1e-5)


def test_grouped_query_attention_node_methods_and_ungrouped_edge_methods(tmp_path, tiny_tokenizer):
    """A Llama with 2 key/value heads for 4 query heads: node knockouts match plain hooked runs; edge
    methods stop with one sentence naming ``ungroup_kv``; loaded with ``ungroup_kv=True`` the model
    gives the same logits and the edge methods pass their identities."""
    from hf_local import make_tiny_hf_model
    from shared.zoo.registry import describe, load_model

    folder = make_tiny_hf_model("llama", tmp_path, tiny_tokenizer, n_kv_heads=2)
    b = load_model(str(folder))
    assert b.cfg.n_key_value_heads == 2 and b.cfg.n_heads == 4
    batch = _random_batch(b.cfg.d_vocab, n=4, pos=6)
    ko = knockout_sweep(b, batch, ablation="corrupt", progress=False)
    head = 3  # replace head 3 of layer 1 by its corrupted output in a plain hooked run
    values = ablation_values(b, batch, "corrupt")

    def patch(z, hook):
        z = z.clone()
        z[:, :, head] = values.z[1][:, :, head]
        return z

    expect = _plain_logit_diff(b, batch, batch.clean, [("blocks.1.attn.hook_z", patch)])
    assert float(ko.scores[Graph.of(b).components.index("a1.h3")]) == pytest.approx(expect, abs=1e-4)
    with pytest.raises(ParameterError, match="ungroup_kv=True"):
        eap(b, batch)

    u = load_model(str(folder), ungroup_kv=True)
    assert getattr(u.cfg, "n_key_value_heads", None) in (None, 4) and "ungrouped" in describe(u)
    with torch.no_grad():
        assert torch.allclose(u(batch.clean), b(batch.clean), atol=1e-5)
    _assert_edge_identities(u, batch, "a0.h1")
    exact, approx = _eap_vs_derivative(u, batch, eps=1e-2)
    assert torch.corrcoef(torch.stack([exact, approx]))[0, 1] > 0.999

@pytest.mark.parametrize("change, message", [
    (dict(clean=torch.tensor([[1.0, 2.0]])), "integer tensor"),
    (dict(clean=torch.tensor([[1, -2]]), corrupt=torch.tensor([[1, 2]])), "negative token id"),
    (dict(answer_pos=torch.tensor([5])), "answer_pos must lie between 0 and 1"),
])
def test_prompt_batch_refuses_bad_ids_in_one_sentence(change, message):
    fields = dict(clean=torch.tensor([[1, 2]]), corrupt=torch.tensor([[1, 3]]), correct=[4], incorrect=[5])
    with pytest.raises(ParameterError, match=message):
        PromptBatch(**{**fields, **change})


def test_prompt_batch_is_checked_against_the_model_before_any_run(copy_first):
    b = copy_first.bridge
    vocab, n_ctx = b.cfg.d_vocab, b.cfg.n_ctx
    too_big = PromptBatch(torch.tensor([[1, vocab]]), torch.tensor([[1, 2]]), [1], [2])
    with pytest.raises(ParameterError, match=f"vocabulary has {vocab} tokens"):
        knockout_sweep(b, too_big, progress=False)
    too_long = PromptBatch(torch.ones(1, n_ctx + 1, dtype=torch.long), torch.ones(1, n_ctx + 1, dtype=torch.long),
                           [1], [2])
    with pytest.raises(ParameterError, match="more than the model's context"):
        eap(b, too_long)
