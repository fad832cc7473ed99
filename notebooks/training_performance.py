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
# # Abilities across training: when does each one appear, and at the same time in every size?
#
# Tigges et al. (2024, "LLM Circuit Analyses Are Consistent Across Training and Scale") followed
# Pythia models from 70m to 2.8b parameters over their training checkpoints and found that IOI,
# greater-than and the other tasks they studied are acquired at a similar number of tokens across
# sizes. We ask the same of the book's own suite: **at which checkpoint does each ability appear in
# each model, and is that number of tokens similar across the three sizes and two seeds?**

# %% tags=["remove-cell"]
# On Colab, install the book's code and shipped models first (this cell does nothing elsewhere).
import sys
if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/circuits-book/circuits-book")  # noqa: F821

# %% tags=["parameters"]
model_names = ["suite-s-s0", "suite-s-s1", "suite-m-s0", "suite-m-s1", "suite-l-s0"]  # suite models or Pythia
max_checkpoints = 0        # checkpoints per model (0: all; otherwise first, last and evenly spread ones)
n_prompts = 8              # prompts per held-out IOI / greater-than template and per sequence form and task
n_windows = 32             # text windows of 128 tokens for the ICL score
early_pos = 5              # ICL score: loss around this position ...
late_pos = 100             # ... subtracted from the loss around this one
seed = 0
appear_fraction = 0.5      # an ability appears at the first checkpoint that covers this share of its total change
min_ioi_logit_diff = 1.0   # present at the end: mean IOI logit difference at least this (nats)
min_ioi_accuracy = 0.8     # ... share of IOI prompts preferring the IO at least this
min_gt_prob_diff = 0.1     # ... greater-than probability difference at least this (as in greater_than_circuit)
min_gt_gain = 0.05         # ... and its gain over the "01" control at least this (the part due to the start year)
min_seq_accuracy = 0.5     # ... held-out sequence accuracy at least this
max_icl_score = -0.2       # ... ICL score at most this (nats; negative = later tokens easier)
min_induction = 0.3        # ... best prefix-matching score at least this
similar_factor = 4.0       # sizes gain an ability "at a similar number of tokens" if within this factor

# %%
import pandas as pd

from shared.chapters import open_chapter, say, show_table
from shared.chapters import training as tr
from shared.errors import ParameterError
from shared.plots import training as plots

ch = open_chapter("training_performance", model_names=model_names, max_checkpoints=max_checkpoints,
                  n_prompts=n_prompts, n_windows=n_windows, early_pos=early_pos, late_pos=late_pos, seed=seed,
                  appear_fraction=appear_fraction, min_ioi_logit_diff=min_ioi_logit_diff,
                  min_ioi_accuracy=min_ioi_accuracy, min_gt_prob_diff=min_gt_prob_diff, min_gt_gain=min_gt_gain,
                  min_seq_accuracy=min_seq_accuracy, max_icl_score=max_icl_score, min_induction=min_induction,
                  similar_factor=similar_factor)
tr.check_series_models(model_names)
if not early_pos < late_pos:
    raise ParameterError(f"early_pos ({early_pos}) must come before late_pos ({late_pos}).")
for name in model_names:
    print(f"Model: {name}, checkpoints at steps {tr.series_steps(name, max_checkpoints)}")

# %% [markdown]
# ## Method
#
# Every checkpoint of every model is measured on the suite's **held-out forms** (prompt wordings
# written before training and kept out of its corpus, `shared.tasks.heldout`), with the functions of
# the `model_suite` chapter:
#
# * **IOI**: logit(IO) − logit(S) at the end of `n_prompts` prompts per template, its mean
#   (*logit difference*) and the share of prompts where it is positive (*accuracy*);
# * **greater-than**: probability on the two-digit years after the start year minus that on the
#   years at or before it (*probability difference*), and that difference minus the same one read on
#   the prompt whose start year ends in 01 (*gain over the "01" control*: a model that only prefers
#   late years, whatever the start year, scores the same on both and has no gain);
# * **sequence continuation**: top-1 accuracy of the next member on the held-out surface forms;
# * **ICL score**: on `n_windows` windows of freshly generated suite documents, the loss around
#   position `late_pos` minus the loss around `early_pos` (Olsson et al. 2022; negative when the
#   model uses its context);
# * **induction score**: the best head's prefix-matching score on repeated random tokens.
#
# Each checkpoint's numbers are stored in the results cache, keyed by model, step and parameters,
# so re-running the chapter reads them back. Tokens seen = step × 32 rows × 128 tokens. The table
# shows each model at its last checkpoint.

# %%
series = tr.performance_series(model_names, max_checkpoints, n_prompts=n_prompts, n_windows=n_windows,
                               early_pos=early_pos, late_pos=late_pos, seed=seed)
short = {"ioi_logit_diff": "IOI logit diff.", "ioi_accuracy": "IOI acc.", "gt_prob_diff": "GT prob. diff.",
         "gt_gain": "GT gain", "seq_accuracy": "seq. acc.", "icl_score": "ICL score", "induction": "induction",
         "induction_head": "its head"}  # column headers that can wrap, so the table fits the page
last = series.groupby("model", sort=False).tail(1).set_index("model")  # every checkpoint is in the figures
show_table(last[["tokens", *tr.METRICS, "induction_head"]].rename(columns=short), digits=2, integers=["tokens"])

# %% [markdown]
# ## When does each ability appear?
#
# An ability is **present** in a model when its value at the last checkpoint passes the criterion
# of the parameters (dashed line in the figures); a model without it is said to lack it, with no
# time of appearance. In a model that has it, the ability **appears** at the first checkpoint whose
# value has covered `appear_fraction` of the way from the first checkpoint's value to the last one's.

# %%
criteria = {"ioi_logit_diff": min_ioi_logit_diff, "ioi_accuracy": min_ioi_accuracy,
            "gt_prob_diff": min_gt_prob_diff, "gt_gain": min_gt_gain, "seq_accuracy": min_seq_accuracy,
            "icl_score": max_icl_score, "induction": min_induction}
tables = {metric: tr.emergence(series, metric, bar, appear_fraction).reindex(model_names)
          for metric, bar in criteria.items()}
summary = {metric: table.assign(metric=metric).reset_index() for metric, table in tables.items()}
show_table(pd.concat(summary.values()).set_index(["metric", "model"])[["first", "final", "present", "step", "tokens"]],
           digits=2, integers=["step", "tokens"])

# %%
def verdict(metric: str) -> str:
    table = tables[metric]
    have = table[table["present"]]
    label = tr.METRICS[metric].split(" (")[0]
    if have.empty:
        best = table["final"].min() if metric in tr.LOWER_IS_BETTER else table["final"].max()
        return (f"**{label}**: no model reaches the criterion ({criteria[metric]:+g}) by its last checkpoint "
                f"(best final value {best:+.2f}), so the ability is absent and has no time of appearance.")
    where = "; ".join(f"{m} at step {int(r.step)} ({int(r.tokens):,} tokens)" for m, r in have.iterrows())
    absent = [m for m in table.index if m not in have.index]
    factor = tr.spread_factor(table)
    sizes = have["size"].nunique()
    text = f"**{label}** appears in {where}" + (f"; absent in {', '.join(absent)}" if absent else "") + ". "
    if factor is None or sizes < 2:
        return text + "Fewer than two sizes have it, so there is nothing to compare across sizes."
    similar = factor <= similar_factor
    return text + (f"Across the {sizes} sizes that have it the tokens differ by a factor of {factor:.1f}: "
                   + ("**similar**" if similar else "**not similar**")
                   + f" by the criterion (within a factor {similar_factor:g}).")

gt_both = tables["gt_prob_diff"]["present"] & tables["gt_gain"]["present"]
say("\n\n".join(verdict(m) for m in criteria)
    + f"\n\n**Greater-than by the rule of the circuit chapters** (probability difference at least "
    f"{min_gt_prob_diff:g} *and* gain over the control at least {min_gt_gain:g} at the last checkpoint; "
    f"`greater_than_circuit` and `training_circuits` apply it to one template, this page to the mean of six): "
    + (f"present in {', '.join(gt_both[gt_both].index)}." if gt_both.any() else "present in no model."))

# %% [markdown]
# ## IOI

# %%
plots.ability_curves(series, {k: tr.METRICS[k] for k in ("ioi_logit_diff", "ioi_accuracy")},
                     title="IOI over training", reference={k: criteria[k] for k in ("ioi_logit_diff", "ioi_accuracy")},
                     name="ioi")

# %% [markdown]
# ## Greater-than
#
# Both panels average all six held-out templates. The left one is the raw probability difference,
# which a model that simply prefers late years also scores well on; the right one subtracts the "01"
# control, as `greater_than_circuit` and `training_circuits` do (they judge one template; here the
# criterion is applied to the average over all six), so only the right one measures a comparison
# with the start year.

# %%
plots.ability_curves(series, {k: tr.METRICS[k] for k in ("gt_prob_diff", "gt_gain")},
                     title="Greater-than over training", reference={k: criteria[k] for k in ("gt_prob_diff", "gt_gain")}, name="greater_than")

# %% [markdown]
# ## Sequence continuation (held-out forms)

# %%
plots.ability_curves(series, {"seq_accuracy": tr.METRICS["seq_accuracy"]}, title="Sequence continuation over training",
                     reference={"seq_accuracy": min_seq_accuracy}, name="sequences")

# %% [markdown]
# ## In-context learning and induction

# %%
plots.ability_curves(series, {"icl_score": tr.METRICS["icl_score"]}, title="In-context learning over training",
                     reference={"icl_score": max_icl_score}, name="icl")

# %%
plots.ability_curves(series, {"induction": tr.METRICS["induction"]}, title="Induction heads over training",
                     reference={"induction": min_induction}, name="induction")

# %% [markdown]
# ## What it means
#
# The sentences above place each ability only in the models that have it at the end of training, by
# a stated criterion; the checkpoints are log-spaced early and 200 steps apart late, so a time of
# appearance is known only to within one interval, and a factor between sizes smaller than the
# ratio of two neighbouring checkpoints is not resolved. Tigges et al. compare models trained on
# 300 B tokens; the suite sees 6.6 M, so an ability that none of its models gains (IOI, in the
# `model_suite` chapter) cannot be placed at all here, which is itself a difference from Pythia.
