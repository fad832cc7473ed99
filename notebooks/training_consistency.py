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
# # Is the IOI algorithm consistent over training?
#
# Tigges et al. (2024) found that once Pythia models learn IOI, they keep using the algorithm of
# Wang et al. (2022) — name movers fed by S-inhibition heads fed by induction and duplicate-token
# heads — at every later checkpoint, even while the particular heads in each class change. We ask
# the same of the suite: **at every checkpoint after a model learns IOI, does the IOI algorithm
# link test of `ioi_across_models` pass?**

# %% tags=["remove-cell"]
# On Colab, install the book's code and shipped models first (this cell does nothing elsewhere).
import sys
if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/circuits-book/circuits-book")  # noqa: F821

# %% tags=["parameters"]
model_names = ["suite-s-s0", "suite-s-s1", "suite-m-s0", "suite-m-s1", "suite-l-s0"]  # suite models or Pythia
controls = ["planted", "planted-moved", "planted-cut"]  # hand-set IOI models where the answer is known
max_checkpoints = 4     # checkpoints per model (0: all; otherwise first, last and evenly spread ones)
n_prompts = 10          # IOI prompts per template
seed = 0
min_logit_diff = 1.0    # IOI is present: mean logit difference IO − S at least this ...
min_share_positive = 0.8  # ... and this share of prompts preferring the IO
min_effect = 0.1        # head classes and links: the thresholds of ioi_across_models
min_attention = 0.2
min_copy = 0.0
min_upstream_effect = 0.05
min_rise = 0.1

# %%
from shared.analysis.ioi import classify_ioi_heads
from shared.analysis.ioi_algorithm import ioi_algorithm
from shared.chapters import ioi_across as ia
from shared.chapters import open_chapter, say, show_table
from shared.chapters import training as tr
from shared.chapters import training_consistency as tcons
from shared.plots import ioi as plots

thresholds = dict(min_effect=min_effect, min_attention=min_attention, min_copy=min_copy,
                  min_upstream_effect=min_upstream_effect, min_rise=min_rise)
ch = open_chapter("training_consistency", model_names=model_names, controls=controls, max_checkpoints=max_checkpoints,
                  n_prompts=n_prompts, seed=seed, min_logit_diff=min_logit_diff,
                  min_share_positive=min_share_positive, **thresholds)
subjects = ia.load_subjects([], controls)
for name in model_names:
    print(f"Model: {name}, checkpoints at steps {tr.series_steps(name, max_checkpoints)}")

# %% [markdown]
# ## Method
#
# At each checkpoint the behaviour is checked first, with the criterion of `ioi_across_models`
# (mean logit difference IO − S at least `min_logit_diff` on the held-out IOI templates, and at least
# `min_share_positive` of the prompts preferring the IO). Only where it holds are the head classes
# searched (`classify_ioi_heads`) and the algorithm's links path-patched (`ioi_algorithm`): a model
# uses the algorithm when every required link lowers the logit difference by at least its threshold.
# Each checkpoint's result is stored in the results cache by model, step and parameters.

# %%
series = tcons.algorithm_series(model_names, max_checkpoints, n_prompts=n_prompts, seed=seed,
                                min_logit_diff=min_logit_diff, min_share_positive=min_share_positive, **thresholds)
show_table(series[["model", "step", "tokens", "logit_diff", "share_positive", "present"]]
           .replace({"present": {True: "yes", False: "no"}}), digits=2, integers=["step", "tokens"],
           percent=["share_positive"])

# %%
def model_sentence(name: str, group) -> str:
    if not group["present"].any():
        best = group.loc[group["logit_diff"].idxmax()]
        return (f"**{name}** never does IOI at the visited checkpoints (largest mean logit difference "
                f"{best['logit_diff']:+.2f} nats at step {int(best['step'])}, IO preferred on "
                f"{best['share_positive']:.0%} of prompts), so there is no learned algorithm to follow.")
    learned = group[group["present"]]
    uses = learned["uses_algorithm"].astype(bool)
    return (f"**{name}** does IOI from step {int(learned['step'].iloc[0])}; the link test passes at "
            f"{int(uses.sum())} of its {len(learned)} checkpoints that do IOI"
            + ("" if uses.all() else f" (fails at steps {learned.loc[~uses, 'step'].tolist()})") + ".")


say("\n\n".join(model_sentence(n, g) for n, g in series.groupby("model", sort=False))
    + ("\n\nNo suite model learns IOI, so Tigges et al.'s claim that the algorithm stays once learned cannot be "
       "tested on the suite; the controls below show what the test reports where the answer is known."
       if not series["present"].any() else ""))

# %% [markdown]
# ## Controls: the link test where the answer is known
#
# The planted models of `shared.zoo.planted_ioi` (labelled as controls) are hand-set: `planted` and
# `planted-moved` implement the IOI algorithm (the second with every class in other heads), while in
# `planted-cut` the S-inhibition heads do not read the induction heads, so a required link is cut.
# Each is checked for the behaviour, its classes are searched, and the link test is run on the
# classes found — the same steps as at a suite checkpoint.

# %%
checks = {n: s.behaviour(n_prompts, seed, min_logit_diff, min_share_positive) for n, s in subjects.items()}
data = {n: subjects[n].prompts(n_prompts, seed) for n, c in checks.items() if c.does_ioi}
found = {n: classify_ioi_heads(subjects[n].bridge, *data[n], **thresholds).as_dict() for n in data}
results = {n: ioi_algorithm(subjects[n].bridge, *data[n], found[n], min_effect, min_upstream_effect) for n in data}
if results:
    links = ia.algorithm_table(ia.labelled(results, subjects))
    show_table(links, digits=2)
say("; ".join(f"{subjects[n].label}: " + ("does not do IOI" if not checks[n].does_ioi else
                                          "uses the IOI algorithm" if results[n].uses_algorithm else
                                          "does IOI without the algorithm (missing: " + ", ".join(results[n].missing)
                                          + ")") for n in subjects) + "." if subjects else "No controls were asked for.")

# %%
if results:
    plots.link_effects(links.drop(columns="uses the IOI algorithm"),
                       title="Controls: path-patching effect of each IOI link", name="control_links")

# %% [markdown]
# ## What it means
#
# The link test separates the controls that use the algorithm from the one whose chain is cut, so a
# checkpoint that did IOI would get a meaningful answer. A checkpoint that fails the behaviour check
# (see the sentences above) is stopped before any head is labelled, since labels in a model that
# does not do the task would describe noise. Testing the consistency claim needs models that learn IOI (the `paper`
# profile's Pythia checkpoints, where they can be downloaded).
