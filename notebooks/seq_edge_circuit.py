# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Sequence continuation: the edge circuit, by path patching and by EAP-IG
#
# A node circuit says *which* components matter, not *how they talk*. **Through which connections —
# and through a head's query, key or value — does the information flow from the members to the
# prediction?** We refine each task's node circuit into an edge circuit by path patching, draw it,
# and compare it with the circuit of the same size that the much cheaper gradient estimate EAP-IG
# picks from the whole model.

# %% tags=["remove-cell"]
# On Colab, install the book's code and shipped models first (this cell does nothing elsewhere).
import sys
if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/circuits-book/circuits-book")  # noqa: F821

# %% tags=["parameters"]
model_name = "suite-l-s0"  # a local model (see the models page) or a pretrained name such as "gpt2-small"
task_names = ["numerals", "number_words", "months"]
n_prompts = 48          # prompts per task (only prompts the model answers correctly are kept)
threshold = 0.8         # node circuit and edge circuit both keep this share of the logit difference
ig_steps = 5            # interpolation steps of EAP-IG
seed = 0

# %%
import pandas as pd
import torch

from shared.chapters import open_chapter, say, show_table
from shared.chapters import sequences as sc
from shared.engine.circuit import Circuit
from shared.engine.graph import Graph, split_edge
from shared.engine.patching import edge_mask, path_patching, score_edge_masks
from shared.plots.circuits import circuit_graph

# grouped-query models get one key/value head per query head (same outputs), as edge methods need
ch = open_chapter("seq_edge_circuit", model_name=model_name, task_names=task_names, n_prompts=n_prompts,
                  threshold=threshold, ig_steps=ig_steps, seed=seed, ungroup_kv=True)
model = ch.model

# %% [markdown]
# ## Method
#
# The model's computational graph has an edge from every node to every later node that reads the
# residual stream it writes to; an edge into a head enters through its query, key or value input
# (`a0.h1->a2.h3:v`). **Path patching** replaces one edge at a time: the receiver reads the
# residual stream with that sender's output swapped for its mean value (mean over the task's
# prompts, per position), everything else recomputed normally. We do this for every edge *inside*
# the task's node circuit (between its nodes, the input and the logits), rank the edges by the
# logit difference they cost, and keep the fewest top-ranked edges whose circuit — *every other
# edge of the model* mean-ablated — reaches `threshold` of the intact logit difference.
#
# **EAP-IG** scores every edge of the whole model at once with gradients (edge attribution
# patching, gradients averaged along the path from the mean to the real input). We take its top
# edges, as many as the path-patching circuit has, and measure their circuit the same way.

# %%
data = sc.load_tasks(model, task_names, n_prompts, seed)
nodes = sc.node_circuits(model, task_names, n_prompts, threshold, seed)
graph = Graph.of(model)
edge_circuits = {}
for t in task_names:
    batch, values, full = data[t].batch, sc.mean_values(model, data[t]), sc.full_score(model, data[t])
    inside = set(nodes[t].nodes) | {"input", "logits"}
    candidates = [e for e in graph.edges if set(split_edge(e)[:2]) <= inside]
    effects = path_patching(model, batch, candidates, values=values)  # drop of the logit diff. per edge
    ranked = sorted(candidates, key=lambda e: -effects[e])
    # circuit of the top k edges for every k: every other edge of the model patched to its mean
    keep = torch.stack([edge_mask(graph, ranked[:k]) for k in range(1, len(ranked) + 1)])
    prefix_scores = score_edge_masks(model, batch, ~keep, values)
    reached = (prefix_scores >= threshold * full).nonzero().flatten()
    k = int(reached[0]) + 1 if len(reached) else len(ranked)  # the first prefix over the threshold
    edge_circuits[t] = Circuit.from_edges(ranked[:k], scores=effects, method="path patching", full=full,
                                          score=float(prefix_scores[k - 1]),
                                          info={"threshold": threshold, "candidates": len(ranked)})
eap_circuits = {t: sc.eap_ig_circuit(model, data[t], len(edge_circuits[t].edges), steps=ig_steps) for t in task_names}


def percent(circuit):
    """The circuit's logit difference in % of the intact model's."""
    return 100 * circuit.score / circuit.full

# %% [markdown]
# ## Result
#
# ### The path-patching edge circuits

# %%
for t, c in edge_circuits.items():
    circuit_graph(c, graph, title=f"{model_name}, {t}: {len(c.edges)} edges keep {percent(c):.0f}% "
                                  f"(of {c.info['candidates']} edges in the node circuit)", name=f"edges_{t}")

# %%
def port_counts(edges):
    """How many edges feed a query, a key, a value, or an MLP or the logits."""
    counts = {"into q": 0, "into k": 0, "into v": 0, "into MLP/logits": 0}
    for e in edges:
        counts[f"into {split_edge(e)[2] or 'MLP/logits'}"] += 1
    return counts


summary = pd.DataFrame.from_dict({t: {"nodes": nodes[t].size, "candidate edges": c.info["candidates"],
                                      "edges kept": len(c.edges), "% of logit diff.": percent(c),
                                      **port_counts(c.edges)}
                                  for t, c in edge_circuits.items()}, orient="index")
show_table(summary, digits=1)

# %%
say("\n".join(
    f"* **{t}**: {len(c.edges)} of the {c.info['candidates']} edges inside the node circuit keep {percent(c):.0f}% of "
    f"the logit difference; the strongest are " + ", ".join(f"`{e}` ({c.scores[e]:.2f})" for e in c.edges[:3])
    + "." for t, c in edge_circuits.items()))

# %% [markdown]
# ### Path patching versus EAP-IG at the same size

# %%
compare = pd.DataFrame.from_dict({t: dict(
    edges=len(edge_circuits[t].edges),
    path_patching_percent=round(percent(edge_circuits[t]), 1),
    eap_ig_percent=round(percent(eap_circuits[t]), 1),
    edge_jaccard=round(sc.jaccard(edge_circuits[t].edges, eap_circuits[t].edges), 2),
    node_jaccard=round(sc.jaccard(edge_circuits[t].nodes, eap_circuits[t].nodes), 2),
) for t in task_names}, orient="index")
show_table(compare.rename(columns={"path_patching_percent": "path patching (% of logit diff.)",
                                   "eap_ig_percent": "EAP-IG (% of logit diff.)", "edge_jaccard": "edge Jaccard",
                                   "node_jaccard": "node Jaccard"}),
           digits={"path patching (% of logit diff.)": 1, "EAP-IG (% of logit diff.)": 1})

# %%
t0 = task_names[0]
circuit_graph(eap_circuits[t0], graph, name="eap_ig_edges",
              title=f"{model_name}, {t0}: top {len(eap_circuits[t0].edges)} EAP-IG edges keep {percent(eap_circuits[t0]):.0f}%")

# %%
say("\n".join(
    f"* **{t}**: the top {int(row.edges)} EAP-IG edges share {row.edge_jaccard:.2f} of their edges (Jaccard) and "
    f"{row.node_jaccard:.2f} of their nodes with the path-patching circuit, and keep {row.eap_ig_percent:.0f}% of the "
    f"logit difference against {row.path_patching_percent:.0f}%." for t, row in compare.iterrows()))

# %% [markdown]
# ## What it means
#
# Edges into a head's **value** carry *what* it moves (here, which member), edges into its
# **query** or **key** decide *where* it looks; a circuit whose key/query edges come from earlier
# heads reading the members is using those heads to find the last member. Path patching restricted
# to the node circuit is exact but only sees edges between nodes that survived pruning; EAP-IG
# sees every edge but is a first-order estimate, so where the two disagree the path-patching
# circuit is the one to trust and the EAP-IG score says how far the estimate can be taken.
