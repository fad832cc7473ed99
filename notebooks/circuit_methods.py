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
# # Do circuit-discovery methods find a circuit we planted ourselves?
#
# Every later chapter finds circuits with the same few tools: knockout sweeps, activation and path
# patching, iterative node pruning, edge attribution patching (EAP, EAP-IG) and greedy ACDC-style
# edge pruning. Before trusting them on trained models we run them on models whose circuits we
# wrote by hand (`shared/planted.py`): a two-layer **induction** circuit, and a **copy-first-token**
# circuit that passes through an MLP, each surrounded by noise heads.
#
# The same engine was also run beside auto-circuit 1.0.1, a public edge-level library, on a suite
# model with the same prompts, metric and edges ([the circuit-method benchmark](methods_benchmark.md)):
# **path patching** and **EAP** give the same scores as its edge patching and mask-gradient EAP
# (Pearson 1.0000, Spearman 0.9998 and 1.0000 on `suite-s-s0`, differences of float32 rounding), and
# **ACDC** at the same threshold keeps exactly the same edges. **EAP-IG** differs by definition: auto-circuit integrates along the edge
# masks (every edge moved from clean to corrupted at once), the book along the input embeddings (as
# MIB's EAP-IG-inputs), so the two rank edges alike but not identically.

# %% tags=["remove-cell"]
# On Colab, install the book's code and shipped models first (this cell does nothing elsewhere).
import sys
if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/circuits-book/circuits-book")  # noqa: F821

# %% tags=["parameters"]
models = ["induction", "copy_first"]  # planted models (shared.zoo.planted.PLANTED)
n_prompts = 32
ig_steps = 5
prune_threshold = 0.8  # node pruning keeps a node if removing it drops below this share of the metric
acdc_threshold = 0.02
seed = 0

# %%
import pandas as pd

from shared import plots
from shared.chapters import count, open_chapter, say, show_table
from shared.chapters.common import report_run
from shared.engine.ablation import knockout_sweep
from shared.engine.circuit import faithfulness_curve, roc_auc
from shared.engine.eap import eap, eap_ig
from shared.engine.patching import activation_patching, path_patching
from shared.engine.pruning import acdc, prune_nodes
from shared.zoo.planted import planted_model

ch = open_chapter("circuit_methods", models=models, n_prompts=n_prompts, ig_steps=ig_steps,
                  prune_threshold=prune_threshold, acdc_threshold=acdc_threshold, seed=seed)
planted = {name: planted_model(name, seed=seed) for name in models}
for name, pm in planted.items():
    report_run(pm.bridge, planted=name)

# %% [markdown]
# ## Every method, every planted model
# Node methods are scored by how well they separate the planted heads/MLPs from the rest (ROC AUC
# of the absolute effect); edge methods by how well they separate the planted edges. Pruning
# methods return a set, so we report whether it equals the planted one (one column per planted model:
# `AUC` for a scoring method, `set:` for a pruning method).

# %%
rows, results = [], {}
for name, pm in planted.items():
    bridge, batch = pm.bridge, pm.batch(n_prompts, seed=seed)
    ko = knockout_sweep(bridge, batch, ablation="mean", progress=False)
    den = activation_patching(bridge, batch, "denoising")
    low = min(den.values())
    pruned = prune_nodes(bridge, batch, threshold=prune_threshold, progress=False)
    edge_scores = {"path patching": path_patching(bridge, batch, progress=False),
                   "EAP": eap(bridge, batch),
                   f"EAP-IG ({ig_steps} steps)": eap_ig(bridge, batch, steps=ig_steps)}
    found = acdc(bridge, batch, threshold=acdc_threshold, progress=False)
    results[name] = dict(ko=ko, pruned=pruned, acdc=found, edges=edge_scores, batch=batch)
    rows += [
        (name, "knockout sweep (mean)", "nodes", roc_auc(ko.as_dict(), pm.nodes), ""),
        (name, "activation patching (denoising)", "nodes", roc_auc({k: v - low for k, v in den.items()}, pm.nodes), ""),
        (name, "iterative node pruning", "nodes", None, "exact" if pruned.nodes == pm.nodes else f"{pruned.nodes}"),
    ]
    rows += [(name, method, "edges", roc_auc(s, pm.edges), "") for method, s in edge_scores.items()]
    rows.append((name, "ACDC-style pruning", "edges", None,
                 "exact" if set(found.edges) == set(pm.edges) else
                 f"{len(set(found.edges) & set(pm.edges))}/{len(pm.edges)} planted, {len(found.edges)} kept"))
table = pd.DataFrame(rows, columns=["model", "method", "level", "ROC AUC", "recovered set"])
cells = [f"AUC {auc:.2f}" if pd.notna(auc) else f"set: {found}" for auc, found in zip(table["ROC AUC"], table["recovered set"])]
show_table(table.assign(result=cells).pivot_table(index=["method", "level"], columns="model", values="result",
                                                  aggfunc="first", sort=False)[list(planted)].rename_axis(columns=None))

# %%
aucs = table["ROC AUC"].dropna()
exact = (table["recovered set"] == "exact").sum()
say(f"Across {count(len(planted), 'planted model')}, the scoring methods reach a ROC AUC between "
    f"**{aucs.min():.2f}** and **{aucs.max():.2f}**, and the pruning methods return exactly the planted "
    f"set in **{exact}** of {table['recovered set'].ne('').sum()} runs.")

# %% [markdown]
# ## Knockout heatmaps
# Mean-ablating one node at a time: the planted nodes stand out; the noise heads move the metric
# only through their small leak into the output subspace.

# %%
for name, res in results.items():
    plots.circuits.knockout_heatmap(res["ko"], title=name, name=f"knockout_{name}")

# %% [markdown]
# ## The circuits found by pruning
# Edges into a head are coloured by the input they feed (query, key or value).

# %%
for name, res in results.items():
    plots.circuits.circuit_graph(res["acdc"], title=f"{name}: ACDC-style edge pruning", name=f"acdc_{name}")
    say(f"**{name}**: node pruning kept {', '.join(res['pruned'].nodes)} (metric {res['pruned'].score:.2f} "
        f"of {res['pruned'].full:.2f}); ACDC kept {len(res['acdc'].edges)} edges scoring {res['acdc'].score:.2f}.")

# %% [markdown]
# ## Faithfulness against circuit size
# Keep the top-k edges by EAP score, patch every other edge to its corrupted value, and measure the
# normalised metric (0: corrupted behaviour, 1: the full model).

# %%
curves = {}
for name, res in results.items():
    pm = planted[name]
    curves[name] = faithfulness_curve(pm.bridge, res["batch"], res["edges"]["EAP"])
    k = len(pm.edges)
    at_k = faithfulness_curve(pm.bridge, res["batch"], res["edges"]["EAP"], sizes=[k]).normalized[0]
    say(f"**{name}**: the top {k} EAP edges (as many as were planted) recover {at_k:.0%} of the metric.")
plots.circuits.faithfulness_curves(curves, name="faithfulness")
