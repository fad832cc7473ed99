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
# # Sequence continuation: when does the next member appear? (logit lens)
#
# At the last position the model must turn "the last member shown was 6" into "the next one is 7".
# **After which layer can the answer be read off the residual stream, and until when does the
# last member shown — the repeat — still win?** The logit lens answers this by decoding the
# residual stream after every layer as if it were the last one.

# %% tags=["remove-cell"]
# On Colab, install the book's code and shipped models first (this cell does nothing elsewhere).
import sys
if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/circuits-book/circuits-book")  # noqa: F821

# %% tags=["parameters"]
model_name = "suite-l-s0"  # a local model (see the models page) or a pretrained name such as "gpt2-small"
task_names = ["numerals", "number_words", "months"]
n_prompts = 48          # prompts per task (only prompts the model answers correctly are kept)
seed = 0

# %%
import pandas as pd

from shared.analysis.lens import logit_lens, stage_phrase
from shared.chapters import open_chapter, say, show_table
from shared.chapters import sequences as sc
from shared.plots import sequences as plots

ch = open_chapter("seq_logit_lens", model_name=model_name, task_names=task_names, n_prompts=n_prompts, seed=seed)
model = ch.model

# %% [markdown]
# ## Method
#
# For each prompt we take the residual stream at the last position entering layer 0 (the
# embedding), and leaving each layer. Each is passed through the model's **final LayerNorm once**
# — centred, divided by its *own* standard deviation, scaled by the LayerNorm weight plus its bias —
# and then through the unembedding, giving a full next-token distribution per layer. (Applying
# the normalisation twice, or with the final layer's statistics, distorts the early layers.) We
# record the **rank** of two tokens among the whole vocabulary: the answer (the next member) and
# the last member shown. Rank 0 means top prediction. At the last stage the lens equals the
# model's own output, which the check below confirms.

# %%
data = sc.load_tasks(model, task_names, n_prompts, seed)
lens = {t: logit_lens(model, d.tokens, {"answer": d.batch.correct, "last member": d.batch.incorrect},
                      pos=d.end_pos) for t, d in data.items()}
check = {t: float((res.ranks["answer"][-1] == 0).float().mean()) for t, res in lens.items()}
print("Share of prompts where the answer is top-1 at the last stage (should be 1.0: prompts were "
      "filtered for it):", {t: round(v, 3) for t, v in check.items()})

# %% [markdown]
# ## Result

# %%
plots.lens_ranks(lens, title=f"{model_name}: rank of the answer and of the last member after each layer",
                 name="lens_ranks")

# %%
tables = pd.concat({t: res.table() for t, res in lens.items()}, names=["task"])
lens_table = tables.pivot_table(index=["task", "stage"], columns="target", values=["median_rank", "top1"], sort=False)
show_table(lens_table.rename(columns={"median_rank": "median rank", "top1": "top-1 share"}),
           percent=[("top-1 share", target) for target in lens_table.columns.levels[1]], digits=1)

# %%
lines = []
for t, res in lens.items():
    tab = res.table().set_index(["target", "stage"])
    switch = res.switch_stage()
    overtake = res.overtake_stage()
    peak_last = max(res.stages, key=lambda s: tab.loc[("last member", s), "top1"])
    best_last = min(res.stages, key=lambda s: tab.loc[("last member", s), "median_rank"])
    if tab.loc[("last member", peak_last), "top1"] > 0:
        repeat = (f"The last member shown is most often top-1 **{stage_phrase(peak_last)}** "
                  f"({tab.loc[('last member', peak_last), 'top1']:.0%} of prompts).")
    else:
        repeat = (f"The last member shown is never the top token; its best median rank is "
                  f"{tab.loc[('last member', best_last), 'median_rank']:.0f}, **{stage_phrase(best_last)}**.")
    lines.append(
        f"* **{t}**: the prediction switches to the answer **{stage_phrase(switch)}** (from there on it is the top"
        f" token for most prompts); it ranks above the last member shown **{stage_phrase(overtake)}** and stays ahead."
        f" Its median rank is {tab.loc[('answer', res.stages[0]), 'median_rank']:.0f} at the embedding and"
        f" {tab.loc[('answer', res.stages[-2]), 'median_rank']:.0f} before the last layer. " + repeat)
say("\n".join(lines))
switches = {t: res.switch_stage() for t, res in lens.items()}
same = len(set(switches.values())) == 1
say(f"The prediction switches {'at the same stage for all tasks' if same else 'at different stages across tasks'}: "
    + ", ".join(f"{t} {stage_phrase(s)}" for t, s in switches.items()) + ".")

# %% [markdown]
# ## What it means
#
# Until the switch, the residual stream at the last position decodes to the members it has
# seen (the repeat) or to generic tokens; the layer at which the next member takes over is where
# the "add one" step must have happened, so circuit components that matter should sit at or before
# that layer. A switch at the same layer for all tasks is consistent with one shared mechanism;
# different layers suggest task-specific routes. The logit lens is only a lens: it reads earlier
# layers in the last layer's basis, which they need not use, so late switches can partly be an
# artefact of that basis.
