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
# # Sequence continuation: copy and successor heads (OV scores)
#
# A head that attends to the last member and writes *the next* member would solve the task in one
# step: a **successor head**. A head that writes *the same* member back is a **copy head**, and
# would push the wrong answer (repeating). **Which heads' OV circuits map a number, number word or
# month to its successor, and which copy?** We read this off the weights alone, independent of
# any prompt.

# %% tags=["remove-cell"]
# On Colab, install the book's code and shipped models first (this cell does nothing elsewhere).
import sys
if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/circuits-book/circuits-book")  # noqa: F821

# %% tags=["parameters"]
model_name = "suite-l-s0"  # a local model (see the models page) or a pretrained name such as "gpt2-small"
task_names = ["numerals", "number_words", "months"]  # their ordinal token lists are scored
top_k = 5               # a hit is the target token among the k highest logits of the whole vocabulary
successor_cutoff = 0.5  # heads with at least this mean successor score are called successor heads
mlp0 = True             # read tokens through MLP 0 (the "effective embedding"), as in the successor-heads paper
seed = 0

# %%
import pandas as pd

from shared.analysis.ov import head_grid, ov_score_table
from shared.chapters import open_chapter, say, show_table
from shared.plots.figures import head_heatmap
from shared.tasks.sequences import ordinal_lists

ch = open_chapter("seq_ov_scores", model_name=model_name, task_names=task_names, top_k=top_k,
                  successor_cutoff=successor_cutoff, mlp0=mlp0, seed=seed)
model = ch.model

# %% [markdown]
# ## Method
#
# For each ordinal list (" 1" … " 100", " one" … " twenty", " January" … " December") and each head
# we compute the head's **OV circuit** on the list's tokens: the token's effective embedding
# (the embedding plus what MLP 0 adds to it, skipping attention 0, when `mlp0` is on), the head's
# input LayerNorm, its value and output matrices `W_V W_O`, the final LayerNorm (without bias) and
# the unembedding. Each row is what the head would add to the logits if it attended only to that
# token. From these rows:
#
# * **copy@k**: share of tokens whose *own* id is among the top-k logits of the whole vocabulary;
# * **succ@k**: share of tokens whose *successor* is among the top-k of the whole vocabulary;
# * **successor score**: share of tokens for which, among the list's own tokens, the successor gets
#   the highest logit (the list is cyclic for months).

# %%
ordinals = ordinal_lists(model, task_names)  # {list name: its token ids in order, and whether it is cyclic}
scores = ov_score_table(model, ordinals, k=top_k, mlp0=mlp0)
print("Ordinal lists:", {name: len(o.ids) for name, o in ordinals.items()})

# %% [markdown]
# ## Result

# %%
cfg = model.cfg
head_heatmap({f"successor: {name}": head_grid(scores[f"successor {name}"].to_dict(), cfg.n_layers, cfg.n_heads)
              for name in ordinals}, title=f"{model_name}: successor score of each head's OV circuit",
             vmin=0, vmax=1, cmap="viridis", label="successor score", name="successor_scores")
head_heatmap({f"copy@{top_k}: {name}": head_grid(scores[f"copy@{top_k} {name}"].to_dict(), cfg.n_layers, cfg.n_heads)
              for name in ordinals}, title=f"{model_name}: copy score (top-{top_k}) of each head's OV circuit",
             vmin=0, vmax=1, cmap="magma", label=f"copy@{top_k}", name="copy_scores")

# %% [markdown]
# The ten heads with the highest mean successor score (columns), every score per list (rows):

# %%
cols = [c for c in scores.columns if c not in ("layer", "index")]
top_ten = scores.sort_values("successor_mean", ascending=False)[cols].head(10).T  # [score and list, head]
top_ten.index = pd.MultiIndex.from_tuples([("successor", "mean") if c == "successor_mean" else
                                           (f"copy@{top_k}", "mean") if c == "copy_mean" else tuple(c.split(" ", 1))
                                           for c in top_ten.index], names=["score", "list"])
kinds = ["successor", f"succ@{top_k}", f"copy@{top_k}"]
show_table(top_ten.loc[[row for kind in kinds for row in top_ten.index if row[0] == kind]].rename_axis(columns=None))

# %%
best = scores["successor_mean"].idxmax()
successors = scores.index[scores["successor_mean"] >= successor_cutoff].tolist()
copiers = scores.index[scores["copy_mean"] >= successor_cutoff].tolist()
chance = {name: 1 / len(o.ids) for name, o in ordinals.items()}
say(f"The strongest successor head is **`{best}`**: successor score "
    + ", ".join(f"{scores.loc[best, f'successor {n}']:.2f} on {n}" for n in ordinals)
    + f" (chance: " + ", ".join(f"{c:.2f}" for c in chance.values()) + "), "
    + f"and its successor is in the top {top_k} of the whole vocabulary for "
    + ", ".join(f"{scores.loc[best, f'succ@{top_k} {n}']:.0%} of {n}" for n in ordinals) + ".")
say(f"Heads with a mean successor score of at least {successor_cutoff:.2f} (successor heads): "
    + (", ".join(f"`{h}` ({scores.loc[h, 'successor_mean']:.2f})" for h in successors) or "none")
    + f". Heads with a mean copy@{top_k} score of at least {successor_cutoff:.2f} (copy heads): "
    + (", ".join(f"`{h}` ({scores.loc[h, 'copy_mean']:.2f})" for h in copiers) or "none") + ".")
if mlp0:
    raw = ov_score_table(model, ordinals, k=top_k, mlp0=False)
    say(f"Without MLP 0 in the effective embedding, `{best}` scores {raw.loc[best, 'successor_mean']:.2f} "
        f"instead of {scores.loc[best, 'successor_mean']:.2f} (mean successor score), and the best head is "
        f"`{raw['successor_mean'].idxmax()}` ({raw['successor_mean'].max():.2f}).")

# %% [markdown]
# ## What it means
#
# A head whose OV circuit maps each member to the next one across *all three* lists implements an
# abstract "increment" shared by the tasks, as the successor heads found in pretrained models do;
# high scores on one list only suggest a head that stores one sequence. A successor head only
# matters for the behaviour if it also attends to the last member at the end of the prompt and
# belongs to the circuit — the attention and shared-circuit chapters check both. Copy heads
# explain the pull towards repeating the last member that the logit lens shows.
