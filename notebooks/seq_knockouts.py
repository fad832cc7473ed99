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
# # Sequence continuation: which single components matter?
#
# Shown "Van done in 3. Hat done in 4. Ring done in 5. Desk done in 6. Sun done in", a language
# model should continue with " 7". Before looking for a whole circuit we ask the simplest
# question: **if we remove one attention head or one MLP, how much of this behaviour is lost?**
# We ask it separately for numerals, number words and months, to see whether the same components
# carry all three tasks.

# %% tags=["remove-cell"]
# On Colab, install the book's code and shipped models first (this cell does nothing elsewhere).
import sys
if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/circuits-book/circuits-book")  # noqa: F821

# %% tags=["parameters"]
model_name = "suite-l-s0"  # a local model (see the models page) or a pretrained name such as "gpt2-small"
task_names = ["numerals", "number_words", "months"]
n_prompts = 48          # prompts per task (only prompts the model answers correctly are kept)
seed = 0

# %%
from shared.chapters import open_chapter, say, show_table
from shared.chapters import sequences as sc
from shared.engine.ablation import knockout_sweep
from shared.plots import sequences as plots

ch = open_chapter("seq_knockouts", model_name=model_name, task_names=task_names, n_prompts=n_prompts, seed=seed)
model = ch.model

# %% [markdown]
# ## Method
#
# For each task we draw prompts in the "among words" template, keep those whose answer is the
# model's top prediction, and pair each with a corrupted prompt whose members are random
# (no two consecutive). The behaviour is measured by the **logit difference** at the last
# position: logit of the right next member minus logit of the last member shown (the natural
# wrong guess: repeating).
#
# A node (head `aL.hH` or MLP `mL`) is knocked out by **mean ablation**: its output at every
# position is replaced by its mean output at that position over the task's clean and corrupted
# prompts. This removes what the node says about *these particular* members while keeping its
# average contribution, so the model is not pushed off-distribution the way zeroing would.

# %%
data = sc.load_tasks(model, task_names, n_prompts, seed)
results = {t: knockout_sweep(model, d.batch, values=sc.mean_values(model, d)) for t, d in data.items()}
table = sc.knockout_table(results)  # drop of the logit difference in % of the intact model's
for t, r in results.items():
    print(f"{t}: intact logit difference {r.full:.2f}")

# %% [markdown]
# ## Result

# %%
plots.knockout_bars(table, title=f"{model_name}: knocking out one node", name="knockouts")

# %% [markdown]
# The twelve nodes with the largest drop (% of the intact logit difference), by their mean over tasks:

# %%
ranked = {t: table[t].sort_values(ascending=False) for t in table.columns}
show = table.copy()
show["mean"] = table.mean(axis=1)
show_table(show.sort_values("mean", ascending=False).head(12), digits=1)

# %%
lines = []
for t, r in ranked.items():
    top = ", ".join(f"`{n}` ({v:.0f}%)" for n, v in r.head(3).items())
    lines.append(f"* **{t}**: largest drops from {top}; knocking out any single node leaves at least "
                 f"{100 - r.iloc[0]:.0f}% of the logit difference.")
strong = [n for n in table.index if (table.loc[n] >= 10).all()]
say("\n".join(lines) + "\n\n" + (
    f"Nodes whose knockout costs at least 10% on **every** task: {', '.join(f'`{n}`' for n in strong)}."
    if strong else "No node costs 10% or more on every task by itself."))

# %% [markdown]
# ## What it means
#
# A large single-node drop marks a component the behaviour cannot do without; a node that is
# important for all tasks is a candidate for a *shared* sequence-continuation mechanism, while
# nodes that matter for one task only point to task-specific knowledge (what follows "March" is a
# fact about months, not about counting). Knockouts miss redundancy: two heads that back each
# other up both look harmless alone. The next chapter therefore searches for the smallest set of
# nodes that together keep the behaviour.
