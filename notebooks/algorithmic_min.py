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
task = "min"
n = 10            # longest training list (lists of 2..n values are trained)
V = 64            # values are 0..V-1
n_layers = 1
attn_only = True
seed = 0
steps = 1500      # training steps (changing any of these trains a new model on first use)
n_prompts = 2000 # held-out lists analysed
compare_with = ["min-2l-mlp"]  # other zoo models summarised at the end

# %%
import numpy as np
from IPython.display import display
from shared.tasks import lists as alg
from shared.chapters import algorithmic as chapter
from shared.chapters.common import say

model_name, recipe, model = chapter.start_chapter(task, "min", n=n, V=V, n_layers=n_layers, attn_only=attn_only,
                                                  seed=seed, steps=steps, n_prompts=n_prompts)

# %% [markdown]
# ## The task and the held-out split
#
# A list of 2 to `n` distinct values from `0..V-1` is followed by a separator `SEP`; the model must
# predict the minimum at `SEP`. Only that one prediction is trained. Lists are split by their
# *multiset*: a fixed hash of the sorted values sends a fifth of all multisets to the held-out set,
# so no test list is a reordering of a training list. We check the generator against a plain-Python
# reference and the split against a fresh training sample.

# %%
data = alg.test_set(recipe, count=n_prompts)
chapter.show_data(recipe, data, seed)

# %% [markdown]
# ## Training
#
# The zoo trains the model on first use (AdamW, answer-only cross-entropy, fresh training lists each
# step, fixed seed) and ships the weights. The curves below were recorded during that run.

# %%
acc = chapter.show_training(model, model_name, recipe, data)

# %% [markdown]
# ## Which component decides?
#
# We mean-ablate each head (replace its output by its average at that position) and, if present,
# each MLP, and measure the accuracy that is lost. We also split the answer's logit (minus the mean
# logit over all values) into the direct contributions of each component; without LayerNorm this
# split is exact.

# %%
summary = alg.circuit_summary(model, data)
dla = alg.direct_logit_attribution(model, data)
alg.plot_components(dla, summary["ablation"], title=model_name)
top, layer, head = summary["deciding_head"], summary["layer"], summary["head"]
abl = summary["ablation"]
others = abl.drop(index=top)["drop"]
say(f"Ablating **{top}** drops accuracy by **{abl.loc[top, 'drop']:.1%}** (to {abl.loc[top, 'accuracy']:.1%}); "
    + (f"the largest drop from any other component is {others.max():.1%} ({others.idxmax()}). " if len(others)
       else "it is the model's only component besides the embeddings. ")
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
attn = alg.answer_attention(model, data)
by_rank = alg.attention_by(data, attn, "rank")
alg.plot_by_group({name: by_rank[int(name[1]), int(name[3:])] for name in alg.head_names(model)},
                  "rank of the key token in its list (0 = minimum)", "mean attention from SEP",
                  "Attention from the answer position by key rank")
on_answer = summary["attention_on_answer"]
say(f"On average **{top}** puts **{on_answer[layer, head]:.1%}** of its attention from `SEP` on the minimum "
    f"(rank 0) and on average {np.nanmean(by_rank[layer, head, 1:]):.1%} on each of the other ranks.")

# %% [markdown]
# ## QK circuit: is the attention score monotone in the key's value?
#
# For the deciding head we average the pre-softmax score from `SEP` to each list token, grouped by
# the token's value. A head that finds the minimum should score small values higher: the curve should
# fall as the value grows.

# %%
scores = alg.answer_attention(model, data, scores=True)
by_value = alg.attention_by(data, scores, "value")
alg.plot_by_group({name: by_value[int(name[1]), int(name[3:])] for name in alg.head_names(model)},
                  "value of the key token", "mean attention score from SEP", "QK: score by key value")
mono = summary["qk_monotonicity"]
curve = summary["qk_by_value"]
steps_ = np.diff(curve[~np.isnan(curve)])
rises = steps_[steps_ > 0]
say(f"For **{top}** the Spearman correlation between key value and score is **{mono['spearman']:.3f}** "
    f"(-1 = perfectly falling); {mono['falling_share']:.0%} of the {mono['points'] - 1} steps between "
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
# is a value-to-value table; a copying head has its largest entries on the diagonal.

# %%
ov = alg.ov_by_source(model, data, layer, head)
alg.plot_ov(ov, f"OV circuit of {top}")
say(f"For **{summary['copying']:.0%}** of the values seen, the output most pushed up by attending to that "
    f"value is the value itself: {top} copies what it attends to.")

# %% [markdown]
# ## Failure analysis
#
# We test lists of every length the context allows (lengths above `n` were never trained), lists
# with repeated values (never trained), and accuracy by answer value, which shows the vocabulary edges.

# %%
say(alg.failure_analysis(model, recipe, data, n_prompts))

# %% [markdown]
# ## The same question for other models
#
# The same measurements for the other shipped model(s) of this task.

# %%
table = alg.compare_models([model_name, *compare_with], n_prompts, known={model_name: summary})
display(table.round(3))
say("; ".join(
    f"**{m}**: most important head {r['deciding head']} ({r['ablation drop']:.0%} accuracy lost without it; "
    f"largest drop from any component {r['largest drop (any component)']:.0%}); it puts "
    f"{r['attention on answer']:.0%} of its attention on the answer, scores keys with Spearman "
    f"{r['QK Spearman']:.2f} against their value and copies for {r['copying share']:.0%} of values"
    for m, r in table.iterrows()) + ".")

# %% [markdown]
# ## What it means

# %%
single = (table["ablation drop"] >= 0.5) & (table["QK Spearman"] <= -0.9) & (table["copying share"] >= 0.9)
say(f"In {int(single.sum())} of {len(table)} models ({', '.join(table.index[single]) or 'none'}) one head "
    f"carries the task: removing it costs at least half the accuracy, its score falls with the key's value "
    f"(Spearman at most -0.9) and its OV circuit copies. For those models, finding the minimum needs no "
    f"comparison between list items: a value-ordered score and the softmax select the smallest token, and "
    f"the OV circuit writes it out. "
    + (f"The others ({', '.join(table.index[~single])}) spread the work over several components."
       if (~single).any() else ""))
