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
# # Components across training: when does each kind of head appear, and does it stay in one head?
#
# Circuits are built from heads with recognisable jobs: previous-token, duplicate-token and
# induction heads, successor heads, name movers, copy-suppression and S-inhibition heads. Tigges et
# al. (2024) found in Pythia that these components emerge at similar token counts across sizes, and
# that the heads filling a role can change over training while the role itself persists. We ask, for
# every checkpoint of the suite: **when does each role first have a head that plays it, does the role
# move from one head to another, and how many heads play it?**

# %% tags=["remove-cell"]
# On Colab, install the book's code and shipped models first (this cell does nothing elsewhere).
import sys
if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/circuits-book/circuits-book")  # noqa: F821

# %% tags=["parameters"]
model_names = ["suite-s-s0", "suite-s-s1", "suite-m-s0", "suite-m-s1", "suite-l-s0"]  # suite models or Pythia
max_checkpoints = 0     # checkpoints per model (0: all; otherwise first, last and evenly spread ones)
n_prompts = 4           # IOI prompts per held-out template (attention of the IOI roles)
seq_len = 25            # repeated random tokens: length of each copy ...
n_repeated = 16         # ... and number of sequences
seed = 0
role_threshold = 0.4    # a head plays a role when its score is at least this

# %%
from shared.analysis.components import ROLES
from shared.chapters import count, open_chapter, say, show_table
from shared.chapters import training as tr
from shared.plots import training as plots

ch = open_chapter("training_components", model_names=model_names, max_checkpoints=max_checkpoints,
                  n_prompts=n_prompts, seq_len=seq_len, n_repeated=n_repeated, seed=seed,
                  role_threshold=role_threshold)
tr.check_series_models(model_names)
for name in model_names:
    print(f"Model: {name}, checkpoints at steps {tr.series_steps(name, max_checkpoints)}")

# %% [markdown]
# ## Method
#
# Every head of every checkpoint gets one score per role, about 1 for a head that does the job and
# about 0 for one that does not (`shared.analysis.components`, with the measurements of the
# final-model chapters):
#
# * **previous-token, duplicate-token, induction**: attention along the diagonals of repeated random
#   tokens (`n_repeated` sequences, each `seq_len` tokens twice);
# * **successor**: the OV successor score of the sequence chapters, averaged over the ordinal lists;
# * **name mover**: attention END → IO on the held-out IOI prompts × the share of names the head's OV
#   circuit copies (its own name gets the highest logit among the names);
# * **copy suppression**: attention END → any name × the share of names its OV circuit suppresses;
# * **S-inhibition**: attention END → S2 minus attention END → IO (at least 0).
#
# The IOI-chapter classification also asks for a path-patching effect on the logit difference; that
# is left out here because the suite does not do IOI (see `training_performance`), so the effect has
# no behaviour to measure. The IOI role scores therefore say only that a head *looks* like the role.
# Each checkpoint's scores are stored in the results cache, keyed by model, step and parameters.

# %%
components = tr.component_series(model_names, max_checkpoints, n_prompts=n_prompts, seq_len=seq_len,
                                 n_repeated=n_repeated, seed=seed)
counts = tr.heads_above(components, role_threshold)
summary = tr.role_summary(components, role_threshold)
show_table(summary, digits=2, integers=["step", "tokens", "best heads", "heads above"])

# %%
def role_sentence(role: str) -> str:
    part = summary.xs(role, level="role")
    have = part[part["step"].notna()]
    if have.empty:
        top = part["best score"].idxmax()
        return (f"**{role}**: no head of any model reaches {role_threshold:g} at any checkpoint (best final score "
                f"{part.loc[top, 'best score']:.2f}, head `{part.loc[top, 'best head']}` of {top}), so the role is "
                "absent.")
    where = "; ".join(f"{m} from step {int(r.step)} ({int(r.tokens):,} tokens), best head `{r['best head']}` "
                      f"at the end ({r['best score']:.2f}), {r['best heads']} different best head"
                      f"{'s' if r['best heads'] != 1 else ''} since, {r['heads above']} head"
                      f"{'s' if r['heads above'] != 1 else ''} above the threshold at the end"
                      for m, r in have.iterrows())
    absent = [m for m in part.index if m not in have.index]
    moved = [m for m, r in have.iterrows() if r["best heads"] > 1]
    return (f"**{role}**: {where}" + (f". Absent in {', '.join(absent)}" if absent else "") + ". "
            + (f"The role moves between heads in {', '.join(moved)}." if moved else
               "In every model that has it, one head holds the role from its first appearance on."))


say("\n\n".join(role_sentence(role) for role in ROLES))

# %% [markdown]
# ## Each role, head by head
#
# One figure per role: for each model its heads (rows) over the checkpoints (columns), coloured by
# the score, and in the last panel the number of heads at or above `role_threshold` per checkpoint.

# %%
plots.role_map(components, counts, "previous-token", role_threshold, title="Previous-token heads over training",
               name="previous_token")

# %%
plots.role_map(components, counts, "duplicate-token", role_threshold, title="Duplicate-token heads over training",
               name="duplicate_token")

# %%
plots.role_map(components, counts, "induction", role_threshold, title="Induction heads over training",
               name="induction")

# %%
plots.role_map(components, counts, "successor", role_threshold, title="Successor heads over training",
               name="successor")

# %%
plots.role_map(components, counts, "name mover", role_threshold, title="Name-mover-like heads over training",
               name="name_mover")

# %%
plots.role_map(components, counts, "copy suppression", role_threshold,
               title="Copy-suppression-like heads over training", name="copy_suppression")

# %%
plots.role_map(components, counts, "S-inhibition", role_threshold, title="S-inhibition-like heads over training",
               name="s_inhibition")

# %%
first = summary[summary["tokens"].notna()].groupby(level="role")["tokens"].agg(["min", "max", "count"])
first = first.reindex([r for r in ROLES if r in first.index])
show_table(first.rename(columns={"min": "earliest tokens", "max": "latest tokens", "count": "models with it"}),
           integers=["earliest tokens", "latest tokens", "models with it"])
say("Across the models that have each role, the first checkpoint with a head above the threshold spans "
    + "; ".join(f"{role}: {int(r['min']):,} to {int(r['max']):,} tokens ({count(int(r['count']), 'model')})"
                for role, r in first.iterrows()) + "." if len(first) else
    "No role reaches the threshold in any model, so there is no time of emergence to compare.")

# %% [markdown]
# ## What it means
#
# A role's first checkpoint is known only to within one checkpoint interval. A "best head" that
# changes can mean that the role moved, or that two heads share it with scores that cross; the
# figures show which. The IOI-like roles are read from attention and OV weights alone, on a model
# family that does not do IOI, so they describe heads that could serve the IOI circuit, not heads
# shown to do so (for that, the path-patching classification of `ioi_circuit`).
