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
# # Sequence continuation: where do the circuit heads look?
#
# The node circuits name the heads that matter; their attention patterns say what they read.
# **Do the circuit heads look from each member to the previous member (noticing the sequence), and
# from the end of the prompt to the last member (fetching what to continue)?** Because every prompt
# of a task has the same layout, we can average attention over prompts by *role* instead of token.

# %% tags=["remove-cell"]
# On Colab, install the book's code and shipped models first (this cell does nothing elsewhere).
import sys
if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/circuits-book/circuits-book")  # noqa: F821

# %% tags=["parameters"]
model_name = "suite-l-s0"  # a local model (see the models page) or a pretrained name such as "gpt2-small"
task_names = ["numerals", "number_words", "months"]
n_prompts = 48          # prompts per task (only prompts the model answers correctly are kept)
threshold = 0.8         # of the node circuits whose heads are shown (see the node-circuit chapter)
seed = 0

# %%
import re

from IPython.display import display

from shared.analysis.attention import attention_patterns
from shared.analysis.roles import aligned_subset, position_labels, role_table
from shared.analysis.text import token_strings
from shared.chapters import open_chapter, say, show_table
from shared.chapters import sequences as sc
from shared.plots import sequences as plots
from shared.plots.widgets import attention_patterns as attention_widget

ch = open_chapter("seq_attention", model_name=model_name, task_names=task_names, n_prompts=n_prompts,
                  threshold=threshold, seed=seed)
model = ch.model

# %% [markdown]
# ## Method
#
# For each task we take the heads of its node circuit (iterative pruning at `threshold`, cached by
# the node-circuit chapter) and record their attention patterns on the task's prompts. All prompts
# of a task tokenize to the same positions, so each position has a role: `M1`…`M4` are the
# members, `END` is the position that predicts the answer, `x1`… are the varying filler words, and
# the rest are the template's fixed tokens. We report, per head, the mean attention
# **from member j to member j−1**, **from the token just before member j to member j−1** (that
# token predicts member j, as the end predicts the answer), **from the end to each member** and
# from the end to the first token (BOS, a common resting place), show one prompt interactively and
# the averages as heatmaps.

# %%
data = sc.load_tasks(model, task_names, n_prompts, seed)
circuits = sc.node_circuits(model, task_names, n_prompts, threshold, seed)
heads = {t: [n for n in c.nodes if n.startswith("a")] for t, c in circuits.items()}
patterns = {t: attention_patterns(model, data[t].tokens, heads[t]) for t in task_names if heads[t]}  # [b, head, q, k]
tables = {t: role_table(patterns[t], data[t].member_pos, data[t].end_pos, heads[t]) for t in patterns}
for t in task_names:
    print(f"{t}: circuit heads {heads[t] or 'none'}")

# %% [markdown]
# ## Result
#
# ### Attention between roles, averaged over prompts

# %%
def short(column: str) -> str:
    """A narrower header: M for member, END for the end position."""
    return re.sub(r"member (\d)", r"M\1", column).replace("previous", "prev.").replace("member", "M").replace("end", "END")


for t, tab in tables.items():
    say(f"**{t}**")
    show_table(tab.rename(columns=short))

# %%
lines = []
for t, tab in tables.items():
    prev = tab["member→previous member"].idxmax()
    last_col = f"end→member {data[t].member_pos.shape[1]}"
    end = tab[last_col].idxmax()
    before = tab["before member→previous member"].idxmax()
    lines.append(f"* **{t}**: `{end}` attends most from the end to the last member ({tab.loc[end, last_col]:.2f}, and "
                 f"{tab.loc[end, 'end→all members']:.2f} to all members together); `{before}` does the same inside the "
                 f"prompt, from the token before each member to the previous member ({tab.loc[before, 'before member→previous member']:.2f}); "
                 f"`{prev}` attends most from a member to the previous one ({tab.loc[prev, 'member→previous member']:.2f}).")
say("\n".join(lines) if lines else "No task circuit contains an attention head.")

# %% [markdown]
# ### Averaged patterns, labelled by role

# %%
for t in patterns:
    keep = aligned_subset(data[t].member_pos, data[t].end_pos)  # prompts with the commonest layout
    labels = position_labels(model, data[t].tokens[keep], data[t].member_pos[keep], data[t].end_pos[keep])
    plots.role_attention_maps(patterns[t][keep].mean(0), labels, heads[t], name=f"roles_{t}",
                              title=f"{model_name}, {t}: circuit heads, mean over {len(keep)} prompts of one layout")

# %% [markdown]
# ### One prompt, interactive
#
# Hover over a token to see where each head attends from it (first prompt of each task).

# %%
for t in patterns:
    say(f"**{t}**: `{data[t].prompts[0].text.strip()}`")
    display(attention_widget(token_strings(model.tokenizer, data[t].tokens[0], quotes=False), patterns[t][0], heads[t]))

# %% [markdown]
# ## What it means
#
# Heads that attend from the end to the last member are where the prompt's content reaches the
# prediction; if the same head also has a successor OV circuit (see the OV chapter), it alone can
# turn "6" into "7". Member-to-previous-member attention marks heads that detect the sequence's
# order. Attention shows where information *could* flow, not that it matters: the node and edge
# circuits are what tie these patterns to the behaviour.
