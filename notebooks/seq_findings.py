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
# # Sequence continuation: what we found
#
# This page gathers the results of the sequence-continuation chapters for the model the book was
# built with, and states them in a few sentences. **Every number and head name below is computed
# when this page runs**: rebuild with another `model_name` and the summary changes with it.

# %% tags=["remove-cell"]
# On Colab, install the book's code and shipped models first (this cell does nothing elsewhere).
import sys
if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/circuits-book/circuits-book")  # noqa: F821

# %% tags=["parameters"]
model_name = "suite-l-s0"  # a local model (see the models page) or a pretrained name such as "gpt2-small"
compare_with = []  # models to summarise beside this one, e.g. ["seq-lm"], the book's earlier model (trained on first use, ~8 min)
task_names = ["numerals", "number_words", "months"]
n_prompts = 48          # prompts per task (only prompts the model answers correctly are kept)
threshold = 0.8         # node circuits keep this share of the logit difference
seed = 0

# %%
import pandas as pd

from shared.analysis.lens import logit_lens, stage_phrase
from shared.analysis.ov import ov_score_table
from shared.analysis.roles import head_role_table
from shared.chapters import count, open_chapter, say, show_table
from shared.chapters import sequences as sc
from shared.plots import sequences as plots
from shared.tasks import abilities
from shared.tasks.sequences import ordinal_lists
from shared.zoo.registry import load_model

ch = open_chapter("seq_findings", model_name=model_name, compare_with=compare_with, task_names=task_names,
                  n_prompts=n_prompts, threshold=threshold, seed=seed)
model = ch.model

# %% [markdown]
# ## Gathering the results
#
# The node circuits come from the node-circuit chapter's cache (recomputed if absent); the
# transfer table, OV scores, logit lens and attention are cheap and recomputed here with the same
# parameters as in their chapters.

# %%
data = sc.load_tasks(model, task_names, n_prompts, seed)
circuits = sc.node_circuits(model, task_names, n_prompts, threshold, seed)
sets = {t: c.nodes for t, c in circuits.items()}
order = sc.node_order(model)
common = sc.common_nodes(sets, order)
union = [n for n in order if any(n in s for s in sets.values())]
rows = dict(sets)
if len(task_names) > 1:
    rows["union"] = union
transfer = sc.transfer_table(model, data, rows, progress=False)
ordinals = ordinal_lists(model, task_names)
ov = ov_score_table(model, ordinals)
lens = {t: logit_lens(model, d.tokens, {"answer": d.batch.correct, "last member": d.batch.incorrect}, pos=d.end_pos)
        for t, d in data.items()}
heads_used = [n for n in union if n.startswith("a")]
attn = {t: head_role_table(model, d.tokens, d.member_pos, d.end_pos, heads_used)
        for t, d in data.items()} if heads_used else {}

# %%
sc.show_circuit_table(circuits)
plots.circuit_membership(sets, order, title=f"{model_name}: the nodes of each task's circuit", name="membership")

# %%
roles = pd.DataFrame(index=union)
roles.index.name = "node"
for t in task_names:
    roles[f"in {t} circuit"] = ["yes" if n in sets[t] else "" for n in union]
heads_in = [n for n in union if n in ov.index]
roles.loc[heads_in, "OV successor score"] = ov.loc[heads_in, "successor_mean"].round(2)
roles.loc[heads_in, "OV copy score"] = ov.loc[heads_in, "copy_mean"].round(2)
if attn:
    last = f"end→member {next(iter(data.values())).member_pos.shape[1]}"
    roles.loc[heads_used, "attention end→last member"] = pd.concat([a[last] for a in attn.values()], axis=1).mean(axis=1).round(2)
show_table(roles)

# %% [markdown]
# ## Summary

# %%
n_total = len(order)
best = ov["successor_mean"].idxmax()
in_circuits = [t for t in task_names if best in sets[t]]
say(f"**Circuits.** On `{model_name}`, iterative pruning keeps at least {threshold:.0%} of the logit difference with "
    + ", ".join(f"{c.size} of {n_total} nodes for {t} ({c.percent:.0f}%, {c.heldout_percent:.0f}% on fresh prompts)"
                for t, c in circuits.items()) + ".")
say(f"**Shared components.** " + (
    f"{count(len(common), 'node')} {'is' if len(common) == 1 else 'are'} in every task's circuit: {', '.join(f'`{n}`' for n in common)}; the union has {len(union)}."
    if common else f"No node is in every task's circuit; the union has {len(union)}.")
    + (" Mean pairwise overlap (Jaccard) is "
       f"{sum(sc.jaccard(sets[a], sets[b]) for i, a in enumerate(task_names) for b in task_names[i + 1:]) / max(1, len(task_names) * (len(task_names) - 1) // 2):.2f}."
       if len(task_names) > 1 else ""))
if len(task_names) > 1:
    off = [transfer.loc[a, b] for a in task_names for b in task_names if a != b]
    say(f"**Transfer.** A task's circuit keeps on average {sum(off) / len(off):.0f}% of the logit difference on the other "
        f"tasks (range {min(off):.0f}–{max(off):.0f}%), against "
        f"{sum(transfer.loc[t, t] for t in task_names) / len(task_names):.0f}% on its own; the union keeps "
        + ", ".join(f"{transfer.loc['union', t]:.0f}% on {t}" for t in task_names) + ".")
say(f"**Successor head.** The head whose OV circuit best maps members to their successors is `{best}` (mean successor "
    f"score {ov.loc[best, 'successor_mean']:.2f} over {', '.join(ordinals)}, where chance is "
    f"{sum(1 / len(o.ids) for o in ordinals.values()) / len(ordinals):.2f}); it is "
    + (f"in the circuit of {', '.join(in_circuits)}" if in_circuits else "in none of the circuits")
    + (f" and puts {roles.loc[best, 'attention end→last member']:.2f} of the end position's attention on the last member."
       if attn and best in heads_used else "."))
switches = {t: r.switch_stage() for t, r in lens.items()}
say("**Logit lens.** Decoding the residual stream at the last position, the prediction switches to the answer "
    + ", ".join(f"{stage_phrase(s)} for {t}" for t, s in switches.items()) + ".")

# %% [markdown]
# ## What changed with the model
#
# The sequence chapters first ran on `seq-lm`, a model trained on text whose sequence clauses
# mostly shared one shape. They now run on the model suite, whose training text never contains
# the book's among-words template nor nine other surface forms of the same tasks. For each model
# in `compare_with` (none by default: `seq-lm` is no longer shipped, and passing it trains it first) the
# same measurements are repeated here: accuracy on the book's templates and
# on the held-out forms (as in the data chapter), node-circuit size per task and the best OV
# successor head.

# %%
def model_summary(name: str, bridge) -> dict:
    forms = abilities.form_table(abilities.sequence_accuracy(bridge, n_prompts=20, seed=seed + 2000))
    book = forms.index.isin(["bare", "among_words"])
    nodes = sc.node_circuits(bridge, task_names, n_prompts, threshold, seed, progress=False) if name != model_name \
        else circuits
    scores = ov if name == model_name else ov_score_table(bridge, ordinal_lists(bridge, task_names))
    row = {"among-words": forms.loc["among_words", "mean"], "bare list": forms.loc["bare", "mean"],
           "other forms (held out)": forms.loc[~book, "mean"].mean()}
    row.update({f"nodes, {t}": f"{c.size} of {c.n_components}" for t, c in nodes.items()})
    row["best successor head"] = f"{scores.successor_mean.idxmax()} ({scores.successor_mean.max():.2f})"
    return row


changes = pd.DataFrame({n: model_summary(n, b) for n, b in [(model_name, model)]
                        + [(n, load_model(n)) for n in compare_with]}).T
show_table(changes, percent=["among-words", "bare list", "other forms (held out)"])
if compare_with:
    old, new = changes.loc[compare_with[0]], changes.loc[model_name]
    say(f"**What changed.** `{compare_with[0]}` answered {old['among-words']:.0%} of among-words prompts but only "
        f"{old['other forms (held out)']:.0%} in the other surface forms; `{model_name}` answers "
        f"{new['among-words']:.0%} and {new['other forms (held out)']:.0%}. Its circuits keep "
        + ", ".join(f"{new['nodes, ' + t]} nodes for {t}" for t in task_names)
        + f" (against {', '.join(old['nodes, ' + t] for t in task_names)}), and its best successor head is "
          f"{new['best successor head']} (against {old['best successor head']}).")

# %% [markdown]
# ## Reading the summary
#
# Shared nodes plus good transfer are evidence of one sequence-continuation mechanism; a successor
# head inside the shared nodes, attending from the end to the last member, is the clearest single
# piece of that mechanism. Everything here is measured with mean ablation on prompts the model gets
# right, at one threshold and one seed; the chapters show each measurement in detail.
