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
# # Greater-than: heads that read the year, MLPs that favour later ones
#
# "The war dragged on from the year 1732 until the year 17" should end in a year after 32. Hanna et
# al. (2023) found how GPT-2 small does this: attention heads carry the start year's last two digits
# (**YY**) to the last token, and MLPs 8–11 turn them into logits that favour the years above YY —
# the YY × answer-year picture of those MLPs' outputs is an *upper triangle*. We ask: **does our
# model prefer years after YY because of YY, and if so, which heads and MLPs do it, found by stated
# criteria that recover a circuit we plant by hand?**

# %% tags=["remove-cell"]
# On Colab, install the book's code and shipped models first (this cell does nothing elsewhere).
import sys
if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/circuits-book/circuits-book")  # noqa: F821

# %% tags=["parameters"]
model_name = "suite-l-s0"  # a local model (see the models page) or a pretrained name such as "gpt2-small"
template = "dragged"       # the held-out template the circuit is searched on (the suite's models give it the most year mass)
n_prompts = 40             # clean/"01" prompt pairs per template
n_picture = 200            # prompts for the YY x answer-year pictures (more rows of YY filled)
seed = 0
min_prob_diff = 0.1        # the model does greater-than if its probability difference is at least this ...
min_gain = 0.05            # ... and at least this much higher than on the "01" control (the part due to YY)
min_effect = 0.1           # MLPs and heads: path-patching effect >= this x the whole "01" corruption's effect
min_attention = 0.2        # heads: attention END -> YY >= this

# %%
from shared.analysis.greater_than import (classify_gt_components, component_effects, component_year_logits,
                                          triangle_contrast, year_probabilities, yy_answer_matrix, yy_attention)
from shared.chapters import open_chapter, say, show_table
from shared.chapters import greater_than as gc
from shared.engine.graph import Graph
from shared.plots import greater_than as plots
from shared.tasks.greater_than import greater_than_metric, gt_batch
from shared.zoo.planted_gt import planted_gt_model

ch = open_chapter("greater_than_circuit", model_name=model_name, template=template, n_prompts=n_prompts,
                  n_picture=n_picture, seed=seed, min_prob_diff=min_prob_diff, min_gain=min_gain,
                  min_effect=min_effect, min_attention=min_attention)
model = ch.model

# %% [markdown]
# ## Method
#
# A prompt spans a start year `CCYY` and stops after the end year's century `CC`; the next token is
# a two-digit year `00`…`99`. The behaviour is Hanna et al.'s **probability difference**: the
# probability of the years above YY minus that of the years at or below it, at the last token (END).
# Each prompt has a **"01" twin**, the same text with the start year ending in 01.
#
# * **Control.** The twin, scored with the clean prompt's YY threshold, says what the model gives
#   without knowing YY (a model that just prefers late years scores well on both). The **gain**,
#   clean minus control, is the part that depends on YY, and it is the whole drop the corruption can
#   cause: every path-patching effect below is divided by it.
# * **MLPs** (path patching, the engine's `path_patching`, one edge at a time carrying the "01"
#   run's value): from the last layer down, an MLP is selected when its effect on the logits,
#   directly plus through the later MLPs already selected, is at least `min_effect`.
# * **Heads**: an effect through the selected MLPs (edges head → MLP input, summed) of at least
#   `min_effect` **and** a mean attention END → YY of at least `min_attention`.
# * **Upper triangle**: each selected MLP's output at END alone, through the final normalisation and
#   the unembedding (logit lens), over the 100 year tokens (centred), averaged per YY. Its
#   **triangle contrast** is the mean logit of the years above YY minus that of the years at or below.
# * **Faithfulness**: the probability difference with only the selected heads and MLPs kept and every
#   other head and MLP mean-ablated (its mean output at the same position over the "01" prompts).
#
# ## Does the method recover a circuit we planted?
#
# A hand-set two-layer model (`shared.zoo.planted_gt`): head `a0.h0` copies YY / 100 into one
# dimension of the residual stream, MLP `m1` reads it and adds the same logit to every year above
# YY; head `a0.h1` is a decoy that attends to YY just as strongly but writes where nothing reads;
# the other heads and `m0` are noise. The whole search, on its prompts:

# %%
planted = planted_gt_model()
pgt = planted.batch(n_prompts, seed=seed)
p_metric = greater_than_metric(pgt.digits)
p_scores = gc.prompt_scores(planted.bridge, pgt)
p_found = classify_gt_components(component_effects(planted.bridge, pgt, p_metric),
                                 yy_attention(planted.bridge, pgt.batch.clean, pgt.yy_pos),
                                 float(p_scores["gain"].mean()), min_effect, min_attention)
p_agree = gc.canonical_table(p_found, {"heads": planted.heads, "MLPs": planted.mlps}, "planted")
show_table(p_agree)

# %%
p_pic = planted.batch(n_picture, seed=seed)
p_triangle = yy_answer_matrix(component_year_logits(planted.bridge, p_pic.batch.clean, planted.mlps,
                                                    p_pic.digits)["m1"], p_pic.yy)
decoy = p_found.scores.loc[planted.decoy]
say(f"On {len(pgt)} planted prompts the probability difference is {p_scores['prob diff'].mean():.2f} "
    f"(control {p_scores['control'].mean():+.2f}). The search finds "
    + ("exactly the planted head and MLP" if p_agree["agree"].all() else "something else than the planted circuit")
    + f":\n\n{gc.component_lines(p_found)}\n\nThe decoy `{planted.decoy}` attends END → YY with "
    f"{decoy['end→yy']:.2f} but its effect through the MLPs is {decoy['relative via MLPs']:+.2f}: attention alone "
    f"would have picked it. The planted MLP's logits favour the years above YY by {triangle_contrast(p_triangle):.2f} "
    f"(planted step: {planted.gain:g}).")

# %%
plots.year_matrices({"planted m1": p_triangle}, label="direct logit (centred over the years)", diverging=True,
                    title="Planted model: the MLP's direct logits per YY", name="planted_triangle")

# %% [markdown]
# ## Does the model do greater-than?
#
# `n_prompts` clean/"01" pairs of each held-out greater-than template (the suite never saw these
# templates in training). The model does greater-than on the chapter's `template` when its mean
# probability difference is at least `min_prob_diff` **and** its gain over the "01" control is at
# least `min_gain`. The mass column is the total probability of the 100 two-digit years.

# %%
check = gc.gt_check(model, template, n_prompts, seed, min_prob_diff, min_gain)
show_table(check.by_template, digits=3, percent=["share gain > 0", "mass"])
verdict = "does greater-than" if check.does_gt else "does not do greater-than"
say(f"**{model_name} {verdict}** on the template `{template}`: over {len(check.gt)} prompts its probability "
    f"difference is {check.prob_diff:+.3f} (criterion: at least {min_prob_diff:g}; GPT-2 small in Hanna et al.: "
    f"{gc.PAPER_PROB_DIFF:.3f}), and its gain over the \"01\" control is {check.gain:+.3f} (criterion: at least "
    f"{min_gain:g})."
    + ("" if check.does_gt else " Without a behaviour that depends on YY there is no greater-than circuit to find, "
       "so the circuit analysis stops here: any component it selected would be noise."))

# %% [markdown]
# The model's probability of each answer year, averaged over the prompts of each YY, on the clean
# prompts and on their "01" twins (rows: the clean prompt's YY). Greater-than shows as mass above
# the dashed line on the left that the right panel does not share.

# %%
pic = gt_batch(model, template, n_picture, seed=seed)
pictures = {"clean prompts": yy_answer_matrix(year_probabilities(model, pic.batch.clean, pic.digits), pic.yy),
            '"01" twins': yy_answer_matrix(year_probabilities(model, pic.batch.corrupt, pic.digits), pic.yy)}
plots.year_matrices(pictures, label="probability", title=f"{model_name}: probability of each answer year",
                    name="model_years")
contrasts = {k: triangle_contrast(v) for k, v in pictures.items()}
say(f"Triangle contrast of the probabilities ({len(pic)} prompts, {pic.yy.unique().numel()} distinct YY): "
    + " and ".join(f"{v:+.4f} on the {k}" for k, v in contrasts.items())
    + " (per year: the 100 years share the mass).")

# %% [markdown]
# ## The circuit in the model
#
# When the model does greater-than, the same search runs on the chapter template's prompts. For
# GPT-2 small the components are compared with those Hanna et al. report.

# %%
if check.does_gt:
    metric = greater_than_metric(check.gt.digits)
    effects = component_effects(model, check.gt, metric)
    attention = yy_attention(model, check.gt.batch.clean, check.gt.yy_pos)
    found = classify_gt_components(effects, attention, check.gain, min_effect, min_attention)
    mlp_rows = found.scores.loc[[c for c in found.scores.index if c.startswith("m")],
                                ["relative direct", "relative total", "selected"]]
    show_table(mlp_rows, digits=2)
    say(f"On {len(check.gt)} prompts of `{template}` (whole corruption effect {check.gain:.3f}):\n\n"
        + gc.component_lines(found))
    if model_name == "gpt2-small":
        canonical = gc.canonical_table(found)
        show_table(canonical)
        say("Overlap with Hanna et al.: " + "; ".join(f"{c}: {row['overlap']}" for c, row in canonical.iterrows()) + ".")

# %%
if check.does_gt:
    graph = Graph.of(model)
    plots.head_effects(found.scores, graph.n_layers, graph.n_heads,
                       title=f"{model_name}: path-patching effect of each head", name="model_head_effects")

# %%
if check.does_gt:
    plots.yy_attention_map(attention, graph.n_layers, graph.n_heads, title=f"{model_name}: attention END → YY",
                           name="model_yy_attention")

# %% [markdown]
# The upper-triangle picture: each selected MLP's direct logits over the answer years, per YY. A
# column of one colour in every row is a preference for that year whatever YY is; greater-than is
# what changes across the dashed line from row to row.

# %%
if check.does_gt and not found.mlps:
    say(f"No MLP of {model_name} reaches the effect threshold, so there is no MLP output to read.")
elif check.does_gt:
    year_logits = component_year_logits(model, pic.batch.clean, found.mlps, pic.digits)
    triangles = {m: yy_answer_matrix(v, pic.yy) for m, v in year_logits.items()}
    plots.year_matrices(triangles, label="direct logit (centred over the years)", diverging=True,
                        title=f"{model_name}: each selected MLP's direct logits per YY", name="model_triangles")
    twin_logits = component_year_logits(model, pic.batch.corrupt, found.mlps, pic.digits)
    twin_contrast = {m: triangle_contrast(yy_answer_matrix(v, pic.yy)) for m, v in twin_logits.items()}
    say("Triangle contrast (mean logit above YY minus at or below), and the same on the \"01\" twins grouped by the "
        "clean YY, where only a preference for late years regardless of YY can produce it: "
        + "; ".join(f"`{m}` {triangle_contrast(t):+.2f} (twins {twin_contrast[m]:+.2f})" for m, t in triangles.items())
        + ". The part that depends on YY is the difference.")

# %%
if check.does_gt and found.nodes():
    faith = gc.circuit_faithfulness(model, check.gt, found, metric)
    say(f"With only the {len(found.heads)} heads and {len(found.mlps)} MLPs found kept and the other "
        f"{len(graph.components) - len(found.nodes())} heads and MLPs mean-ablated, the probability difference is "
        f"{faith.score:+.3f}, against {faith.full:+.3f} for the whole model and {faith.empty:+.3f} with every head "
        f"and MLP ablated: normalised faithfulness {faith.normalized:.0%}.")

# %% [markdown]
# ## What it means
#
# The planted model tests the procedure: it separates the head whose output the MLP reads from a
# head that only looks at the same token, and its MLP's logits draw the upper triangle by
# construction. On a trained model the same criteria select components only after the behaviour is
# shown to depend on YY (the gain over the "01" control): a model that simply favours late years
# has a positive probability difference on the "01" twins too, and a circuit found from it would
# explain the preference, not the comparison. The effects are edges patched one at a time and
# summed over MLPs, which can miss components that only matter together, and the faithfulness
# check ablates with means over the "01" prompts, harsher than Hanna et al.'s patching of the edges
# outside their circuit.
