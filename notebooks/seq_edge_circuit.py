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
model_name = "seq-lm"   # a local model (see the models page) or a pretrained name such as "gpt2-small"
task_names = ["numerals", "number_words", "months"]
n_prompts = 48          # prompts per task (only prompts the model answers correctly are kept)
threshold = 0.8         # node circuit and edge circuit both keep this share of the logit difference
ig_steps = 5            # interpolation steps of EAP-IG
seed = 0

# %%
import matplotlib.pyplot as plt
import pandas as pd

from shared.chapters import sequences as sc
from shared.engine.circuit import Circuit
from shared.engine.graph import Graph
from shared.chapters.common import say

# grouped-query models get one key/value head per query head (same outputs), as edge methods need
model, task_names = sc.start_chapter(model_name, task_names, seed, ungroup_kv=True, n_prompts=n_prompts,
                                      threshold=threshold, ig_steps=ig_steps)

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
edge_results = {t: sc.edge_circuit(model, data[t], nodes[t]["nodes"], threshold) for t in task_names}
eap_results = {t: sc.eap_ig_edges(model, data[t], len(edge_results[t]["edges"]), steps=ig_steps) for t in task_names}

# %% [markdown]
# ## Result
#
# ### The path-patching edge circuits

# %%
graph = Graph.of(model)
for t in task_names:
    r = edge_results[t]
    circuit = Circuit.from_edges(r["edges"], scores=r["effects"], method="path patching", score=r["percent"] / 100 * r["full"],
                                 full=r["full"])
    fig = circuit.figure(graph, title=f"{model_name}, {t}: {len(r['edges'])} edges keep {r['percent']:.0f}% "
                                      f"(of {r['n_candidates']} edges in the node circuit)")
    plt.show()

# %%
def port_counts(edges):
    counts = {"q": 0, "k": 0, "v": 0, "MLP/logits": 0}
    for e in edges:
        port = e.rsplit(":", 1)[1] if ":" in e.split("->")[1] else None
        counts[port or "MLP/logits"] += 1
    return counts


summary = pd.DataFrame({t: dict(node_circuit=nodes[t]["size"], candidate_edges=edge_results[t]["n_candidates"],
                                edges=len(edge_results[t]["edges"]), percent=round(edge_results[t]["percent"], 1),
                                **port_counts(edge_results[t]["edges"])) for t in task_names}).T
summary

# %%
say("\n".join(
    f"* **{t}**: {len(r['edges'])} of the {r['n_candidates']} edges inside the node circuit keep {r['percent']:.0f}% of "
    f"the logit difference; the strongest are " + ", ".join(f"`{e}` ({r['effects'][e]:.2f})" for e in r["edges"][:3])
    + "." for t, r in edge_results.items()))

# %% [markdown]
# ### Path patching versus EAP-IG at the same size

# %%
compare = pd.DataFrame({t: dict(
    edges=len(edge_results[t]["edges"]),
    path_patching_percent=round(edge_results[t]["percent"], 1),
    eap_ig_percent=round(eap_results[t]["percent"], 1),
    edge_jaccard=round(sc.jaccard(edge_results[t]["edges"], eap_results[t]["edges"]), 2),
    node_jaccard=round(sc.jaccard(Circuit.from_edges(edge_results[t]["edges"]).nodes,
                                  Circuit.from_edges(eap_results[t]["edges"]).nodes), 2),
) for t in task_names}).T
compare

# %%
t0 = task_names[0]
fig = Circuit.from_edges(eap_results[t0]["edges"], scores=eap_results[t0]["scores"], method="EAP-IG").figure(
    graph, title=f"{model_name}, {t0}: top {len(eap_results[t0]['edges'])} EAP-IG edges keep {eap_results[t0]['percent']:.0f}%")
plt.show()

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
