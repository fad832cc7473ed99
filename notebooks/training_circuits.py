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
# # Circuits across training: once a task is learned, does its circuit stay the same?
#
# Tigges et al. (2024) followed the circuits of IOI, greater-than and other tasks through the
# checkpoints of Pythia models and found that, once a task is learned, the circuit's size and its
# edge set change gradually rather than being rebuilt. We ask the same of the suite: **at each
# checkpoint where a model does the task, which edges form a faithful circuit, how large is it, and
# how much of it is shared with the previous checkpoint's circuit and with the final one?**

# %% tags=["remove-cell"]
# On Colab, install the book's code and shipped models first (this cell does nothing elsewhere).
import sys
if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/circuits-book/circuits-book")  # noqa: F821

# %% tags=["parameters"]
model_names = ["suite-s-s0", "suite-m-s0", "suite-l-s0"]  # suite models or their Pythia counterparts
max_checkpoints = 2     # checkpoints per model spread over training (0: all) ...
late_steps = 3          # ... and also the last this many checkpoints
template = "dragged"    # greater-than template (as in greater_than_circuit)
n_prompts = 24          # prompts per task and checkpoint
seed = 0
min_prob_diff = 0.1     # greater-than is present: probability difference at least this ...
min_gain = 0.05         # ... and at least this much above the "01" control
min_logit_diff = 1.0    # IOI is present: mean logit difference IO − S at least this ...
min_share_positive = 0.8  # ... and this share of prompts preferring the IO
threshold = 0.8         # the circuit: smallest top-k EAP-IG edge set reaching this normalised faithfulness
ig_steps = 5            # EAP-IG interpolation steps

# %%
from shared.chapters import open_chapter, say, show_table
from shared.chapters import training_circuits as tc
from shared.plots import training as plots

ch = open_chapter("training_circuits", model_names=model_names, max_checkpoints=max_checkpoints,
                  late_steps=late_steps, template=template, n_prompts=n_prompts, seed=seed,
                  min_prob_diff=min_prob_diff, min_gain=min_gain, min_logit_diff=min_logit_diff,
                  min_share_positive=min_share_positive, threshold=threshold, ig_steps=ig_steps)
for name in model_names:
    print(f"Model: {name}, checkpoints at steps {tc.visit_steps(name, max_checkpoints, late_steps)}")

# %% [markdown]
# ## Method
#
# At every visited checkpoint, two verdicts with the criteria of the final-model chapters:
#
# * **greater-than** (`greater_than_circuit`): on `n_prompts` prompts of `template`, the probability
#   difference `p(year > YY) − p(year ≤ YY)` is at least `min_prob_diff` and exceeds the same score
#   on the "01" control prompts by at least `min_gain`;
# * **IOI** (`ioi_across_models`): on the held-out IOI templates, the mean logit difference IO − S
#   is at least `min_logit_diff` and at least `min_share_positive` of the prompts prefer the IO.
#
# Only where a task is present, EAP-IG (`ig_steps` steps) scores every edge with the corrupted run
# ("01" prompts; ABC prompts for IOI) as the reference, and the circuit is the smallest top-k set of
# edges whose normalised faithfulness, measured by patching every other edge to its corrupted
# value, reaches `threshold` (`shared.engine.circuit.smallest_faithful_circuit`). Each
# checkpoint's verdicts and circuits are stored in the results cache by model, step and parameters.

# %%
series = tc.circuit_series(model_names, max_checkpoints, late_steps, template=template, n_prompts=n_prompts,
                           seed=seed, min_prob_diff=min_prob_diff, min_gain=min_gain, min_logit_diff=min_logit_diff,
                           min_share_positive=min_share_positive, target=threshold, ig_steps=ig_steps)
verdicts = series.pivot_table(index=["model", "step"], columns="task", values="present", aggfunc="first")
show_table(verdicts.replace({True: "yes", False: "no"}).reset_index())

# %% [markdown]
# ## IOI

# %%
ioi = series[series["task"] == "IOI"]


def ioi_sentence(name: str, group) -> str:
    best = group.loc[group["logit_diff"].idxmax()]
    if group["present"].any():
        steps = group.loc[group["present"], "step"].tolist()
        return f"{name} does IOI at steps {steps}."
    return (f"{name} does not do IOI at any visited checkpoint: its largest mean logit difference is "
            f"{best['logit_diff']:.2f} nats (step {int(best['step'])}, {best['share_positive']:.0%} of prompts "
            f"preferring the IO), below the criterion of {min_logit_diff:g} nats and {min_share_positive:.0%}.")


say(" ".join(ioi_sentence(n, g) for n, g in ioi.groupby("model", sort=False))
    + ("" if ioi["present"].any() else " With no checkpoint that does the task, there is no IOI circuit to "
       "follow: an edge circuit found for a behaviour that is not there would describe noise, so none is drawn."))

# %% [markdown]
# ## Greater-than

# %%
gt = series[series["task"] == "greater-than"]
changes = tc.change_table(series, "greater-than")
absent = [n for n, g in gt.groupby("model", sort=False) if not g["present"].any()]
say((f"Greater-than is never present in {', '.join(absent)} (largest probability difference "
     + "; ".join(f"{n}: {g['prob_diff'].max():.2f}, gain over the control {g.loc[g['prob_diff'].idxmax(), 'gain']:.2f}"
                 for n, g in gt[gt["model"].isin(absent)].groupby("model", sort=False))
     + f"; the criterion asks for at least {min_prob_diff:g} and a gain of at least {min_gain:g}), so these "
     "models have no circuit to follow. "
     if absent else "")
    + ("" if len(changes) else "No model does greater-than at a visited checkpoint, so there is no circuit."))
if len(changes):
    show_table(changes, digits=2, integers=["step", "tokens", "edges", "nodes"])

# %%
def gt_sentence(name: str, part) -> str:
    first, last = part.iloc[0], part.iloc[-1]
    prev = part["Jaccard previous"].dropna()
    text = (f"{name} does greater-than from step {int(first['step'])} ({int(first['tokens']):,} tokens) among the "
            f"visited checkpoints; its circuit has {int(first['edges'])} edges there and {int(last['edges'])} at "
            f"step {int(last['step'])} (faithfulness {part['faithfulness'].min():.2f} to "
            f"{part['faithfulness'].max():.2f}).")
    if len(prev):
        low, high = f"{prev.min():.0%}", f"{prev.max():.0%}"
        share = low if low == high else f"{low} to {high}"
        text += (f" Consecutive circuits share {share} of their edges (Jaccard), "
                 f"and the first one shares {part['Jaccard final'].iloc[0]:.0%} with the last.")
    else:
        text += " It is present at one visited checkpoint only, so there is nothing to compare it with."
    return text


if len(changes):
    say(" ".join(gt_sentence(n, p) for n, p in changes.groupby("model", sort=False)))

# %% [markdown]
# ## The picture
#
# Per model over tokens seen: the gain of the greater-than probability difference over the "01"
# control (dashed: its criterion) and the number of edges in the circuit (only at checkpoints that
# do the task; their overlaps are in the table above).

# %%
wide = gt.assign(**{"circuit edges": gt["k"] if "k" in gt else float("nan")})
plots.ability_curves(wide, {"gain": "gain over the '01' control", "circuit edges": "edges in the circuit"},
                     title="Greater-than and its circuit over training", reference={"gain": min_gain},
                     name="greater_than_circuit")

# %% [markdown]
# ## What it means
#
# Where the suite does greater-than, the effect is small next to Hanna et al.'s (2023) 82%
# probability difference for GPT-2 small (see the numbers above), so the circuits follow a weak
# behaviour over few checkpoints. A Jaccard overlap below 1 between consecutive circuits mixes real
# change with the instability of a top-k cut on close EAP-IG scores; the entering and leaving nodes
# in the table show which heads and MLPs are involved. IOI is never learned by the suite, so its
# side of Tigges et al.'s comparison cannot be tested here.
