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
# # What we found: circuits across training in the suite and in Pythia
#
# Tigges et al. (2024), "LLM Circuit Analyses Are Consistent Across Training and Scale", followed
# Pythia models from 70M to 2.8B parameters through training and reported three things: (1) abilities
# such as IOI and greater-than, and the component heads behind them, appear at similar numbers of
# training tokens across model sizes; (2) the roles of components persist while the specific heads
# that fill them can change; (3) once the IOI algorithm is learned it stays consistent, even as the
# circuit's heads and edges change. This page puts the suite's numbers from the four previous
# chapters next to each claim. It computes nothing new: it reads those chapters' cached series, with
# the parameters they are registered with.

# %% tags=["remove-cell"]
# On Colab, install the book's code and shipped models first (this cell does nothing elsewhere).
import sys
if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/circuits-book/circuits-book")  # noqa: F821

# %% tags=["parameters"]
profile = "local"   # the parameters of the training chapters to read back: local, paper or smoke

# %%
from shared.chapters import open_chapter, say, show_table
from shared.chapters import training as tr
from shared.chapters import training_findings as tf
from shared.plots import training as plots

ch = open_chapter("training_findings", profile=profile)
performance, perf_params = tf.performance(profile)
components, comp_params = tf.components(profile)
circuits, circ_params = tf.circuits(profile)
consistency, cons_params = tf.consistency(profile)
for label, p in (("performance", perf_params), ("components", comp_params), ("circuits", circ_params),
                 ("consistency", cons_params)):
    print(f"Model: {', '.join(p['model_names'])} (read from training_{label})")

# %% [markdown]
# ## 1. Do abilities appear at similar token counts across sizes?

# %%
tables = tf.emergence_tables(performance, perf_params)


def ability_line(metric: str) -> str:
    table = tables[metric]
    label = tr.METRICS[metric].split(" (")[0]
    have = table[table["present"]]
    if have.empty:
        return f"* **{label}**: no model has it at its last checkpoint, so this claim cannot be tested on it."
    factor = tr.spread_factor(table)
    where = ", ".join(f"{m} {int(r.tokens):,}" for m, r in have.iterrows())
    if factor is None or have["size"].nunique() < 2:
        return f"* **{label}**: present in {where} tokens only — fewer than two sizes, nothing to compare."
    similar = factor <= perf_params["similar_factor"]
    return (f"* **{label}**: appears at {where} tokens; the sizes differ by a factor of {factor:.1f}, "
            + ("similar" if similar else "not similar") + f" by the criterion (factor {perf_params['similar_factor']:g}).")


say("\n".join(ability_line(m) for m in tables))

# %%
plots.emergence_chart(tables, {m: tr.METRICS[m].split(" (")[0] for m in tables},
                      title="When each ability appears (first checkpoint with it)", name="emergence")

# %% [markdown]
# ## 2. Do component roles persist while their heads change?

# %%
summary = tr.role_summary(components, comp_params["role_threshold"])
appear, moved = tf.role_moves(summary)
first = summary[summary["tokens"].notna()].groupby(level="role")["tokens"].agg(["min", "max"])
show_table(first.rename(columns={"min": "earliest tokens", "max": "latest tokens"}),
           integers=["earliest tokens", "latest tokens"])
say(f"Of the {appear} model–role pairs where a head reaches {comp_params['role_threshold']:g}, {moved} see the best "
    f"head change after the role appears (`training_components`). "
    + ("In the suite, as in Pythia, a role can pass from one head to another." if moved else
       "In the suite each role stays with one head once it appears, unlike the head changes Tigges et al. report.")
    if appear else "No role reaches the threshold in any model, so this claim cannot be tested.")

# %% [markdown]
# ## 3. Does a learned circuit stay consistent?

# %%
gt_overlap = tf.consecutive_overlap(circuits, "greater-than")
gt_present = circuits[(circuits["task"] == "greater-than") & circuits["present"]]
ioi_learned = bool(consistency["present"].any())
say(("Greater-than: " + (f"present at {len(gt_present)} visited checkpoints of "
                        f"{', '.join(gt_present['model'].unique())}; consecutive circuits share "
                        f"{' to '.join(dict.fromkeys(f'{v:.0%}' for v in gt_overlap))} of their edges (`training_circuits`), so the "
                        "circuit changes gradually rather than being rebuilt, in line with Tigges et al."
                        if gt_overlap else
                        f"present at {len(gt_present)} visited checkpoints, too few to compare consecutive circuits.")
     if len(gt_present) else "Greater-than is present at no visited checkpoint, so no circuit can be followed.")
    + "\n\n"
    + ("IOI: " + (f"learned by {', '.join(consistency.loc[consistency['present'], 'model'].unique())}; see "
                  "`training_consistency` for the link test per checkpoint." if ioi_learned else
                  f"no suite model does IOI at any visited checkpoint (largest mean logit difference "
                  f"{consistency['logit_diff'].max():+.2f} nats against the criterion "
                  f"{cons_params['min_logit_diff']:g}), so the claim that the IOI algorithm stays once learned "
                  "**cannot be tested on the suite**; only the planted controls of `training_consistency` show "
                  "that the test itself works.")))

# %% [markdown]
# ## Caveats
#
# The suite's models are small (2–4 layers) and trained for 1,600 steps on a synthetic corpus; their
# checkpoints are coarse, so a time of appearance is known only to within one checkpoint interval.
# Pythia's numbers are Tigges et al.'s (2024); the `paper` profile of the training chapters measures
# Pythia checkpoints directly where they can be downloaded.
