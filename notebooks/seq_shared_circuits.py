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
# # Sequence continuation: one circuit or three?
#
# We have a node circuit for numerals, number words and months. **Do the three tasks use the same
# components, and does the circuit found for one task also perform the others?** Overlap answers
# the first question, the transfer table — the circuit of task A run on the prompts of task B —
# the second, which is the stronger test: two circuits can overlap a lot and still differ in the
# nodes that matter.

# %% tags=["remove-cell"]
# On Colab, install the book's code and shipped models first (this cell does nothing elsewhere).
import sys
if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/circuits-book/circuits-book")  # noqa: F821

# %% tags=["parameters"]
model_name = "suite-l-s0"  # a local model (see the models page) or a pretrained name such as "gpt2-small"
task_names = ["numerals", "number_words", "months"]
n_prompts = 48          # prompts per task (only prompts the model answers correctly are kept)
threshold = 0.8         # node circuits keep this share of the logit difference
seed = 0

# %%
from shared.chapters import count, open_chapter, say, show_table
from shared.chapters import sequences as sc
from shared.plots import sequences as plots

ch = open_chapter("seq_shared_circuits", model_name=model_name, task_names=task_names, n_prompts=n_prompts,
                  threshold=threshold, seed=seed)
model = ch.model

# %% [markdown]
# ## Method
#
# The node circuits are those of the node-circuit chapter (iterative pruning to `threshold` of the
# logit difference, mean ablation; cached). Their **overlap** is the Jaccard similarity
# |A ∩ B| / |A ∪ B| of the node sets. For **transfer**, we keep the circuit of task A, mean-ablate
# every other node using task B's prompts, and measure the logit difference on task B as a
# percentage of the intact model's. The diagonal is each circuit on its own task. We add the
# union of all circuits and the nodes common to all of them as two more rows.

# %%
data = sc.load_tasks(model, task_names, n_prompts, seed)
circuits = sc.node_circuits(model, task_names, n_prompts, threshold, seed)
sets = {t: c.nodes for t, c in circuits.items()}
order = sc.node_order(model)
common = sc.common_nodes(sets, order)
union = [n for n in order if any(n in s for s in sets.values())]
overlap = sc.overlap_table(sets)
rows = dict(sets)
rows["union"] = union
if common:
    rows["common to all"] = common
transfer = sc.transfer_table(model, data, rows)

# %% [markdown]
# ## Result

# %%
plots.circuit_membership(sets, order, title=f"{model_name}: which task circuits contain each node", name="membership")
plots.table_matrix(overlap, "Overlap of node circuits (Jaccard)", vmin=0, vmax=1, label="Jaccard", name="overlap")

# %%
plots.table_matrix(transfer, "Circuit of one task evaluated on another\n(% of the intact model's logit difference)",
                   fmt="{:.0f}", cmap="RdYlGn", vmin=0, vmax=max(100.0, float(transfer.max().max())),
                   label="% of intact logit diff.", name="transfer")
show_table(transfer, digits=1)

# %%
pairs = [(a, b) for i, a in enumerate(task_names) for b in task_names[i + 1:]]
say(f"Circuit sizes: " + ", ".join(f"{t} {len(s)}" for t, s in sets.items()) + ". Pairwise overlap (Jaccard): "
    + ", ".join(f"{a}/{b} {overlap.loc[a, b]:.2f}" for a, b in pairs) + ". "
    + (f"**{count(len(common), 'node')} {'is' if len(common) == 1 else 'are'} in every circuit: "
       f"{', '.join(f'`{n}`' for n in common)}**"
       if common else "**No node is in every circuit.**")
    + f" (the union has {len(union)}).")
off = [(a, b) for a in task_names for b in task_names if a != b]
best_pair = max(off, key=lambda p: transfer.loc[p[0], p[1]])
worst_pair = min(off, key=lambda p: transfer.loc[p[0], p[1]])
lines = [f"On its own task each circuit keeps " + ", ".join(f"{t} {transfer.loc[t, t]:.0f}%" for t in task_names) + ".",
         f"Across tasks, the best transfer is the {best_pair[0]} circuit on {best_pair[1]} "
         f"({transfer.loc[best_pair]:.0f}%), the worst the {worst_pair[0]} circuit on {worst_pair[1]} "
         f"({transfer.loc[worst_pair]:.0f}%)."]
lines.append(f"The union of the circuits keeps " + ", ".join(f"{transfer.loc['union', t]:.0f}%" for t in task_names)
             + " on " + ", ".join(task_names) + ".")
if common:
    lines.append(f"The common nodes alone keep " + ", ".join(f"{transfer.loc['common to all', t]:.0f}%" for t in task_names) + ".")
say(" ".join(lines))

# %% [markdown]
# ## What it means
#
# High overlap *and* high transfer mean one mechanism serves all three sequences, with the task
# knowledge (which month follows which) living in components that all circuits share, such as a
# successor head. Overlap with poor transfer means the tasks use common infrastructure (e.g. heads
# that find the last member) but need task-specific nodes on top: the union then does all tasks
# while each circuit does only its own. The common nodes alone usually fall short of the
# threshold; what they keep shows how much of each task the shared core carries.
