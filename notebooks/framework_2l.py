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
n_prompts = 32                # number of repeated random sequences
induction_threshold = 0.5     # heads with an induction score above this are called induction heads
seed = 0

# %%
import pandas as pd
import torch

from shared.analysis.attention import attention_patterns
from shared.analysis.heads import HeadScores, diagonal_score, score_of, top_heads
from shared.analysis.text import token_strings
from shared.analysis.weights import composition_scores, random_composition_baseline, weights
from shared.chapters import count, open_chapter, say, show_table
from shared.chapters.framework import control_head, k_sources_text
from shared.engine.ablation import mean_values, node_mask, score_node_masks
from shared.engine.graph import Graph
from shared.errors import ParameterError
from shared.plots import figures
from shared.plots import framework as plots
from shared.plots.widgets import attention_patterns as show_attention
from shared.tasks.repeated import next_token_logprob, repeated_tokens_for

ch = open_chapter("framework_2l", model_name=model_name, seq_len=seq_len, n_prompts=n_prompts,
                  induction_threshold=induction_threshold, seed=seed)
model = ch.model
if model.cfg.n_layers < 2:
    raise ParameterError(f"This chapter needs a model with at least two layers; {model_name!r} has "
                         f"{model.cfg.n_layers}.")
rep = repeated_tokens_for(model, seq_len, n_prompts, seed)   # [BOS] t1 .. tn t1 .. tn, n = seq_len
w = weights(model)
graph = Graph.of(model)
n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads

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
comp = composition_scores(w)   # A = W_V W_O of each earlier head; Q: A W_QK, K: W_QK A^T, V: A W_OV of each later head
baseline = random_composition_baseline(model.cfg.d_model, model.cfg.d_head, seed=seed)
plots.composition(comp, baseline, name="composition")

# %%
best_text = "; ".join(
    f"{kind}: **{reader} reads {writer}** ({score:.2f}, {score / baseline:.1f}× the random baseline)"
    for kind in "QKV" for reader, writer, score in [comp.strongest(kind)])
say(f"Strongest composition of each kind — {best_text}. Mean score over all pairs: "
    + ", ".join(f"{kind} {float(comp.grid(kind).mean()):.2f}" for kind in "QKV") + ".")

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
patterns = attention_patterns(model, rep.tokens)   # [sequence, head (layer-major), query, key]
first, second = rep.start, rep.start + seq_len     # where the two copies begin
scores = HeadScores(                               # mean attention along one diagonal, per head
    previous_token=diagonal_score(patterns, n_heads, offset=1, first_query=first + 1),
    duplicate_token=diagonal_score(patterns, n_heads, offset=seq_len, first_query=second),
    induction=diagonal_score(patterns, n_heads, offset=seq_len - 1, first_query=second))
figures.head_heatmap(scores.panels(), vmin=0, vmax=1, label="mean attention on the diagonal", name="head_scores")

# %%
induction_heads = [h for h in top_heads(scores.induction, induction_threshold)
                   if score_of(scores.induction, h) > induction_threshold]
prev_heads = top_heads(scores.previous_token, 0.5)
best_induction = top_heads(scores.induction, 1.0)[0]
prev_values = ", ".join(f"{score_of(scores.previous_token, h):.2f}" for h in prev_heads)
say(f"Heads with an induction score above {induction_threshold}: **{', '.join(induction_heads) or 'none'}**"
    f" (best: {best_induction}, {score_of(scores.induction, best_induction):.2f}). "
    f"Strongest previous-token head{'s' if len(prev_heads) > 1 else ''}: **{', '.join(prev_heads)}** "
    f"({prev_values}). "
    f"Strongest duplicate-token head: **{', '.join(top_heads(scores.duplicate_token, 1.0))}** "
    f"({float(scores.duplicate_token.max()):.2f}).")
if induction_heads:
    say(k_sources_text(comp, induction_heads, prev_heads))

# %% [markdown]
# ### Attention patterns
#
# The interactive view below shows every head on the first repeated sequence (hover over a token
# to see where it attends). A previous-token head shows a line just below the diagonal; an
# induction head, in the second half, a line offset by `seq_len - 1` positions.

# %%
show_attention(token_strings(model.tokenizer, rep.tokens[0], quotes=False), patterns[0].numpy(), graph.heads(),
               spaced=True)  # random tokens are not text: a space after each keeps them apart

# %% [markdown]
# ## Method 3 — ablate the induction heads
#
# If the heads found above really implement induction, replacing their output by its average
# (mean-ablation, which keeps the typical output but removes the information about *this*
# sequence) should raise the loss on the repeated half, where induction helps, and leave the first
# half, where the tokens are unpredictable anyway, alone. We compare with ablating the
# previous-token heads (which the induction circuit needs) and a control: of the heads that are
# neither induction heads (score above `induction_threshold`) nor previous-token heads ablated here,
# the one with the lowest induction score. Each ablation is a node mask for the circuit engine's scorer
# (`score_node_masks`); every predicted token of every sequence becomes one prompt whose answer is
# the token that follows, so one call measures the loss of all predictions under all ablations.

# %%
ablated_induction = induction_heads or [best_induction]
control = control_head(scores.induction, exclude=ablated_induction + prev_heads)  # lowest induction score left
ablations = {"none (clean)": [], f"induction: {', '.join(ablated_induction)}": ablated_induction,
             f"previous-token: {', '.join(prev_heads)}": prev_heads}
if control is not None:
    ablations[f"control: {control}"] = [control]
values = mean_values(model, rep.tokens)      # each head's output z averaged over all sequences and positions
rows = rep.next_token_rows()                 # one prompt per predicted token; its answer is the next token
masks = torch.stack([node_mask(graph, heads) for heads in ablations.values()])
loss = -score_node_masks(model, rows.batch, masks, values, next_token_logprob, per_prompt=True)  # [ablation, row]
table = pd.DataFrame({"loss first half": loss[:, ~rows.repeated].mean(1).numpy(),
                      "loss repeated half": loss[:, rows.repeated].mean(1).numpy()},
                     index=pd.Index(list(ablations), name="ablated"))
show_table(table, digits=3)

# %%
plots.ablation_losses(table, name="ablation")
clean, ind = table.iloc[0], table.iloc[1]
say(f"Mean-ablating {', '.join(ablated_induction)} raises the loss on the repeated half from "
    f"{clean['loss repeated half']:.2f} to {ind['loss repeated half']:.2f} nats "
    f"(**{ind['loss repeated half'] - clean['loss repeated half']:+.2f}**), while the first half moves by "
    f"{ind['loss first half'] - clean['loss first half']:+.2f}. Ablating the previous-token "
    f"head{'s' if len(prev_heads) > 1 else ''} changes the repeated half by "
    f"{table.iloc[2]['loss repeated half'] - clean['loss repeated half']:+.2f}"
    + (f", the control head {control} (induction score {score_of(scores.induction, control):.2f}, the lowest "
       f"among the {count(n_layers * n_heads - len(set(ablated_induction + prev_heads)), 'head')} that are "
       f"neither induction nor previous-token heads) by "
       f"{table.iloc[3]['loss repeated half'] - clean['loss repeated half']:+.2f}." if control is not None
       else "; every other head is an induction or previous-token head, so there is no control head."))

# %% [markdown]
# ## What it means
#
# The weights alone (composition scores) and the behaviour (attention on repeated tokens, and the
# loss after ablation) point to the same circuit when the strongest K-composition links an
# induction head to a previous-token head: the two-layer model has learned to continue a sequence
# it has seen earlier in its context, which no one-layer model can do. The chapter
# *Induction heads across training* asks when in training this circuit appears.
