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
# # Sequence continuation: the prompts and the model
#
# Given "Van done in 1. Hat done in 2. Ring done in 3. Desk done in 4. Sun done in", a language
# model should say " 5". Before looking for the circuit that does this, we need prompts we can
# trust and a model that solves them. This chapter asks: **are the prompts exactly what their
# fields say, how do they tokenize, and which sequence tasks does the model continue correctly?**

# %% tags=["remove-cell"]
# On Colab, install the book's code and shipped models first (this cell does nothing elsewhere).
import sys
if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/circuits-book/circuits-book")  # noqa: F821

# %% tags=["parameters"]
model_name = "suite-l-s0"
compare_with = []  # other models whose held-out forms are scored beside this one (e.g. ["seq-lm"]: trained on first use)
task_names = ["numerals", "number_words", "months", "days", "letters", "plus2", "plus3", "decreasing",
              "fibonacci"]
n_members = 4
n_prompts = 100
lengths = [2, 3, 4, 5, 6]
min_margin = 0.1
seed = 0

# %%
import pandas as pd
from shared.analysis.text import token_strings
from shared.chapters import open_chapter, say, show_table
from shared.plots import figures
from shared.plots import sequences as plots
from shared.tasks import abilities, heldout
from shared.tasks import sequences as tasks
from shared.tasks import tokens
from shared.zoo.registry import load_model, local_models, model_metrics
from shared.zoo.suite import suite_names
from shared.zoo.seq_lm import is_trained
from shared.zoo.text.seq_tokenizers import seq_tokenizer

ch = open_chapter("sequence_data", model_name=model_name, compare_with=compare_with, task_names=task_names, n_members=n_members,
                  n_prompts=n_prompts, lengths=lengths, min_margin=min_margin, seed=seed)
model = ch.model

# %% [markdown]
# ## The tasks
#
# Each task is an ordered list and a step: numerals 1–100, number words one–twenty, months and days
# (cyclic, so December is followed by January), capital letters, numerals in steps of two and
# three, numerals counting down, and Fibonacci numbers. A prompt shows `n_members` consecutive
# members in one of two shapes, the bare sequence and the *among-words* template where every
# member closes a short clause headed by a filler noun. Prompts are rendered from their fields by
# concatenation, so the text can never disagree with the stored members, answer and fillers.

# %%
examples = []
for t in task_names:
    for template in tasks.TEMPLATES:
        p = tasks.generate(t, template, n_members, 1, seed=seed)[0]
        examples.append(dict(task=t, template=template, prompt=p.text, answer=p.answer, incorrect=p.incorrect))
show_table(pd.DataFrame(examples))

# %% [markdown]
# ## Corruptions
#
# Circuit methods compare a clean prompt with a corrupted one that breaks the sequence but keeps
# everything else. Four corruptions change the member fields and re-render the text: random
# members with no consecutive pair, the last two members swapped, the last member repeated, and a
# random permutation. The fillers, the answer we score and the token count stay the same.

# %%
clean = tasks.generate(task_names[0], "among_words", n_members, 1, seed=seed)
rows = [dict(corruption="(clean)", prompt=clean[0].text, members=" ".join(clean[0].members))]
for c in tasks.CORRUPTIONS:
    bad = tasks.corrupt(clean, c, seed=seed, tokenizer=model)[0]
    rows.append(dict(corruption=c, prompt=bad.text, members=" ".join(bad.members)))
show_table(pd.DataFrame(rows))

# %% [markdown]
# ## How the prompts tokenize
#
# Positions of members come from the tokenizer's character offsets, and every prompt starts with
# the same BOS token. A member or answer that splits into several tokens is refused unless it is
# declared multi-token (then it is scored by teacher forcing, summing the log-probabilities of its
# tokens). The audit counts, per task, how many members are one token with their leading space,
# for the model's tokenizer and for a digit-splitting (Llama-like) variant of our tokenizer.

# %%
audit = tasks.token_audit(model, task_names).set_index("task")
digit_audit = tasks.token_audit(seq_tokenizer("digits"), task_names).set_index("task")
audit_headers = {"members": "members", "single_token_spaced": "one token", "max_tokens": "most tokens",
                 "example_split": "example split"}
audit_table = pd.concat({"model tokenizer": audit[["members", "single_token_spaced", "max_tokens"]],
                         "digit-splitting variant": digit_audit[["single_token_spaced", "max_tokens",
                                                                 "example_split"]]}, axis=1)
show_table(audit_table.rename(columns=audit_headers))

# %%
single = [t for t in task_names if audit.loc[t, "single_token_spaced"] == audit.loc[t, "members"]]
example = tasks.generate(task_names[0], "among_words", n_members, 1, seed=seed)[0]
enc = tokens.encode(model, [example], multi_token=True)
shown = token_strings(model.tokenizer, enc.tokens[0])  # readable labels, in quotes
say(f"With the model's tokenizer **{len(single)} of {len(task_names)}** tasks have only single-token "
    f"members. The example prompt reads as {len(shown)} tokens (BOS first); its members sit at positions "
    f"{enc.member_pos[0].tolist()} and the answer is predicted at position {int(enc.end_pos[0])}.")
print(" ".join(f"[{i}]{s}" for i, s in enumerate(shown)))

# %% [markdown]
# ## Does the model continue the sequences?
#
# For every task and both templates we draw fresh prompts and read the model's prediction after
# the last token: the top-1 accuracy and the logit difference between the answer and the last
# member shown (the incorrect answer the circuit chapters use).

# %%
def evaluate(template: str, k: int, n: int) -> pd.DataFrame:
    frames = []
    for t in task_names:
        starts = len(tasks.get_task(t).starts(k))
        m = min(n, starts) if template == "bare" else n
        multi = audit.loc[t, "max_tokens"] > 1
        frames.append(tokens.score(model, tasks.generate(t, template, k, m, seed=seed + 1000), multi_token=multi)
                      .assign(n_members=k))
    return pd.concat(frames, ignore_index=True)


results = pd.concat([evaluate(tp, n_members, n_prompts) for tp in tasks.TEMPLATES], ignore_index=True)
summary = (results.groupby(["task", "template"], sort=False)
           .agg(accuracy=("top1", "mean"), logit_diff=("logit_diff", "mean"), prompts=("top1", "size"))
           .unstack("template"))
show_table(summary.rename(columns={"logit_diff": "logit diff."}),
           percent=[c for c in summary.columns if c[0] == "accuracy"])

# %%
plots.task_accuracy(summary, task_names, title=f"{model_name}: held-out prompts with {n_members} members",
                    name="accuracy")

# %%
acc = summary["accuracy"]["among_words"]
key_tasks = [t for t in ["numerals", "number_words", "months"] if t in task_names]
say("On held-out among-words prompts the model is right on "
    + ", ".join(f"**{acc[t]:.0%}** of {t}" for t in key_tasks)
    + f"; across all tasks among-words accuracy ranges from {acc.min():.0%} ({acc.idxmin()}) to "
      f"{acc.max():.0%} ({acc.idxmax()}), and bare-sequence accuracy from "
      f"{summary['accuracy']['bare'].min():.0%} to {summary['accuracy']['bare'].max():.0%}.")

# %% [markdown]
# ## Beyond the book's two templates
#
# A model that continues sequences only in the shape it was trained on has learned a template,
# not a sequence. So besides the book's two templates we score nine other surface forms of the
# same five tasks (a shelf inventory, diary dates, train platforms, tickets, chapters, arrows, a
# bulleted list, voting rounds, a relay race), written before the model suite was trained and
# kept out of its training text: a test scans every training batch for each form's distinctive
# phrases and fails if one occurs. The among-words template is held out the same way (through
# its verb); only the bare list is in the training text. Each form gets its own row; the models
# in `compare_with` are scored on the same prompts.

# %%
form_tasks = [t for t in task_names if t in heldout.SEQ_TASKS] or list(heldout.SEQ_TASKS)  # the five the forms cover
form_tables = {name: abilities.form_table(abilities.sequence_accuracy(
    m, tasks=form_tasks, n_members=n_members, n_prompts=min(n_prompts, 40), seed=seed + 2000))
    for name, m in [(model_name, model)] + [(n, load_model(n)) for n in compare_with]}
forms_shown = form_tables[model_name].copy()
forms_shown["held_out"] = forms_shown.held_out.map({True: "yes", False: "no"})
forms_shown.insert(0, "kind", ["book template" if f in heldout.BOOK_TEMPLATES else "other form"
                               for f in forms_shown.index])
show_table(forms_shown.rename(columns={"held_out": "held out"}), percent=form_tasks + ["mean"])

# %%
labels = [f + (" (book)" if f in heldout.BOOK_TEMPLATES else "") for f in form_tables[model_name].index]
figures.bars(labels, {name: table["mean"].tolist() for name, table in form_tables.items()},
             ylabel="top-1 accuracy, mean over tasks", title="Accuracy per surface form", name="surface_forms")

# %%
def held_out_mean(table: pd.DataFrame) -> float:
    return float(table.loc[~table.index.isin(heldout.BOOK_TEMPLATES), "mean"].mean())


mine = form_tables[model_name]
other_forms = mine.loc[~mine.index.isin(heldout.BOOK_TEMPLATES), "mean"]
origin = ("held out from its training text by construction" if model_name in suite_names()
          else "not known to be absent from its training data")
say(f"`{model_name}` averages **{held_out_mean(mine):.0%}** top-1 over the {len(other_forms)} other surface forms "
    f"({origin}), from {other_forms.min():.0%} ({other_forms.idxmin()}) to {other_forms.max():.0%} "
    f"({other_forms.idxmax()}), against {mine.loc['among_words', 'mean']:.0%} on among-words and "
    f"{mine.loc['bare', 'mean']:.0%} on bare lists."
    + "".join(f" `{n}` averages {held_out_mean(t):.0%} on the other forms and {t.loc['among_words', 'mean']:.0%} "
              f"on among-words." for n, t in form_tables.items() if n != model_name))

# %% [markdown]
# ## Where in the sequence, and how many members
#
# Accuracy may depend on where the sequence sits in its list (late numerals are rarer in text)
# and on how many members the prompt shows. We group the among-words results by the position of
# the answer in its list, and re-run the evaluation with 2 to 6 members.

# %%
among = results[results.template == "among_words"].copy()
among["answer_index"] = [tasks.get_task(t).sequence.index(a) for t, a in zip(among.task, among.answer)]
among["answer_bin"] = among.groupby("task").answer_index.transform(
    lambda s: pd.cut(s, bins=min(5, s.nunique()), labels=False))
by_position = among.groupby(["task", "answer_bin"]).top1.mean().unstack("task")[task_names]

by_length = pd.concat([evaluate("among_words", k, max(n_prompts // 2, 4)) for k in lengths], ignore_index=True)
length_table = by_length.groupby(["n_members", "task"]).agg(accuracy=("top1", "mean"),
                                                          logit_diff=("logit_diff", "mean"))
plots.accuracy_by_place_and_length(by_position, length_table.accuracy.unstack("task")[task_names],
                                   name="accuracy_by_place_and_length")

# %% [markdown]
# The mean logit difference (answer minus last member) per task and number of members shown:

# %%
len_acc = length_table.accuracy.unstack("task")
show_table(length_table.logit_diff.unstack("n_members").loc[task_names]
           .rename(columns=lambda k: f"{k} members").rename_axis(columns=None))
say("Mean accuracy over tasks by number of members shown: "
    + ", ".join(f"{k} members **{len_acc.loc[k].mean():.0%}**" for k in lengths) + ". "
    f"The hardest fifth of the lists averages {by_position.min().mean():.0%} accuracy across tasks, "
    f"the easiest {by_position.max().mean():.0%}.")

# %% [markdown]
# ## Keeping the prompts the model solves
#
# Circuit chapters study the mechanism behind correct answers, so they keep only prompts where the
# answer is the model's top-1 prediction with a probability margin of at least `min_margin` over
# the runner-up token.

# %%
pool = [p for t in task_names for p in tasks.generate(t, "among_words", n_members, n_prompts, seed=seed)]
multi_token = bool((audit.loc[task_names, "max_tokens"] > 1).any())
kept = tokens.filter_correct(model, pool, min_margin=min_margin, seed=seed, multi_token=multi_token, verbose=False)
counts = pd.DataFrame(kept.counts, index=["kept", "drawn"]).T
counts["share"] = counts.kept / counts.drawn
show_table(counts, percent=["share"])

# %%
say(f"Filtering keeps **{len(kept)} of {len(pool)}** among-words prompts; the share kept ranges from "
    f"{counts.share.min():.0%} ({counts.share.idxmin()}) to {counts.share.max():.0%} ({counts.share.idxmax()}).")

# %% [markdown]
# ## What the training recorded
#
# A locally trained model stores its own training record: for the model suite the tokens seen and
# the validation loss at every checkpoint; for the older `seq-lm` models an evaluation on
# among-words prompts drawn with a seed no chapter uses.

# %%
if model_name in local_models() and "held_out" in model_metrics(model_name):
    metrics = model_metrics(model_name)
    say(f"`{model_name}` saw {metrics['tokens_seen']:,} training tokens in {metrics['train_seconds'] / 60:.1f} "
        f"minutes; its loss on held-out standard-library code is {metrics['validation_code_loss']:.2f} nats. "
        f"Accuracy recorded at training time on among-words prompts: "
        + ", ".join(f"{t} {metrics['held_out']['among_words/' + t]['accuracy']:.0%}" for t in key_tasks) + ".")
    names = [model_name] + [n for n in ["seq-lm-digits"] if n != model_name and is_trained(n)]
    recorded = pd.concat({n: pd.DataFrame(model_metrics(n)["held_out"]).T[["accuracy", "logit_diff"]]
                          for n in names}, axis=1)
    recorded.index = pd.MultiIndex.from_tuples([tuple(i.split("/")) for i in recorded.index],
                                               names=["template", "task"])
    show_table(recorded.rename(columns={"logit_diff": "logit diff."}),
               percent=[c for c in recorded.columns if c[1] == "accuracy"])
elif model_name in local_models():
    metrics = model_metrics(model_name)
    say(f"`{model_name}` saw {metrics['tokens_seen']:,} training tokens in {metrics['steps']:,} steps "
        f"({metrics['train_seconds'] / 60:.1f} minutes); its validation loss fell from "
        f"{metrics['checkpoints'][0]['val_loss']:.2f} to {metrics['final_val_loss']:.2f} nats over "
        f"{len(metrics['checkpoints'])} saved checkpoints.")
else:
    say(f"`{model_name}` is a pretrained model; it has no training record here.")

# %% [markdown]
# ## What this means
#
# The prompts are built from structured fields, tokenize with members at known positions, and
# corrupt without touching anything but the members. The accuracy tables above say which tasks
# the model continues in the book's templates and whether it does so in surface forms it never
# read; only the second is evidence of a mechanism for sequences rather than for one template.
# The circuit chapters that follow analyse the among-words template, on the prompts kept by the
# filter.
