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
# # Sequence continuation: the node circuit of each task
#
# Knocking out one node at a time misses components that back each other up. Here we ask the
# complementary question: **what is the smallest set of heads and MLPs that, with everything else
# removed, still predicts the next member?** We find one such set per task by iterative pruning
# and measure how much of the behaviour it keeps, on the prompts it was found on and on fresh ones.

# %% tags=["remove-cell"]
# On Colab, install the book's code and shipped models first (this cell does nothing elsewhere).
import sys
if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/circuits-book/circuits-book")  # noqa: F821

# %% tags=["parameters"]
model_name = "suite-l-s0"  # a local model (see the models page) or a pretrained name such as "gpt2-small"
task_names = ["numerals", "number_words", "months"]
n_prompts = 48          # prompts per task (only prompts the model answers correctly are kept)
threshold = 0.8         # the circuit must keep this share of the intact model's logit difference
seed = 0

# %%
from shared.chapters import open_chapter, say
from shared.chapters import sequences as sc
from shared.plots import sequences as plots

ch = open_chapter("seq_node_circuit", model_name=model_name, task_names=task_names, n_prompts=n_prompts,
                  threshold=threshold, seed=seed)
model = ch.model

# %% [markdown]
# ## Method
#
# The prompts, corruptions and the metric are those of the knockout chapter: the logit difference
# between the next member and the last member shown, on prompts the model answers correctly.
# A *circuit* is a set of nodes; it is evaluated by mean-ablating every head and MLP **outside**
# it (each replaced by its mean output at that position over the task's prompts) and measuring
# the logit difference that remains.
#
# **Iterative pruning.** Start from the whole model. At each step, try removing every node still
# in the circuit, and remove the one whose loss hurts least, as long as the circuit keeps at least
# `threshold` of the intact model's logit difference. All candidate removals of a step are run
# side by side in one batch. For each task, `sc.node_circuit` runs the engine's pruning,
# `prune_nodes(model, batch, threshold=threshold, values=sc.mean_values(model, data), relative_to="full")`,
# then scores the circuit it returns on the task's prompts and on fresh ones drawn with `seed + 1`.
# The result is cached on disk per model, task and parameters, so the later chapters (attention,
# shared circuits, findings) reuse exactly these circuits.

# %%
circuits = sc.node_circuits(model, task_names, n_prompts, threshold, seed)
sc.show_circuit_table(circuits)

# %% [markdown]
# ## Result

# %%
order = sc.node_order(model)
plots.circuit_membership({t: c.nodes for t, c in circuits.items()}, order,
                         title=f"{model_name}: node circuits at {threshold:.0%} of the logit difference",
                         name="membership")

# %%
plots.circuit_scores(circuits, threshold, title="How much of the behaviour each circuit keeps", name="circuit_scores")

# %%
n_total = next(iter(circuits.values())).n_components
say("\n".join(
    f"* **{t}**: {c.size} of {n_total} nodes — {', '.join(f'`{n}`' for n in c.nodes)} — keep "
    f"{c.percent:.0f}% of the logit difference ({c.score:.2f} of {c.full:.2f}) on the "
    f"{c.n_prompts} prompts they were found on and {c.heldout_percent:.0f}% on fresh prompts."
    for t, c in circuits.items()))
shared_nodes = sc.common_nodes({t: c.nodes for t, c in circuits.items()}, order)
say(f"Nodes in every task's circuit: {', '.join(f'`{n}`' for n in shared_nodes) or 'none'} "
    f"({len(shared_nodes)} of the {len(set().union(*[c.nodes for c in circuits.values()]))} nodes used by any task).")

# %% [markdown]
# ## What it means
#
# A circuit that keeps most of the behaviour with a small fraction of the model's nodes is a
# compact description of *where* the computation happens; the score on fresh prompts checks that
# pruning did not overfit the prompts it saw. Pruning is greedy, so a circuit is *a* small
# sufficient set, not necessarily the smallest. Nodes in every task's circuit are the candidates
# for a shared mechanism; the chapter on shared circuits compares the sets and tests whether one
# task's circuit also does another task.
