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
# # Three model families, one task: the same circuit?
#
# The previous chapter made the three families read the same prompts the same way. Here we ask:
# **for the sequence tasks each family actually does, do a GPT-2-style, a Llama-style and a
# NeoX-style model of the same size, trained on the same text, build their circuits from the same
# kinds of parts?** And, as a control for a behaviour none of them is expected to have: do any of
# them do IOI?
#
# The heads of different architectures cannot be matched by name (`a1.h2` of one model is not
# `a1.h2` of another; the Llama-style model even has four heads per layer where the others have
# three). We therefore compare circuits by **role**: each node is a successor head, a copy head,
# another head or an MLP, from its own model's OV scores, and two circuits are as similar as their
# multisets of roles.

# %% tags=["remove-cell"]
# On Colab, install the book's code and shipped models first (this cell does nothing elsewhere).
import sys
if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/circuits-book/circuits-book")  # noqa: F821

# %% tags=["parameters"]
model_names = ["suite-m-s0", "family-llama-m", "family-neox-m"]  # one model per family, same size and corpus
task_names = ["numerals", "number_words", "months"]
n_prompts = 24          # prompts per task (accuracy; node circuits keep those answered correctly)
threshold = 0.8         # node circuits keep this share of the logit difference
successor_cutoff = 0.5  # a head is a successor (copy) head if its mean successor (copy@top_k) score is at least this
top_k = 5               # copy@k of the OV scores
min_accuracy = 0.5      # a model does a task if its teacher-forced accuracy is at least this
min_logit_diff = 1.0        # IOI: mean logit difference IO - S at least this (nats)
min_share_positive = 0.8    # ... and IO preferred on at least this share of prompts
seed = 0

# %%
from collections import Counter

import pandas as pd

from shared.analysis.ov import ov_score_table
from shared.chapters import families as F
from shared.chapters import count, open_chapter, say, show_table
from shared.chapters import sequences as sc
from shared.chapters.ioi import ioi_check
from shared.chapters.tokenizers import load_models
from shared.plots import sequences as plots
from shared.tasks.abilities import ioi_scores
from shared.tasks.sequences import ordinal_lists

ch = open_chapter("families_compared", model_names=model_names, task_names=task_names, n_prompts=n_prompts,
                  threshold=threshold, successor_cutoff=successor_cutoff, top_k=top_k, min_accuracy=min_accuracy,
                  min_logit_diff=min_logit_diff, min_share_positive=min_share_positive, seed=seed)
models = load_models(model_names)

# %% [markdown]
# ## Which model does which task
#
# Accuracy is measured the book's way (`shared.tasks.tokens.score`): one BOS, the answer written
# after a space, every token of it scored by teacher forcing. The circuit methods of the sequence
# chapters compare the logit of the answer with that of the last member at one position, so they
# also need every member and answer to be a single token (`single token`); on the Llama-style
# tokenizer, which cuts numbers into digits, numerals are not. The prompts are the **bare**
# template (" November December January February" → " March") for all three models: in the sequence
# chapters' "X done in January." template the Llama-style tokenizer merges a member with the full
# stop after it (`January.`), so no member is a token of its own there.

# %%
accuracy = F.task_accuracy(models, task_names, n_prompts, seed, template="bare")
show_table(accuracy, percent=["accuracy"])
runs = [(m, t) for (m, t), r in accuracy.iterrows() if r["single token"] and r["accuracy"] >= min_accuracy]
skipped = [(m, t) for (m, t) in accuracy.index if (m, t) not in runs]

# %%
say(f"Of {len(accuracy)} model-task pairs, {len(runs)} are analysed (accuracy at least {min_accuracy:.0%} "
    f"and single-token members). " + " ".join(
        f"{m} on {t}: " + ("its members cannot be aligned with its tokens" if pd.isna(accuracy.loc[(m, t), "accuracy"])
                           else f"accuracy {accuracy.loc[(m, t), 'accuracy']:.0%}, but its members and answers are "
                           "several tokens, so the single-token circuit methods do not apply" if not accuracy.loc[(m, t), "single token"]
                           else f"accuracy {accuracy.loc[(m, t), 'accuracy']:.0%}, so it does not do the task")
        + "; skipped." for m, t in skipped))

# %% [markdown]
# ## Method: roles from OV scores, node circuits, role overlap
#
# For every model, the OV scores of the sequence chapters (`ov_score_table`, effective embedding
# through MLP 0) on the ordinal lists of the tasks it does; a head whose mean successor score is at
# least `successor_cutoff` is a **successor head**, else one whose mean copy@`top_k` score is at
# least that is a **copy head**, else **other head**. The node circuit of each analysed pair is
# the sequence chapters' (iterative pruning until `threshold` of the logit difference is kept,
# everything else mean-ablated; cached). Each circuit becomes a count of roles, and two circuits
# are compared by the Jaccard similarity of those multisets, Σ min / Σ max over roles.

# %%
roles, circuits = {}, {}
for m, model in models.items():
    done = [t for mm, t in runs if mm == m]
    if not done:
        continue
    ov = ov_score_table(model, ordinal_lists(model, done), k=top_k, mlp0=True)
    roles[m] = F.head_roles(ov, successor_cutoff)
    for t in done:
        circuits[(m, t)] = sc.node_circuit(model, t, n_prompts, threshold, seed, template="bare")
counts = {f"{m} · {t}": F.node_roles(c.nodes, roles[m]) for (m, t), c in circuits.items()}

# %% [markdown]
# ## Result

# %%
if circuits:
    show_table(F.role_table(counts).assign(**{"% kept": [c.percent for c in circuits.values()],
                                               "circuit": [", ".join(c.nodes) for c in circuits.values()]}),
               digits={"% kept": 1})
    overlap = F.role_overlap(counts)
    plots.table_matrix(overlap, "Overlap of node circuits by role (multiset Jaccard)", vmin=0, vmax=1,
                       label="Jaccard", name="role_overlap")

# %%
families = [m for m in models if any(mm == m for mm, _ in circuits)]
by_model = {m: sum((counts[k] for k in counts if k.startswith(m + " ·")), Counter()) for m in families}
common = F.roles_in_all(by_model)
if len(families) < 2:
    say(f"Only {len(families)} model does an analysable task, so there is nothing to compare across families.")
else:
    say("Heads per role: " + "; ".join(f"{m}: " + ", ".join(count(sum(r == k for r in roles[m].values()), k)
                                                          for k in F.ROLES[:2]) for m in families) + ". "
        + "Circuits: " + "; ".join(f"{k} {count(sum(c.values()), 'node')} (" + ", ".join(count(v, r) for r, v in c.items() if v)
                                  + f"), keeping {circuits[key].percent:.0f}%" for (k, c), key in zip(counts.items(), circuits))
        + ". " + (f"Roles in the circuits of every analysed family ({', '.join(families)}): **{', '.join(common)}**."
                  if common else f"**No role is in the circuits of every analysed family ({', '.join(families)}).**")
        + ("" if any(v for m in families for r, v in by_model[m].items() if r in F.ROLES[:2]) else
           f" No circuit contains a successor or copy head at the cutoff {successor_cutoff}: by OV scores, the "
           "heads these circuits use are not successor or copy heads."))
    keys = list(circuits)  # (model, task), in the order of `counts`
    pairs = [(f"{a[0]} · {a[1]}", f"{b[0]} · {b[1]}") for i, a in enumerate(keys) for b in keys[i + 1:]
             if a[1] == b[1] and a[0] != b[0]]
    if pairs:
        best, worst = max(pairs, key=lambda p: overlap.loc[p]), min(pairs, key=lambda p: overlap.loc[p])
        say(f"On the same task in two families, the circuits most alike by role are {best[0]} and {best[1]} "
            f"(Jaccard {overlap.loc[best]:.2f}), the least alike {worst[0]} and {worst[1]} ({overlap.loc[worst]:.2f}); "
            f"mean over the {len(pairs)} such pairs {sum(overlap.loc[p] for p in pairs) / len(pairs):.2f}.")

# %% [markdown]
# ## IOI: a behaviour check only
#
# The book's IOI behaviour check (`ioi_check` on the held-out templates): mean logit difference
# IO − S and the share of prompts preferring IO, against `min_logit_diff` and `min_share_positive`.

# %%
ioi = {m: ioi_check(ioi_scores(model, n_prompts=n_prompts, seed=seed), min_logit_diff, min_share_positive)
       for m, model in models.items()}
show_table(pd.DataFrame({m: {"mean logit diff": c.mean, "share positive": c.share_positive, "prompts": c.n_prompts,
                             "does IOI": "yes" if c.does_ioi else "no"} for m, c in ioi.items()}).T,
           digits={"mean logit diff": 2}, percent=["share positive"], integers=["prompts"])
say(" ".join(f"{m} {'does' if c.does_ioi else 'does not do'} IOI: mean logit difference {c.mean:.2f} "
             f"(threshold {min_logit_diff}), IO preferred on {c.share_positive:.0%} of {c.n_prompts} prompts "
             f"(threshold {min_share_positive:.0%})." for m, c in ioi.items())
    + ("" if any(c.does_ioi for c in ioi.values()) else " No IOI circuit is looked for."))

# %% [markdown]
# ## What it means
#
# Where a role appears in the circuits of all three families, the architectures (learned or
# rotary positions, LayerNorm or RMSNorm, GELU or SwiGLU, serial or parallel blocks) reach the
# same kind of solution from the same data; a role in one family only is a solution that depends on
# the architecture or the tokenizer. The comparison is coarse on purpose: roles are the only
# thing the three graphs share.
