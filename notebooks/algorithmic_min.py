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
# # Find the minimum: how does a small transformer pick the smallest number?
#
# We train tiny transformers to read a list of integers and answer with its minimum, then read the
# answer off their weights and activations: which head decides, how its attention score depends on
# the value it looks at (the QK circuit), what it writes once it has looked (the OV circuit), and
# where the model breaks.

# %% tags=["remove-cell"]
# On Colab, install the book's code and shipped models first (this cell does nothing elsewhere).
import sys
if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/circuits-book/circuits-book")  # noqa: F821

# %% tags=["parameters"]
n = 10            # longest training list (lists of 2..n values are trained)
V = 64            # values are 0..V-1
n_layers = 1
attn_only = True
seed = 0
steps = 1500      # training steps (changing any of these trains a new model on first use)
n_prompts = 2000  # held-out lists analysed
compare_with = ["min-2l-mlp"]  # other zoo models summarised at the end

# %%
import numpy as np

from shared.analysis.answer import (accuracy, answer_accuracy, answer_attention, answer_scores,
                                    direct_logit_attribution, ov_by_source)
from shared.chapters import lists as chapter
from shared.chapters import open_chapter, say
from shared.engine.ablation import knockout_sweep, mean_values
from shared.engine.graph import Graph
from shared.plots import lists as plots
from shared.tasks.lists import test_set
from shared.zoo.registry import model_metrics

ch = open_chapter("algorithmic_min", n=n, V=V, n_layers=n_layers, attn_only=attn_only, steps=steps,
                  n_prompts=n_prompts, compare_with=compare_with, seed=seed)
model_name, recipe, model = chapter.task_model("min", ch.params)
heads = Graph.of(model).heads()  # a0.h0, a0.h1, ... layer by layer

# %% [markdown]
# ## The task and the held-out split
#
# A list of 2 to `n` distinct values from `0..V-1` is followed by a separator `SEP`; the model must
# predict the minimum at `SEP`. Only that one prediction is trained. Lists are split by their
# *multiset*: a fixed hash of the sorted values sends a fifth of all multisets to the held-out set,
# so no test list is a reordering of a training list. We check the generator against a plain-Python
# reference and the split against a fresh training sample.

# %%
data = test_set(recipe, count=n_prompts)
batch = data.prompts()  # the lists as a PromptBatch: the answer is scored at SEP
chapter.show_data(recipe, data, seed)

# %% [markdown]
# ## Training
#
# The zoo trains the model on first use (AdamW, answer-only cross-entropy, fresh training lists each
# step, fixed seed) and ships the weights. The curves below were recorded during that run.

# %%
metrics = model_metrics(model_name)
plots.training_curves(metrics, title=model_name, name="training")
acc = accuracy(model, batch)
say(chapter.training_text(recipe, metrics, acc, len(data)))

# %% [markdown]
# ## Which component decides?
#
# We mean-ablate each head (replace its output by its average at that position over the held-out
# lists) and, if present, each MLP, and measure the accuracy that is lost: the engine's knockout sweep,
# scored with accuracy at `SEP`. We also split the answer's logit (minus the mean logit over all
# values) into the direct contributions of each component; without LayerNorm this split is exact.

# %%
means = mean_values(model, data.tokens, per_position=True)  # each node's mean output at each position
knockout = knockout_sweep(model, batch, answer_accuracy, values=means, progress=False)
dla = direct_logit_attribution(model, batch, n_values=data.V)
plots.components(dla, knockout, title=model_name, name="components")
summary = chapter.circuit_summary(model, data, knockout=knockout)
top, layer, head = summary.deciding_head, summary.layer, summary.head
drops, ablated = knockout.as_dict(), dict(zip(knockout.nodes, knockout.scores.tolist()))
others = {k: v for k, v in drops.items() if k != top}
say(f"Ablating **{top}** drops accuracy by **{drops[top]:.1%}** (to {ablated[top]:.1%}); "
    + (f"the largest drop from any other component is {max(others.values()):.1%} "
       f"({max(others, key=others.get)}). " if others else "it is the model's only component besides the embeddings. ")
    + f"{top} contributes {dla[top]:.1f} of the total {dla.sum():.1f} direct logit difference "
    f"(largest direct contributor: {dla.idxmax()}).")

# %% [markdown]
# ## Where does the answer position look?
#
# Below, the attention of every head on three held-out lists (hover the `SEP` row), then the average
# attention from `SEP` as a function of the key's rank in its list (rank 0 = the minimum).

# %%
chapter.show_attention(model, data)

# %%
attn = answer_attention(model, batch)  # [list, layer, head, key]
by_rank = chapter.attention_by(data, attn, "rank")
plots.attention_curves(dict(zip(heads, by_rank.reshape(len(heads), -1))),
                       "rank of the key token in its list (0 = minimum)", "mean attention from SEP",
                       "Attention from the answer position by key rank", name="attention_by_rank")
on_answer = summary.attention_on_answer
say(f"On average **{top}** puts **{on_answer[layer, head]:.1%}** of its attention from `SEP` on the minimum "
    f"(rank 0) and on average {np.nanmean(by_rank[layer, head, 1:]):.1%} on each of the other ranks.")

# %% [markdown]
# ## QK circuit: is the attention score monotone in the key's value?
#
# For the deciding head we average the pre-softmax score from `SEP` to each list token, grouped by
# the token's value. A head that finds the minimum should score small values higher: the curve should
# fall as the value grows.

# %%
scores = answer_scores(model, batch, data.value_mask())  # q.k / sqrt(d_head), centred per list
by_value = chapter.attention_by(data, scores, "value")
plots.attention_curves(dict(zip(heads, by_value.reshape(len(heads), -1))), "value of the key token",
                       "mean attention score from SEP", "QK: score by key value", name="qk_by_value")
mono, curve = summary.qk_monotonicity, summary.qk_by_value
steps_ = np.diff(curve[~np.isnan(curve)])
rises = steps_[steps_ > 0]
say(f"For **{top}** the Spearman correlation between key value and score is **{mono.spearman:.3f}** "
    f"(-1 = perfectly falling); {mono.falling_share:.0%} of the {mono.points - 1} steps between "
    f"neighbouring values go down. Scores span {np.nanmax(curve) - np.nanmin(curve):.1f} from value "
    f"{int(np.nanargmax(curve))} (highest) to {int(np.nanargmin(curve))} (lowest), an average fall of "
    f"{-steps_.mean():.2f} per unit of value. "
    + ("The score is strictly monotone, so softmax concentrates on the smallest value present."
       if len(rises) == 0 else
       f"It is not strictly monotone: {len(rises)} neighbouring pairs invert, by at most {rises.max():.2f} "
       f"(averaged over positions and lists), against a typical fall of {-steps_[steps_ < 0].mean():.2f}; "
       f"with held-out accuracy at {acc:.1%}, these local inversions cost few or no answers."))

# %% [markdown]
# ## OV circuit: what does the head write once it attends?
#
# Each list token's value vector, passed through the head's output matrix and the unembedding, gives
# the logits the head would add if it attended only to that token. Averaged by the token's value this
# is a value-to-value table; a copying head has its largest entries on the diagonal. We count the
# values whose largest entry is on the diagonal (the *OV diagonal share*).

# %%
ov = ov_by_source(model, data.tokens, data.value_mask(), layer, head, data.V)
plots.ov_table(ov, f"OV circuit of {top}", name="ov_table")
say(f"For **{summary.ov_diagonal_share:.0%}** of the values seen, the output most pushed up by attending to that "
    f"value is the value itself: {top} copies what it attends to.")

# %% [markdown]
# ## Failure analysis
#
# We test lists of every length the context allows (lengths above `n` were never trained), lists
# with repeated values (never trained), and accuracy by answer value, which shows the vocabulary edges.

# %%
by_length = chapter.accuracy_by_length(model, recipe, count=max(50, n_prompts // 4))
by_answer = chapter.accuracy_by_answer(model, data)
repeats = chapter.repeat_breakdown(model, test_set(recipe, count=n_prompts, repeats=True, seed_offset=99))
plots.failures(by_length, by_answer, repeats, name="failures")
say(chapter.failure_text(recipe, by_length, by_answer, repeats))

# %% [markdown]
# ## The same question for other models
#
# The same measurements for the other shipped models of this task (`compare_with`).

# %%
table = chapter.compare_models([model_name, *compare_with], n_prompts, known={model_name: summary})
chapter.show_comparison(table)
say("; ".join(
    f"**{m}**: most important head {r['deciding head']} ({r['ablation drop']:.0%} accuracy lost without it; "
    f"largest drop from any component {r['largest drop (any component)']:.0%}); it puts "
    f"{r['attention on answer']:.0%} of its attention on the answer, scores keys with Spearman "
    f"{r['QK Spearman']:.2f} against their value and copies for {r['OV diagonal share']:.0%} of values"
    for m, r in table.iterrows()) + ".")

# %% [markdown]
# ## What it means

# %%
single = (table["ablation drop"] >= 0.5) & (table["QK Spearman"] <= -0.9) & (table["OV diagonal share"] >= 0.9)
say(f"In {int(single.sum())} of {len(table)} models ({', '.join(table.index[single]) or 'none'}) one head "
    f"carries the task: removing it costs at least half the accuracy, its score falls with the key's value "
    f"(Spearman at most -0.9) and its OV circuit copies. For those models, finding the minimum needs no "
    f"comparison between list items: a value-ordered score and the softmax select the smallest token, and "
    f"the OV circuit writes it out. "
    + (f"The others ({', '.join(table.index[~single])}) spread the work over several components."
       if (~single).any() else ""))
