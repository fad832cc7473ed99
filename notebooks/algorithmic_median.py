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
# # Find the median: does a small transformer sort, count or compare?
#
# A minimum can be found by one head whose score falls with the value it looks at. A median cannot:
# which value is the median depends on all the others. We train small transformers to output the
# median of a list, find the components that matter, state the mechanism the evidence points to,
# and test it with interventions whose outcome the mechanism predicts.

# %% tags=["remove-cell"]
# On Colab, install the book's code and shipped models first (this cell does nothing elsewhere).
import sys
if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/circuits-book/circuits-book")  # noqa: F821

# %% tags=["parameters"]
n = 9             # longest training list (lists of 2..n values are trained)
V = 32            # values are 0..V-1
n_layers = 2
attn_only = False
seed = 0
steps = 4000      # training steps (changing any of these trains a new model on first use)
n_prompts = 2000  # held-out lists analysed
compare_with = ["median-1l-mlp"]  # other zoo models summarised at the end

# %%
import numpy as np
import pandas as pd
import torch

from shared.analysis.answer import (accuracy, answer_accuracy, answer_attention, answer_scores,
                                    direct_logit_attribution, ov_by_source)
from shared.analysis.stats import ov_diagonal_argmax_share
from shared.chapters import lists as chapter
from shared.chapters import open_chapter, say, show_table
from shared.engine.ablation import knockout_sweep, mean_values, node_mask, score_node_masks
from shared.engine.graph import Graph, mlp_name, parse_node
from shared.plots import lists as plots
from shared.tasks.lists import test_set
from shared.zoo.registry import model_metrics

ch = open_chapter("algorithmic_median", n=n, V=V, n_layers=n_layers, attn_only=attn_only, steps=steps,
                  n_prompts=n_prompts, compare_with=compare_with, seed=seed)
model_name, recipe, model = chapter.task_model("median", ch.params)
graph = Graph.of(model)
heads, layers, last = graph.heads(), range(graph.n_layers), graph.n_layers - 1

# %% [markdown]
# ## The task and the held-out split
#
# A list of 2 to `n` distinct values from `0..V-1` is followed by `SEP`; the model must predict the
# median there. For an even length the answer is the *lower* median, `sorted(x)[(L - 1) // 2]`.
# Lists are split into training and held-out sets by multiset (a fixed hash of the sorted values),
# so a held-out list is never a reordering of a training list.

# %%
data = test_set(recipe, count=n_prompts)
batch = data.prompts()  # the lists as a PromptBatch: the answer is scored at SEP
chapter.show_data(recipe, data, seed)

# %% [markdown]
# ## Training

# %%
metrics = model_metrics(model_name)
plots.training_curves(metrics, title=model_name, name="training")
acc = accuracy(model, batch)
say(chapter.training_text(recipe, metrics, acc, len(data)))

# %% [markdown]
# ## Which components matter?
#
# Mean ablation of each head and MLP (its output replaced by its average at that position over the
# held-out lists; accuracy lost), then of all heads of a layer at once, and the exact split of the
# answer's logit (minus the mean logit over values) into direct contributions.

# %%
means = mean_values(model, data.tokens, per_position=True)  # each node's mean output at each position
knockout = knockout_sweep(model, batch, answer_accuracy, values=means, progress=False)
dla = direct_logit_attribution(model, batch, n_values=data.V)
plots.components(dla, knockout, title=model_name, name="components")
layer_masks = torch.stack([node_mask(graph, graph.heads(l)) for l in layers])  # every head of one layer
grouped = pd.Series(score_node_masks(model, batch, layer_masks, means, answer_accuracy).tolist(),
                    index=[f"all layer-{l} heads" for l in layers], name="accuracy")
show_table(grouped.to_frame(), percent=["accuracy"], percent_digits=1)
summary = chapter.circuit_summary(model, data, knockout=knockout)
drops = knockout.as_dict()
head_drops = {h: drops[h] for h in heads}
say(f"No single head is indispensable: the largest drop from one head is {max(head_drops.values()):.1%} "
    f"({max(head_drops, key=head_drops.get)}), but ablating whole layers of heads leaves "
    + ", ".join(f"{k}: {v:.1%}" for k, v in grouped.items()) + " accuracy. "
    + ("The MLPs matter most: " + ", ".join(f"{c} ablated costs {drops[c]:.1%}" for c in drops
                                            if parse_node(c).kind == "mlp") + ". " if not attn_only else "")
    + f"The largest direct contributor to the answer logit is **{dla.idxmax()}** ({dla.max():.1f} of {dla.sum():.1f}).")

# %% [markdown]
# ## Where does the answer position look?
#
# Attention of every head on three held-out lists, then the average attention from `SEP` by the
# key's rank *relative to the median rank* (0 = the median itself).

# %%
chapter.show_attention(model, data)

# %%
attn = answer_attention(model, batch)  # [list, layer, head, key]
rel = chapter.attention_by(data, attn, "rank", relative=True)
plots.attention_curves(dict(zip(heads, rel.reshape(len(heads), -1))), "rank of the key minus the median rank",
                       "mean attention from SEP", "Attention from SEP by key rank relative to the median",
                       x=np.arange(rel.shape[-1]) - data.tokens.shape[1], name="attention_by_relative_rank")
tv = chapter.distance_from_uniform(data, attn)
on_answer = chapter.attention_on_answer(data, attn)
say("Distance of each head's `SEP` attention from a uniform average over the list (0 = exactly uniform): "
    + ", ".join(f"{h} {d:.2f}" for h, d in zip(heads, tv.flat))
    + ". Attention on the median token itself: "
    + ", ".join(f"{h} {a:.0%}" for h, a in zip(heads, on_answer.flat)) + ".")

# %% [markdown]
# ## Does `SEP` count? A linear probe for the list's histogram
#
# If the first layer's heads average the list at `SEP`, their summed output there should contain the
# list's cumulative histogram: for every threshold `t`, the share of list values `<= t`. We fit one
# linear read-out per threshold on half of the held-out lists and report the R² on the other half,
# next to the same probe on the position embedding alone (which knows the length, not the values).

# %%
probe_sites = {"position embedding (control)": "hook_pos_embed", "layer-0 attention output": "blocks.0.hook_attn_out",
               "residual after layer 0": "blocks.0.hook_resid_post"}
probe = {label: chapter.cdf_probe(model, data, hook) for label, hook in probe_sites.items()}
say("Held-out R² of a linear probe for the cumulative histogram at `SEP`: "
    + ", ".join(f"{k} **{v:.3f}**" for k, v in probe.items()) + ".")

# %% [markdown]
# ## The QK circuit: score by key value, relative to the median
#
# If a head *compares* each token with a target computed at `SEP`, its score should peak where the
# key's value equals the median, whatever that median is. We group the pre-softmax score from `SEP`
# by `key value - median`. (By absolute key value, a comparison head looks flat, since every value is
# sometimes below and sometimes above the median.)

# %%
scores = answer_scores(model, batch, data.value_mask())  # q.k / sqrt(d_head), centred per list
by_offset = chapter.attention_by(data, scores, "offset").reshape(len(heads), -1)
off_x = np.arange(by_offset.shape[-1]) - data.V
plots.attention_curves(dict(zip(heads, by_offset)), "key value minus the median", "mean attention score from SEP",
                       "QK: score by offset from the median", x=off_x, name="qk_by_offset")
by_value = chapter.attention_by(data, scores, "value").reshape(len(heads), -1)
peaks = {h: int(off_x[np.nanargmax(c)]) for h, c in zip(heads, by_offset)}
spread = {h: float(np.nanmax(c) - np.nanmin(c)) for h, c in zip(heads, by_value)}
say("Offset at which each head's score peaks: " + ", ".join(f"{k} {v:+d}" for k, v in peaks.items())
    + ". Range of the mean score over absolute key values: " + ", ".join(f"{k} {v:.2f}" for k, v in spread.items()) + ".")

# %% [markdown]
# ## The OV circuit of the last-layer heads, and who writes the answer
#
# What each last-layer head would add to the logits if it attended to one token, by the token's value,
# shown for the head that attends most to the median; for every last-layer head we count the values
# whose largest output is the value itself (the *OV diagonal share*).

# %%
last_heads = graph.heads(last)
ovs = {h: ov_by_source(model, data.tokens, data.value_mask(), last, parse_node(h).head, data.V) for h in last_heads}
best = max(last_heads, key=lambda h: on_answer[last, parse_node(h).head])
plots.ov_table(ovs[best], f"OV circuit of {best}", name="ov_table")
diagonal = {h: ov_diagonal_argmax_share(table) for h, table in ovs.items()}
say("Share of values that the head pushes up most when attending to them (OV diagonal share): "
    + ", ".join(f"{k} {v:.0%}" for k, v in diagonal.items())
    + f". Direct logit attribution: heads of the last layer together {sum(dla[h] for h in last_heads):.1f}, "
    + (f"{mlp_name(last)} {dla[mlp_name(last)]:.1f}" if not attn_only else "no MLP")
    + f", of {dla.sum():.1f} in total.")

# %% [markdown]
# ## Interventions
#
# **1. Editing input tokens.** The median is the value of rank `(L - 1) // 2`. Raising one token from
# below the median to above the maximum must move the answer to the next-larger list value; lowering a
# token from above the median to below the minimum must move it to the next-smaller value; moving a
# token within the lower half must change nothing. We compare the model's answers with these
# predictions on held-out lists.

# %%
edits = chapter.edit_intervention(model, data, seed=seed)
show_table(edits.rename(index=lambda kind: kind.replace("_", " ")), percent=[c for c in edits.columns if c != "examples"],
           percent_digits=1)
say("Model answers equal the predicted answer for "
    + ", ".join(f"{k.replace('_', ' ')} edits {r['model = rule prediction']:.1%} of {int(r['examples'])}" for k, r in edits.iterrows())
    + ".")

# %% [markdown]
# **2. Moving the target by patching one position.** Take a held-out list and a copy with one
# below-median token raised above the maximum. Copy the residual stream after layer 0 from the edited
# run into the clean run, either only at `SEP` or only at the list positions. If `SEP` computes from
# the whole list a target that the next layer compares every token with, patching `SEP` alone should
# make the clean run answer the *edited* list's median (a value that is also in the clean list), and
# patching the list positions alone should change nothing.

# %%
if n_layers >= 2:
    patching = chapter.sep_patching(model, data, layer=0, seed=seed)
    show_table(patching, percent=["= clean median", "= edited median"], percent_digits=1)
    say(f"Patching `SEP` only: the clean run outputs the edited median in **{patching.loc['SEP', '= edited median']:.1%}** "
        f"of {int(patching.loc['SEP', 'examples'])} lists (clean median {patching.loc['SEP', '= clean median']:.1%}). "
        f"Patching the list positions only: clean median {patching.loc['list positions', '= clean median']:.1%}, "
        f"edited median {patching.loc['list positions', '= edited median']:.1%}.")
else:
    patching = None
    say("This model has one layer, so there is no intermediate residual stream to patch.")

# %% [markdown]
# **3. Who carries the chosen value to the output?** The same edited lists, but now only the
# last layer's summed attention output at `SEP` is copied from the edited run. If the last-layer
# heads fetch the selected token's value and the final MLP turns it into the answer, this alone should
# move the answer to the edited median.

# %%
if n_layers >= 2:
    readout = chapter.sep_patching(model, data, seed=seed, hook=f"blocks.{last}.hook_attn_out")
    show_table(readout, percent=["= clean median", "= edited median"], percent_digits=1)
    say(f"Patching only layer {last}'s attention output at `SEP`: edited median in "
        f"**{readout.loc['SEP', '= edited median']:.1%}** of lists, clean median in {readout.loc['SEP', '= clean median']:.1%}.")
else:
    readout = None

# %% [markdown]
# ## The mechanism, as far as the evidence goes

# %%
uniform_l0 = bool((tv[0] < 0.25).all()) and probe["layer-0 attention output"] > 0.9
peak_l1 = n_layers >= 2 and all(peaks[h] == 0 for h in last_heads)
sep_decides = patching is not None and patching.loc["SEP", "= edited median"] > 0.9 \
    and patching.loc["list positions", "= clean median"] > 0.9
rule_ok = bool((edits["model = rule prediction"] > 0.95).all())
carried = readout is not None and readout.loc["SEP", "= edited median"] > 0.9
claims = []
if uniform_l0:
    claims.append(f"**counting**: every layer-0 head spreads `SEP`'s attention almost evenly over the list "
                  f"(distance from uniform at most {tv[0].max():.2f}), and their output at `SEP` encodes the list's "
                  f"cumulative histogram linearly (probe R² {probe['layer-0 attention output']:.3f} vs "
                  f"{probe['position embedding (control)']:.3f} for the control)")
if peak_l1:
    claims.append("**comparison**: every last-layer head scores tokens highest when their value equals the "
                  "median, i.e. it compares each token with a target computed at `SEP`")
if sep_decides:
    claims.append(f"**the target lives at `SEP`**: swapping only `SEP`'s layer-0 state moves the answer to the "
                  f"edited list's median ({patching.loc['SEP', '= edited median']:.0%}), while swapping all list "
                  f"positions does not ({patching.loc['list positions', '= clean median']:.0%} unchanged)")
if carried:
    claims.append(f"**read-out**: the last-layer heads carry the chosen value — swapping only their summed output "
                  f"at `SEP` gives the edited median {readout.loc['SEP', '= edited median']:.0%} of the time — and "
                  + (f"{mlp_name(last)} turns it into the answer logit ({dla[mlp_name(last)] / dla.sum():.0%} of the direct effect)"
                     if not attn_only else "their OV circuit writes it out"))
if rule_ok:
    claims.append("the answers follow the rank rule under every input edit")
say(("Supported by this run: " + "; ".join(claims) + ". " if claims else "None of the tested signatures holds here. ")
    + ("No sorting is needed, and none shows up: copying the list positions from the edited list, where the "
       "tokens' ranks differ, leaves the answer unchanged; `SEP` does the counting and the last layer picks the "
       "token that matches. "
       if uniform_l0 and peak_l1 and sep_decides else "")
    + (f"{dla.idxmax()} writes most of the answer logit ({dla.max() / dla.sum():.0%} of the direct effect)."
       if not carried else ""))

# %% [markdown]
# ## Failure analysis
#
# Lists of every length the context allows (above `n`: never trained), lists with repeated values
# (never trained) and accuracy by answer value (the vocabulary edges).

# %%
by_length = chapter.accuracy_by_length(model, recipe, count=max(50, n_prompts // 4))
by_answer = chapter.accuracy_by_answer(model, data)
repeats = chapter.repeat_breakdown(model, test_set(recipe, count=n_prompts, repeats=True, seed_offset=99))
plots.failures(by_length, by_answer, repeats, name="failures")
say(chapter.failure_text(recipe, by_length, by_answer, repeats))

# %% [markdown]
# ## Other models of this task

# %%
table = chapter.compare_models([model_name, *compare_with], n_prompts, known={model_name: summary})
chapter.show_comparison(table)
say("; ".join(f"**{m}**: {r['held-out accuracy']:.1%} held-out accuracy, largest single-component ablation drop "
              f"{r['largest drop (any component)']:.0%}, most important head {r['deciding head']} with "
              f"{r['attention on answer']:.0%} of its attention on the median"
              for m, r in table.iterrows()) + ".")
