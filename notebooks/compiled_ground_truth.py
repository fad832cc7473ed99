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
# # Compiled ground truth: scoring circuit methods on Tracr models
#
# The planted models of the previous chapters were built by hand, so their "true circuit" is what
# we meant to plant. Tracr (Lindner et al. 2023) removes that judgement: it **compiles a RASP program
# into transformer weights**, one attention head or MLP per operation, each value of the program in
# its own one-hot block of the residual stream. Which node reads what another node writes is then a
# fact of the weights, not an interpretation. The question of this chapter: **given circuits that are
# known exactly, which circuit-discovery method recovers them, how faithful are its top edges, and at
# what cost?** The scores are MIB's (Mueller et al. 2025): ROC AUC against the true edges, CPR and CMD
# over the edge shares, seconds and forward passes.

# %% tags=["remove-cell"]
# On Colab, install the book's code and shipped models first (this cell does nothing elsewhere).
import sys
if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/circuits-book/circuits-book")  # noqa: F821

# %% tags=["parameters"]
programs = ["reverse", "sort", "hist", "sort_freq"]  # compiled RASP programs (shared/zoo/compiled.py)
n_prompts = 16
ig_steps = 5
acdc_threshold = 0.02
prune_threshold = 0.8   # node pruning keeps a node unless the circuit without it still reaches this faithfulness
l0 = 1.0                # edge masks: weight of the L0 penalty
mask_steps = 150        # edge masks: training steps
min_auc = 0.99          # a method "finds the circuit" of a program if its ROC AUC is at least this
zero_tol = 1e-9         # an edge score at most this share of the method's largest one counts as 0 (a tie)
seed = 0

# %%
import pandas as pd

from shared import plots
from shared.chapters import count, open_chapter, say, show_table
from shared.chapters.common import report_run
from shared.chapters.compiled import run_compiled
from shared.engine.circuit import Circuit
from shared.engine.graph import Graph
from shared.engine.mib import MIB_PERCENTS
from shared.errors import ParameterError
from shared.zoo.compiled import PROGRAMS, compiled_model

ch = open_chapter("compiled_ground_truth", programs=programs, n_prompts=n_prompts, ig_steps=ig_steps,
                  acdc_threshold=acdc_threshold, prune_threshold=prune_threshold, l0=l0, mask_steps=mask_steps,
                  min_auc=min_auc, zero_tol=zero_tol, seed=seed)
for program in programs:
    report_run(compiled_model(program).bridge)

# %% [markdown]
# ## The programs and what Tracr made of them
# Each program comes from Tracr's library (`tracr.compiler.lib`) and was compiled once with
# `tracr-pypi` on a CPU; the weights were converted with TransformerLens's
# `transformer_lens.utilities.tracr` into the book's native model and saved in float16 (rounding
# Tracr's weights to float16 changes no answer and no nonzero pattern). At compile time the
# converted model was run against Tracr's own forward pass on random inputs, and the ground truth
# was read off Tracr's blocks: **an edge `s -> r` is true when `r` reads (through its query, key,
# value or MLP input) a residual direction that `s` writes**. Every input is `BOS` and five tokens;
# the model is bidirectional, as Tracr compiles it.

# %%
models = {p: compiled_model(p) for p in programs}
show_table(pd.DataFrame([{"program": p, "computes": PROGRAMS[p].description, "layers": cm.bridge.cfg.n_layers,
                          "d_model": cm.bridge.cfg.d_model, "nodes used": len(cm.nodes),
                          "true edges": len(cm.edges), "edges": len(Graph.of(cm.bridge).edges)}
                         for p, cm in models.items()]))

# %%
seconds = [cm.record["compile_seconds"] for cm in models.values()]
agree = min(cm.record["agreement_with_tracr"] for cm in models.values())
say(f"Tracr compiled each program in {min(seconds):.0f} to {max(seconds):.0f} s, and the converted models gave "
    f"Tracr's output on {agree:.0%} of the check inputs.")

# %% [markdown]
# What each node computes (the RASP operation Tracr placed there) and which residual blocks it reads
# and writes:

# %%
show_table(pd.DataFrame([{"program": p, "node": b["node"], "RASP operation": cm.ops[b["node"]],
                          "reads": "; ".join(f"{port}: {', '.join(sorted({d.split(':')[0] for d in dirs}))}"
                                             for port, dirs in b["reads"].items()),
                          "writes": ", ".join(sorted({d.split(":")[0] for d in b["writes"]}))}
                         for p, cm in models.items() for b in cm.record["blocks"]]))

# %%
plots.circuits.circuit_graphs({f"{p}: {count(len(cm.edges), 'true edge')}": Circuit.from_edges(cm.edges)
                               for p, cm in models.items()},
                              labels={f"{p}: {count(len(cm.edges), 'true edge')}": cm.ops for p, cm in models.items()},
                              name="ground_truth")

# %% [markdown]
# ## Is the ground truth exact?
# Each task scores one position p of the output: the clean input's answer there against the answer of
# a corrupted input (another random input whose answer at p differs), as a logit difference. We keep
# only the true edges (every other edge patched to the corrupted run), then patch every other edge
# alone, and count the true edges that move the metric when patched alone (**active** on this task).

# %%
checks, results, _ = run_compiled(programs, n_prompts, seed=seed, min_accuracy=1.0, zero_tol=zero_tol,
                                  ig_steps=ig_steps, acdc_threshold=acdc_threshold, prune_threshold=prune_threshold,
                                  l0=l0, mask_steps=mask_steps)
show_table(checks, digits={"largest |truth only - full|": 6, "largest other-edge effect": 6})

# %%
for _, row in checks.iterrows():
    if row["accuracy"] < 1:
        say(f"The compiled **{row['program']}** model answers only {row['accuracy']:.0%} of the prompts, so it does "
            f"not do its task here and its methods are not scored.")
exact = checks[(checks["largest |truth only - full|"] < 1e-4) & (checks["largest other-edge effect"] < 1e-4)]
full_range = (f"{checks['full'].min():.2f}" if checks["full"].max() - checks["full"].min() < 5e-3
              else f"{checks['full'].min():.2f} to {checks['full'].max():.2f}")
say(f"On {count(len(exact), 'program')} of {len(checks)}, keeping only the true edges reproduces the model "
    f"(largest difference {checks['largest |truth only - full|'].max():.1e} in a logit difference of "
    f"{full_range}) and patching any other single edge changes "
    f"it by at most {checks['largest other-edge effect'].max():.1e}. The nonzero pattern of the weights gives "
    f"the same edges as Tracr's blocks for {count(int(checks['weights agree'].sum()), 'program')}.")
idle = checks[checks["active truth edges"] < checks["truth edges"]]
say("Not every true edge matters for a task, though: "
    + "; ".join(f"**{r['program']}** has {r['active truth edges']} active of {r['truth edges']}"
                for _, r in idle.iterrows())
    + ". A true edge is idle when the corruption leaves what it carries unchanged"
    + (" — in `reverse` the length and the index arithmetic are the same for every input of five tokens, "
       "so only the edges that fetch the token move the answer" if "reverse" in set(idle["program"]) else "")
    + ". We report ROC AUC against all true edges (the compiled truth) and against the active ones (what "
      "any method can see on this task)." if len(idle) else
    "Every true edge moves the metric when patched alone.")
if results.empty:
    raise ParameterError("No compiled model does its task on these prompts; choose other programs.")

# %% [markdown]
# ## The methods against the compiled truth
# The edge methods of the method-comparison chapter (exact path patching, EAP, EAP-IG over the inputs
# and over the activations, greedy ACDC-style pruning, learned edge masks) and node pruning, whose kept
# nodes' edges are ranked first.
# For each method, the faithfulness f of its top edges at MIB's shares (0.1 % ... 100 %), CPR (area
# under f) and CMD (area between f and 1); cost in seconds and forward passes. Against the active
# edges, a score at most `zero_tol` times the method's largest one counts as zero (a tie): a gradient
# through a flat step gives scores like 1e-19, rounding noise that must not rank an edge. `active
# scored 0` counts the active true edges a method scores zero in that sense.

# %%
auc = results.pivot(index="method", columns="program", values="ROC AUC (active)")
auc = auc.loc[list(dict.fromkeys(results["method"])), [p for p in programs if p in auc.columns]]
plots.figures.matrix(auc.to_numpy(), auc.index, auc.columns, title="ROC AUC against the edges each task moves",
                     xlabel="compiled program", label="ROC AUC", vmin=0, vmax=1, name="auc")

# %%
show_table(results[["program", "method", "ROC AUC", "ROC AUC (active)", "active scored 0", "CPR", "CMD", "seconds",
                    "forward passes"]
                   + [f"f@{p:g}%" for p in MIB_PERCENTS if p >= 10]],
           digits={"seconds": 2, "forward passes": 0})

# %% [markdown]
# ## What the numbers advise

# %%
summary = results.groupby("method", sort=False).agg(
    lowest_auc=("ROC AUC (active)", "min"), mean_auc=("ROC AUC (active)", "mean"), compiled_auc=("ROC AUC", "mean"),
    cpr=("CPR", "mean"), cmd=("CMD", "mean"), passes=("forward passes", "median"))
show_table(summary.rename(columns={"lowest_auc": "lowest ROC AUC (active)", "mean_auc": "mean ROC AUC (active)",
                                   "compiled_auc": "mean ROC AUC (all true)", "cpr": "mean CPR",
                                   "cmd": "mean CMD", "passes": "median forward passes"}).reset_index(),
           digits={"median forward passes": 0})

# %%
finds = summary[summary["lowest_auc"] >= min_auc].sort_values("passes")
best = summary["mean_auc"].idxmax()
say(f"Against the edges each task actually uses, {count(len(finds), 'method')} of {len(summary)} rank them first "
    f"on every program (ROC AUC ≥ {min_auc:g}): {', '.join(f'**{m}**' for m in finds.index) or 'none'}"
    + (f"; the cheapest of them is **{finds.index[0]}** (median {finds['passes'].iloc[0]:.0f} forward passes)."
       if len(finds) else f". The best on average is **{best}** (mean ROC AUC {summary.loc[best, 'mean_auc']:.2f}).")
    )
for method, row in summary.sort_values("lowest_auc").iterrows():
    if row["lowest_auc"] < min_auc:
        worst = results[results["method"] == method].sort_values("ROC AUC (active)").iloc[0]
        say(f"**{method}** misses on **{worst['program']}** (ROC AUC {worst['ROC AUC (active)']:.2f} against its "
            f"active edges, CPR {worst['CPR']:.2f}).")
blind = results[results["method"].str.startswith("EAP") & (results["active scored 0"] > 0)]
if len(blind):
    say("The gradient methods are blind in a specific way: "
        + "; ".join(f"{r['method']} scores {r['active scored 0']} active edges of **{r['program']}** zero"
                    for _, r in blind.iterrows())
        + ". Tracr compiles a numerical-to-categorical MLP as a step function of its input; on a flat step the "
          "gradient through it is zero, so every edge whose effect must pass through that MLP gets no "
          "attribution although patching it moves the logit difference. Methods that patch and re-run the model "
          "do not have this blind spot.")
best_cpr, best_cmd = summary["cpr"].idxmax(), summary["cmd"].idxmin()
say(f"By MIB's areas, **{best_cpr}** has the highest mean CPR ({summary['cpr'].max():.2f}) and **{best_cmd}** the "
    f"lowest mean CMD ({summary['cmd'].min():.2f}). Against all compiled true edges no method can exceed what the "
    f"task exposes: the mean ROC AUC over all true edges is at most {summary['compiled_auc'].max():.2f}. So score a "
    f"method on compiled models only against the edges the task's corruption moves — or choose corruptions "
    f"that move every operation of the program.")

# %% [markdown]
# ## Limits
# The compiled models are tiny (the edge counts above, one head per layer) and their weights are not
# learned: one-hot residual blocks, saturated attention and exact lookup-table MLPs, far from a
# trained model's superposed features. MIB's Tracr-style tasks use such models for the same reason —
# an exact ground truth — and share these limits. Inputs all have five tokens (Tracr's `BOS` stays
# in front; padding would need an attention mask the book's methods do not use), so operations that
# depend only on the length are idle. Compiling again needs `tracr-pypi` in a separate folder
# (`load_model("tracr-sort", retrain=True)` says how); cost is measured on a shared CPU.
