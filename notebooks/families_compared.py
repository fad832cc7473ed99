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
min_faithfulness = 0.8  # edge circuits: smallest top-k EAP-IG edge set with normalised faithfulness >= this
ig_steps = 5            # integration steps of EAP-IG
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
                  min_logit_diff=min_logit_diff, min_share_positive=min_share_positive,
                  min_faithfulness=min_faithfulness, ig_steps=ig_steps, seed=seed)
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
# ## Edge circuits: EAP-IG in each family
#
# Node circuits say which heads and MLPs matter, not how they talk to each other. For each analysed
# pair, EAP-IG (`eap_ig`, `ig_steps` integration steps) scores every edge of the model's own graph
# on the node circuit's prompts; the edge circuit is the smallest set of top-scoring edges whose
# normalised faithfulness (F(C) − F(∅)) / (F(M) − F(∅)) reaches `min_faithfulness`
# (`smallest_faithful_circuit`), measured once more by patching. Outside the circuit every node's
# output is its mean per position over the prompts, the node circuits' ablation.
#
# The graphs differ: the Llama-style model has four heads per layer, and the NeoX-style block runs
# attention and MLP in parallel on the same residual stream, so its heads feed no MLP of their own
# layer and it has fewer edges. Edge circuits are therefore compared through their heads and MLPs:
# by role, as the node circuits above, and by node name, which only says that two nodes sit at the
# same place in their graphs.

# %%
if circuits:
    edges = F.edge_circuits(models, list(circuits), n_prompts, seed, min_faithfulness, ig_steps)
    edge_table = F.edge_circuit_table(edges, roles, {k: c.nodes for k, c in circuits.items()})
    show_table(edge_table, digits={"faithfulness": 2, "Jaccard with node circuit": 2}, percent=["share of edges"])
    plots.edge_circuit_sizes(pd.DataFrame([{"model": m, "task": t, "edges kept": c.circuit.info["k"],
                                            "edges in model": c.n_edges, "faithfulness": c.faith.normalized}
                                           for (m, t), c in edges.items()]), min_faithfulness,
                             title="EAP-IG edge circuits per family and task", name="edge_circuits")

# %% [markdown]
# The roles of the edge circuits' heads and MLPs, and every pair of circuits of the same task in
# two families: role Jaccard of their node circuits (as above), of their edge circuits, and the
# Jaccard of the edge circuits' node names.

# %%
if circuits:
    edge_nodes = {f"{m} · {t}": F.components(c.circuit.nodes) for (m, t), c in edges.items()}
    edge_counts = {f"{m} · {t}": F.node_roles(edge_nodes[f"{m} · {t}"], roles[m]) for m, t in edges}
    show_table(F.role_table(edge_counts))
    same_task = [(f"{a[0]} · {a[1]}", f"{b[0]} · {b[1]}") for i, a in enumerate(edges) for b in list(edges)[i + 1:]
                 if a[1] == b[1] and a[0] != b[0]]
    pair_scores = F.pair_table(same_task, counts, edge_counts, edge_nodes)
    if same_task:
        show_table(pair_scores, digits=2, index=False)

# %%
if circuits:
    def described(key, row):
        roles_used = ", ".join(count(edge_counts[key][r], r) for r in F.ROLES if edge_counts[key][r]) or "none"
        missed = "" if row["target reached"] == "yes" else " (target never reached: every edge kept)"
        return (f"{key} keeps {count(row['edges kept'], 'edge')} of {row['edges in model']} "
                f"({row['share of edges']:.0%}), faithfulness {row['faithfulness']:.2f}{missed}, nodes: {roles_used}")

    same_nodes = edge_table["Jaccard with node circuit"]
    say(f"Edge circuits at the target {min_faithfulness:g}: "
        + "; ".join(described(k, r) for k, r in edge_table.to_dict("index").items())
        + f". The heads and MLPs of an edge circuit overlap those of the node circuit of the same model and task "
        f"by a Jaccard of {same_nodes.min():.2f} to {same_nodes.max():.2f} (mean {same_nodes.mean():.2f}).")
    added = {(m, t): [n for n in edge_nodes[f"{m} · {t}"] if roles[m].get(n) in F.ROLES[:2]
                      and n not in circuits[(m, t)].nodes] for m, t in edges}
    if any(added.values()):
        say("Successor or copy heads that the edge circuit uses but the node circuit of the same pair leaves out: "
            + "; ".join(f"{m} · {t}: {F.labelled_heads(v, roles[m])}" for (m, t), v in added.items() if v) + ".")
    edge_by_model = {m: sum((c for k, c in edge_counts.items() if k.startswith(m + " ·")), Counter())
                     for m in families}
    edge_common = F.roles_in_all(edge_by_model)
    if len(families) >= 2:
        say((f"Roles in the edge circuits of every analysed family: **{', '.join(edge_common)}**"
             if edge_common else "**No role is in the edge circuits of every analysed family**")
            + f" (node circuits: {', '.join(common) or 'none'}). "
            + ("" if not same_task else
               f"Over the {count(len(same_task), 'pair')} of circuits of one task in two families, the role Jaccard "
               f"averages {pair_scores['edge circuits, roles'].mean():.2f} for the edge circuits against "
               f"{pair_scores['node circuits, roles'].mean():.2f} for the node circuits, and the edge circuits' node "
               f"names overlap by {pair_scores['edge circuits, node names'].mean():.2f}.")
            + ("" if any(c[r] for c in edge_counts.values() for r in F.ROLES[:2]) else
               f" No edge circuit contains a successor or copy head at the cutoff {successor_cutoff}."))

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
# thing the three graphs share. The edge circuits ask the same question with a second method, on
# edges rather than nodes: a role shared by the node circuits but not by the edge circuits (or the
# reverse) depends on how the circuit was found, not only on the model.
