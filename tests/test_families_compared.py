"""The role comparison of the ``families_compared`` chapter, against hand-computed sets."""
from collections import Counter

import pandas as pd
import pytest

from shared.chapters import families as F


def test_head_roles_follow_the_cutoff_successor_first():
    scores = pd.DataFrame({"successor_mean": [0.9, 0.2, 0.5, 0.1], "copy_mean": [0.8, 0.7, 0.0, 0.49]},
                          index=["a0.h0", "a0.h1", "a1.h0", "a1.h1"])
    assert F.head_roles(scores, 0.5) == {"a0.h0": "successor head", "a0.h1": "copy head",
                                         "a1.h0": "successor head", "a1.h1": "other head"}


def test_node_roles_counts_mlps_and_unknown_heads():
    roles = {"a0.h0": "successor head", "a1.h2": "copy head"}
    got = F.node_roles(["a0.h0", "m0", "a1.h2", "a2.h1", "m2"], roles)
    assert got == Counter({"successor head": 1, "copy head": 1, "other head": 1, "MLP": 2})


def test_role_jaccard_is_min_over_max_of_counts():
    a = Counter({"successor head": 2, "MLP": 1})
    b = Counter({"successor head": 1, "MLP": 3, "other head": 1})
    # min: 1 + 1 + 0 = 2; max: 2 + 3 + 1 = 6
    assert F.role_jaccard(a, b) == pytest.approx(2 / 6)
    assert F.role_jaccard(a, a) == 1.0
    assert F.role_jaccard(Counter({"MLP": 2}), Counter({"copy head": 1})) == 0.0
    assert F.role_jaccard(Counter(), Counter()) == 1.0


def test_role_overlap_and_roles_in_all():
    counts = {"gpt": Counter({"successor head": 1, "MLP": 2}),
              "llama": Counter({"successor head": 2, "other head": 1, "MLP": 1}),
              "neox": Counter({"MLP": 1, "other head": 3})}
    table = F.role_overlap(counts)
    assert list(table.index) == ["gpt", "llama", "neox"]
    assert table.loc["gpt", "llama"] == pytest.approx(2 / 5)   # min 1+0+1, max 2+1+2
    assert table.loc["llama", "neox"] == pytest.approx(2 / 6)  # min 0+1+1, max 2+3+1
    assert table.loc["gpt", "neox"] == table.loc["neox", "gpt"] == pytest.approx(1 / 6)  # min 0+0+1, max 1+3+2
    assert F.roles_in_all(counts) == ["MLP"]
    assert F.roles_in_all({k: counts[k] for k in ("gpt", "llama")}) == ["successor head", "MLP"]
    assert F.roles_in_all({}) == []
    assert F.role_table(counts).loc["neox"].tolist() == [0, 0, 3, 1]


def test_components_drop_input_and_logits_in_forward_order():
    assert F.components(["input", "m0", "a2.h0", "logits", "a1.h2", "a0.h1", "a1.h0"]) == \
        ["a0.h1", "m0", "a1.h0", "a1.h2", "a2.h0"]


def test_labelled_heads_names_each_role():
    roles = {"a0.h0": "successor head", "a1.h2": "copy head"}
    assert F.labelled_heads(["a0.h0", "a1.h1", "a1.h2"], roles) == \
        "a0.h0 (successor head), a1.h1 (other head), a1.h2 (copy head)"
    assert F.labelled_heads([], roles) == "—"


def test_pair_table_puts_node_and_edge_circuits_side_by_side():
    node = {"x": Counter({"MLP": 2}), "y": Counter({"MLP": 1, "other head": 1})}
    edge = {"x": Counter({"MLP": 3, "copy head": 1}), "y": Counter({"MLP": 3, "other head": 2})}
    names = {"x": ["m0", "a2.h1", "m1", "m2"], "y": ["m0", "m1", "m2", "a0.h0", "a1.h1"]}
    row = F.pair_table([("x", "y")], node, edge, names).iloc[0]
    assert row["node circuits, roles"] == pytest.approx(1 / 3)   # min 1+0, max 2+1
    assert row["edge circuits, roles"] == pytest.approx(3 / 6)   # min 3+0+0, max 3+1+2
    assert row["edge circuits, node names"] == pytest.approx(3 / 6)  # m0, m1, m2 of 6 names


@pytest.fixture(scope="module")
def family_models():
    from shared.chapters.tokenizers import load_models
    return load_models(["suite-m-s0", "family-llama-m", "family-neox-m"])


@pytest.mark.parametrize("model_name", ["suite-m-s0", "family-llama-m", "family-neox-m"])
def test_edge_circuit_of_each_family_is_faithful_minimal_and_labelled_by_role(family_models, model_name):
    """The chapter's EAP-IG edge circuit on months: it reaches the target when measured again here
    (mean ablation per position, independently of the function), one edge fewer does not, its edges
    belong to the family's own graph (NeoX: no head feeds the MLP of its own layer), and the roles the
    chapter prints for its heads are those the chapter's role function gives them."""
    from shared.analysis.ov import ov_score_table
    from shared.chapters.sequences import mean_values, task_data
    from shared.engine.circuit import Circuit, faithfulness
    from shared.engine.graph import Graph, parse_node, split_edge
    from shared.tasks.sequences import ordinal_lists

    model, target = family_models[model_name], 0.8
    found = F.edge_circuits({model_name: model}, [(model_name, "months")], 8, 0, target, 2, progress=False)
    c = found[(model_name, "months")]
    data = task_data(model, "months", 8, 0, template="bare")
    values = mean_values(model, data)
    again = faithfulness(model, data.batch, Circuit.from_edges(c.circuit.edges), values=values)
    assert c.circuit.info["reached"]
    assert again.normalized >= target
    assert again.normalized == pytest.approx(c.faith.normalized, abs=1e-4)
    k = c.circuit.info["k"]
    ranked = sorted(c.circuit.scores, key=lambda e: -abs(c.circuit.scores[e]))
    assert ranked == c.circuit.edges and k == len(c.circuit.edges) > 0
    if k > 1:  # the scan tried every size below k down to the last grid point, all below the target
        assert faithfulness(model, data.batch, Circuit.from_edges(ranked[:k - 1]), values=values).normalized < target
    graph = Graph.of(model)
    assert c.n_edges == len(graph.edges) and set(c.circuit.edges) <= set(graph.edges)
    assert graph.parallel == (model_name == "family-neox-m")
    if graph.parallel:
        assert not [e for e in graph.edges if parse_node(split_edge(e)[0]).kind == "head"
                    and split_edge(e)[1] == f"m{parse_node(split_edge(e)[0]).layer}"]
    roles = F.head_roles(ov_score_table(model, ordinal_lists(model, ["months"]), k=5, mlp0=True), 0.5)
    assert len(roles) == graph.n_heads * graph.n_layers
    table = F.edge_circuit_table(found, {model_name: roles}, {(model_name, "months"): ["m0"]})
    row = table.loc[f"{model_name} · months"]
    heads = {n for e in c.circuit.edges for n in split_edge(e)[:2] if parse_node(n).kind == "head"}
    printed = dict(part[:-1].split(" (") for part in row["heads (role)"].split(", ")) if heads else {}
    assert printed == {h: roles[h] for h in heads}
    assert row["edges kept"] == k and row["faithfulness"] == pytest.approx(c.faith.normalized)
    nodes = F.components(c.circuit.nodes)
    assert row["Jaccard with node circuit"] == pytest.approx(("m0" in nodes) / len(set(nodes) | {"m0"}))
