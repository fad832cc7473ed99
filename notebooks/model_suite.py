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
# # The model suite: what the book's own language models can do
#
# Seed 003 studies circuits in a family of models of several sizes and seeds, trained alike and
# saved at many checkpoints (Pythia). Pretrained weights cannot be downloaded where this book is
# built, so it trains its own small family on a CPU: `suite-<size>-s<seed>`. Before any circuit is
# looked for in these models we ask: **which of the abilities the later chapters study —
# continuing sequences, indirect-object identification (IOI), greater-than, induction — does each
# model have, measured only on prompt forms it never read while training?**

# %% tags=["remove-cell"]
# On Colab, install the book's code and shipped models first (this cell does nothing elsewhere).
import sys
if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/circuits-book/circuits-book")  # noqa: F821

# %% tags=["parameters"]
model_names = ["suite-s-s0", "suite-s-s1", "suite-m-s0", "suite-m-s1", "suite-l-s0"]  # smallest first
n_prompts = 40  # prompts per held-out form and task, per IOI and per greater-than template
seed = 0

# %%
import random

import pandas as pd

from shared.chapters import open_chapter, say, show_table
from shared.plots import figures
from shared.tasks import abilities
from shared.zoo.registry import describe, load_model, local_models, model_metrics
from shared.zoo.suite_report import LABELS, non_embedding_params
from shared.zoo.text.suite_corpus import document
from shared.zoo.text.suite_words import NAMES as STORY_NAMES

ch = open_chapter("model_suite", model_names=model_names, n_prompts=n_prompts, seed=seed)
models = {name: load_model(name) for name in model_names}
for m in models.values():
    print("Model:", describe(m))

# %% [markdown]
# ## The models
#
# All suite models are GPT-2-style (LayerNorm, learned positions, GELU MLPs), share one byte-level
# BPE tokenizer of 2,048 tokens and read the same generated documents in the same order; a seed
# changes only the initial weights. The corpus mixes short stories with two named people, prose,
# sequences in many surface forms, year spans and rows of repeated random tokens. Each model is
# saved at step 0, at powers of two from 2, then every 200 steps, in float16.

# %%
rows = {}
for name, m in models.items():
    cfg, metrics = m.cfg, (model_metrics(name) if name in local_models() else {})
    rows[name] = {"layers": cfg.n_layers, "d_model": cfg.d_model, "heads": cfg.n_heads,
                  "non-embedding params": non_embedding_params(m) if name in local_models() else None,
                  "tokens seen": metrics.get("tokens_seen"), "checkpoints": len(metrics.get("checkpoints", [])),
                  "train minutes": metrics.get("train_seconds", float("nan")) / 60,
                  "final val. loss": metrics.get("final_val_loss")}
shape = pd.DataFrame(rows).T
show_table(shape, digits={"train minutes": 1, "final val. loss": 3})

# %%
trained = [n for n in model_names if n in local_models()]
if trained:
    curves = {n: [r["val_loss"] for r in model_metrics(n)["checkpoints"]] for n in trained}
    tokens = [max(r["tokens"], 1) for r in model_metrics(trained[0])["checkpoints"]]
    size = {n: n.rsplit("-s", 1)[0] for n in trained}
    first = {s: next(n for n in trained if size[n] == s) for s in dict.fromkeys(size.values())}
    palette = dict(zip(first, ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]))
    figures.lines(tokens, curves, xlabel="tokens seen (step 0 drawn at 1)", ylabel="validation loss (nats)",
                  title="Validation loss over training", log_x=True,
                  thin=[n for n in trained if first[size[n]] != n], colors={n: palette[size[n]] for n in trained},
                  name="validation_loss")
    say(f"Validation loss (a part of the generated stream training never reaches) falls from "
        f"{curves[trained[0]][0]:.2f} nats at initialisation to "
        + ", ".join(f"{curves[n][-1]:.2f} ({n})" for n in trained) + " after "
        f"{tokens[-1]:,} tokens; thin lines are second seeds.")

# %% [markdown]
# ## Method
#
# Every ability is measured on prompts written before the suite was trained and kept out of its
# training text (a test scans every training batch for the distinctive phrases of each form):
#
# - **sequences**: top-1 accuracy of the next member (numerals, number words, months, days,
#   letters) in the book's two templates and in nine other surface forms;
# - **IOI**: logit(indirect object) − logit(subject) at the end of eleven templates such as "While
#   Mary and John were cleaning up the market, John quietly slipped a book to";
# - **greater-than**: probability on end years above the start year minus probability on those at
#   or below it, over the 100 two-digit tokens, in six templates; and its **gain** over the same
#   difference read on the prompt whose start year ends in 01 (a model that only prefers late years
#   has none);
# - **induction**: the best head's prefix-matching score on repeated random tokens.
#
# The targets (the suite's design goals, fixed before training) are in the last column.

# %%
summaries = {name: abilities.ability_summary(m, n_prompts=n_prompts, seed=abilities.EVAL_SEED + seed)
             for name, m in models.items()}
table = pd.DataFrame({LABELS[k]: [s[k] for s in summaries.values()] for k in abilities.TARGETS},
                     index=list(summaries)).T
table["target"] = [f"> {v}" if k == "induction" else f">= {v}" for k, v in abilities.TARGETS.items()]
show_table(table, digits=2)

# %%
shown = ("book_accuracy", "heldout_accuracy", "ioi_positive", "gt_prob_diff", "gt_gain", "induction")
figures.bars([LABELS[k] for k in shown], {n: [s[k] for k in shown]
              for n, s in summaries.items()},
             ylabel="score (targets: table above)", title="Abilities per model, held-out forms only",
             horizontal=True, name="abilities")

# %%
largest = model_names[-1]
met = abilities.meets_targets(summaries[largest])
say(f"`{largest}` meets {sum(met.values())} of {len(met)} targets"
    + (f"; it misses {', '.join(LABELS[k] for k, ok in met.items() if not ok)}." if not all(met.values()) else ".")
    + " Across the suite: " + "; ".join(
        f"`{n}` sequences {s['heldout_accuracy']:.0%} on held-out forms, IOI {s['ioi_positive']:.0%} of prompts "
        f"right (mean {s['ioi_mean']:.2f} nats), greater-than {s['gt_prob_diff']:.2f} (gain over the \"01\" "
        f"control {s['gt_gain']:+.2f}), induction {s['induction']:.2f} "
        f"({s['induction_head']})" for n, s in summaries.items()) + ".")

# %% [markdown]
# ## Per form and template, for the largest model
#
# A mean can hide a form the model fails. The sequence table gives each surface form its own row;
# the IOI and greater-than tables give each template its own row.

# %%
forms = summaries[largest]["forms"].copy()
forms["held_out"] = forms.held_out.map({True: "yes", False: "no"})
show_table(forms.rename(columns={"held_out": "held out"}),
           percent=[c for c in forms.columns if c not in ("held_out",)])
ioi = summaries[largest]["ioi_by_template"].set_axis(["mean logit diff.", "share IO > S"], axis=1)
show_table(ioi, percent=["share IO > S"])
show_table(summaries[largest]["gt_by_template"].rename(columns={"prob_diff": "prob. difference",
                                                                "control": "\"01\" control", "gain": "gain",
                                                                "mass": "mass on two-digit tokens"}), digits=3)

# %%
worst_form = forms.loc[forms.held_out == "yes", "mean"].idxmin()
say(f"For `{largest}` the weakest held-out sequence form is *{worst_form}* "
    f"({forms.loc[worst_form, 'mean']:.0%}); IOI templates range from {ioi['mean logit diff.'].min():.2f} "
    f"({ioi['mean logit diff.'].idxmin()}) to {ioi['mean logit diff.'].max():.2f} nats "
    f"({ioi['mean logit diff.'].idxmax()}); greater-than templates from "
    f"{summaries[largest]['gt_by_template'].prob_diff.min():.2f} to "
    f"{summaries[largest]['gt_by_template'].prob_diff.max():.2f} (gains over the \"01\" control from "
    f"{summaries[largest]['gt_by_template'].gain.min():+.2f} to {summaries[largest]['gt_by_template'].gain.max():+.2f}).")

# %% [markdown]
# ## What limits the suite
#
# A missed target can mean two things: the model has the skill but not on forms it never read, or it
# has not learned the skill at all. For IOI the first step of the skill is recalling names from
# context. We measure it on stories generated exactly like the training text: at each mention of a
# name that already occurred (with another name also present), the probability the model gives the
# right name, the other name, and chance (one over the number of names). We also read how fast the
# validation loss was still falling over the last 400 steps.

# %%
stories = [document(random.Random(f"name-recall-{seed}-{i}"), {"story": 1.0}) for i in range(60)]
recall = pd.DataFrame({n: abilities.name_recall(m, stories, STORY_NAMES) for n, m in models.items()}).T
recall["val. loss, last 400 steps"] = [
    model_metrics(n)["checkpoints"][-3]["val_loss"] - model_metrics(n)["final_val_loss"] if n in local_models()
    else float("nan") for n in recall.index]
show_table(recall.rename(columns={"right": "p(right name)", "other": "p(other name)", "n": "mentions"}),
           digits={"right": 4, "other": 4, "chance": 4})

# %%
best = recall["right"].idxmax()
say(f"At a repeated mention of a name, `{best}` gives the right name probability {recall.loc[best, 'right']:.4f}, "
    f"the other name {recall.loc[best, 'other']:.4f}, against chance {recall.loc[best, 'chance']:.4f} "
    f"({int(recall.loc[best, 'n'])} mentions in {len(stories)} training-style stories)"
    + (": no model recalls names from context even in the text it was trained on, so IOI is missing because "
       "the skill was not learned, not because the held-out templates are unfamiliar."
       if (recall["right"] < 3 * recall["chance"]).all() else ".")
    + " Validation loss fell by " + ", ".join(f"{v:.2f} ({n})" for n, v in recall["val. loss, last 400 steps"].items())
    + " nats over the last 400 steps: training stopped while the models were still improving; the budget "
      "(6.6 M tokens, at most 20 minutes a model on two CPU cores) is the limit.")

# %% [markdown]
# ## What this means
#
# An ability measured only on forms the model never read is evidence of a general mechanism
# rather than of a memorised template; a circuit found for it in a later chapter describes that
# mechanism. Where a target is missed, the number says by how much, and the chapters that study
# that ability say so before they analyse it. `python -m shared.zoo.suite_report` prints the same
# numbers from the command line.
