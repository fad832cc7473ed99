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
# # Two attention-only layers: how do heads compose into induction heads?
#
# A one-layer attention-only transformer can only learn skip-trigrams: "token A somewhere earlier,
# token B now, so predict C". With a second layer, a head can read what a first-layer head wrote.
# Elhage et al. (2021) describe three ways this can happen — through the queries (Q-composition),
# the keys (K-composition) or the values (V-composition) — and find that two-layer models use
# K-composition to build **induction heads**: a first-layer head copies "the previous token was A"
# into each position, and a second-layer head uses it as a key, so that on seeing A again it
# attends to the token *after* the earlier A and copies it. Does a small two-layer model trained
# here on Python source code do the same?

# %% tags=["remove-cell"]
# On Colab, install the book's code and shipped models first (this cell does nothing elsewhere).
import sys
if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/circuits-book/circuits-book")  # noqa: F821

# %% tags=["parameters"]
model_name = "attn-only-2l"   # a local model or "attn-only-2l-pretrained"
seq_len = 25                  # length of the random token sequence that is then repeated
batch = 32                    # number of repeated random sequences
induction_threshold = 0.5     # heads with an induction score above this are called induction heads
seed = 0

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display

from shared.analysis import framework as fw
from shared.errors import ParameterError
from shared.zoo.registry import load_model
from shared.chapters.common import report_run, say, seed_everything
from shared.plots.widgets import attention_patterns as show_attention

if not 0 < induction_threshold < 1:
    raise ParameterError(f"induction_threshold must lie strictly between 0 and 1, got {induction_threshold}.")
seed_everything(seed)
model = load_model(model_name)
report_run(model, seq_len=seq_len, batch=batch, induction_threshold=induction_threshold, seed=seed)
if model.cfg.n_layers < 2:
    raise ParameterError(f"This chapter needs a model with at least two layers; {model_name!r} has "
                         f"{model.cfg.n_layers}.")
tokens = fw.repeated_tokens_for(model, seq_len, batch, seed)
w = fw.weights(model)
n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
labels = fw.head_labels(n_layers, n_heads)

# %% [markdown]
# ## Method 1 — composition scores from the weights alone
#
# Write a first-layer head's OV circuit as the matrix $A = W_V W_O$ (residual in, residual out) and
# a second-layer head's QK circuit as $W_{QK} = W_Q W_K^\top$. If the second head's **queries** read
# what the first head wrote, the product $A\,W_{QK}$ is large; if its **keys** read it,
# $W_{QK} A^\top$ is; if its **values** read it, $A\,W_{OV}$ is. The composition score divides the
# Frobenius norm of the product by the product of the norms:
# $\lVert A B \rVert_F / (\lVert A\rVert_F \lVert B\rVert_F)$. Two random matrices of the same shapes
# give a baseline score that we compute alongside. (LayerNorm, if the model has it, is ignored.)

# %%
comp = fw.composition_scores(w)
baseline = fw.random_composition_baseline(model.cfg.d_model, model.cfg.d_head, seed=seed)
later = [(l2, h2) for l2 in range(1, n_layers) for h2 in range(n_heads)]
earlier = [(l1, h1) for l1 in range(n_layers - 1) for h1 in range(n_heads)]
grids = {kind: torch.stack([torch.stack([comp[kind][l2, h2, l1, h1] for l1, h1 in earlier]) for l2, h2 in later])
         for kind in "QKV"}
vmax = float(max(g.max() for g in grids.values()))
fig, axes = plt.subplots(1, 3, figsize=(15, 4.8), constrained_layout=True)
for ax, kind in zip(axes, "QKV"):
    image = ax.imshow(grids[kind].numpy(), vmin=0, vmax=vmax, cmap="viridis", aspect="auto")
    ax.set_title(f"{kind}-composition (random baseline {baseline:.2f})")
    ax.set_xticks(range(len(earlier)), [fw.head_label(*h) for h in earlier], rotation=90)
    ax.set_yticks(range(len(later)), [fw.head_label(*h) for h in later])
    ax.set_xlabel("earlier head (writes)")
    ax.set_ylabel("later head (reads)")
fig.colorbar(image, ax=axes, shrink=0.8, label="composition score")
plt.show()

# %%
best = {kind: divmod(int(grids[kind].argmax()), len(earlier)) for kind in "QKV"}
best_text = "; ".join(
    f"{kind}: **{fw.head_label(*later[i])} reads {fw.head_label(*earlier[j])}** ({float(grids[kind][i, j]):.2f}, "
    f"{float(grids[kind][i, j]) / baseline:.1f}× the random baseline)" for kind, (i, j) in best.items())
say(f"Strongest composition of each kind — {best_text}. Mean score over all pairs: "
    + ", ".join(f"{kind} {float(grids[kind].mean()):.2f}" for kind in "QKV") + ".")

# %% [markdown]
# ## Method 2 — what the heads do on repeated random tokens
#
# We feed the model sequences of uniformly random tokens, each repeated once
# (`[BOS] t1 … tn t1 … tn`, n = `seq_len`). Random tokens carry no bigram or skip-trigram
# structure, so the second copy can only be predicted by looking back. Three scores per head,
# averaged over positions and sequences:
#
# * **previous-token**: attention from each token to the one just before it;
# * **duplicate-token**: attention from a token in the second copy to the same token in the first;
# * **induction**: attention from a token in the second copy to the token *after* its first
#   occurrence (the token that is about to come next).

# %%
patterns = fw.attention_patterns(model, tokens)
scores = fw.head_scores(patterns, seq_len, has_bos=tokens.shape[1] > 2 * seq_len)
fig, axes = plt.subplots(1, 3, figsize=(15, 2.2 + 0.5 * n_layers), constrained_layout=True)
for ax, (name, grid) in zip(axes, scores.items()):
    image = fw.head_heatmap(ax, grid, f"{name} score")
fig.colorbar(image, ax=axes, shrink=0.8)
plt.show()

# %%
induction_heads = fw.top_heads(scores["induction"], induction_threshold)
induction_heads = [h for h in induction_heads if scores["induction"][h] > induction_threshold]
prev_heads = fw.top_heads(scores["previous-token"], 0.5)
name = lambda heads: ", ".join(fw.head_label(*h) for h in heads)  # noqa: E731
best_induction = fw.top_heads(scores["induction"], 1.0)[0]
prev_values = ", ".join(f"{float(scores['previous-token'][h]):.2f}" for h in prev_heads)
say(f"Heads with an induction score above {induction_threshold}: **{name(induction_heads) or 'none'}**"
    f" (best: {fw.head_label(*best_induction)}, {float(scores['induction'][best_induction]):.2f}). "
    f"Strongest previous-token head{'s' if len(prev_heads) > 1 else ''}: **{name(prev_heads)}** "
    f"({prev_values}). "
    f"Strongest duplicate-token head: **{name(fw.top_heads(scores['duplicate-token'], 1.0))}** "
    f"({float(scores['duplicate-token'].max()):.2f}).")
if induction_heads:
    k_sources = [fw.head_label(*earlier[int(comp['K'][h][: n_layers - 1].flatten().argmax())]) for h in induction_heads
                 if h[0] > 0]
    say(f"The earlier head that the induction head{'s' if len(induction_heads) > 1 else ''} K-compose most "
        f"with: **{', '.join(k_sources) or 'none (the induction heads are in layer 0)'}** — compare with the "
        f"previous-token heads above.")

# %% [markdown]
# ### Attention patterns
#
# The interactive view below shows every head on the first repeated sequence (hover over a token
# to see where it attends). A previous-token head shows a line just below the diagonal; an
# induction head, in the second half, a line offset by `seq_len - 1` positions.

# %%
str_tokens = [repr(model.tokenizer.decode([int(t)]))[1:-1] for t in tokens[0]]
show_attention(str_tokens, patterns[:, 0].flatten(0, 1).numpy(), labels)

# %% [markdown]
# ## Method 3 — ablate the induction heads
#
# If the heads found above really implement induction, replacing their output by its average
# (mean-ablation, which keeps the typical output but removes the information about *this*
# sequence) should raise the loss on the repeated half, where induction helps, and leave the first
# half, where the tokens are unpredictable anyway, alone. We compare with ablating the
# previous-token heads (which the induction circuit needs) and a control: the layer-1 head with the
# lowest induction score.

# %%
layer1_scores = scores["induction"][1:].flatten()
control = (1 + int(layer1_scores.argmin()) // n_heads, int(layer1_scores.argmin()) % n_heads)
ablated_induction = induction_heads or [best_induction]
ablations = {f"induction: {name(ablated_induction)}": ablated_induction,
             f"previous-token: {name(prev_heads)}": prev_heads,
             f"control: {fw.head_label(*control)}": [control]}
table = fw.ablation_table(model, tokens, seq_len, ablations)
display(table.round(3))

# %%
clean = table.iloc[0]
rows = list(table.index)
fig, ax = plt.subplots(figsize=(8, 3.5))
x = np.arange(len(rows))
ax.bar(x - 0.2, table["loss first half"], 0.4, label="first (random) half")
ax.bar(x + 0.2, table["loss repeated half"], 0.4, label="repeated half")
ax.set_xticks(x, rows, rotation=15)
ax.set_ylabel("mean loss (nats)")
ax.set_title("Loss on repeated random tokens with heads mean-ablated")
ax.legend()
plt.show()
ind = table.iloc[1]
say(f"Mean-ablating {name(ablated_induction)} raises the loss on the repeated half from "
    f"{clean['loss repeated half']:.2f} to {ind['loss repeated half']:.2f} nats "
    f"(**{ind['loss repeated half'] - clean['loss repeated half']:+.2f}**), while the first half moves by "
    f"{ind['loss first half'] - clean['loss first half']:+.2f}. Ablating the previous-token head(s) "
    f"changes the repeated half by {table.iloc[2]['loss repeated half'] - clean['loss repeated half']:+.2f}, "
    f"the control head by {table.iloc[3]['loss repeated half'] - clean['loss repeated half']:+.2f}.")

# %% [markdown]
# ## What it means
#
# The weights alone (composition scores) and the behaviour (attention on repeated tokens, and the
# loss after ablation) point to the same circuit when the strongest K-composition links an
# induction head to a previous-token head: the two-layer model has learned to continue a sequence
# it has seen earlier in its context, which no one-layer model can do. The chapter
# *Induction heads across training* asks when in training this circuit appears.
