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
# # What it takes for IOI to appear in a small language model
#
# The suite's first models read 6.6 M tokens each and never learned indirect-object identification
# (IOI: "When Mary and John went to the store, John gave a drink to" → " Mary"): on the held-out
# templates they preferred the indirect object in about half of the prompts, as a coin would. The
# Pythia models need billions of tokens of natural text for IOI, yet a tiny attention-only model solves a
# symbolic IOI task. So the training text and the budget decide. **Which levers make IOI appear in a
# model trained here on two CPU cores, and when does it appear?** This page reads the records of the
# pilot runs and of the suite's long runs, which were probed on held-out forms while they trained.

# %% tags=["remove-cell"]
# On Colab, install the book's code and shipped models first (this cell does nothing elsewhere).
import sys
if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/circuits-book/circuits-book")  # noqa: F821

# %% tags=["parameters"]
runs = []          # names of pilot or suite runs to show (empty: every committed record)
ioi_share = 0.7    # IOI is present when both orders (ABBA, BABA) prefer the indirect object this often
seed = 0

# %%
import pandas as pd

from shared.chapters import open_chapter, say, show_table
from shared.chapters.training import pilot_runs
from shared.plots.training import probe_curves
from shared.zoo import pilots

ch = open_chapter("ioi_emergence", runs=runs, ioi_share=ioi_share, seed=seed)
records = pilot_runs(runs)
for label, record in records.items():
    cfg, recipe = record["key"]["config"], record["key"]["recipe"]
    print(f"Model: {label} — a {cfg['n_layers']}-layer suite model, d_model {cfg['d_model']}, seed {cfg['seed']}, "
          f"recipe version {record['key']['version']}; record up to step {record['probes'][-1]['step']} of "
          f"{recipe['steps']}")

# %% [markdown]
# ## Method
#
# Every run is a suite model (GPT-2-style, the suite's tokenizer and generated corpus) trained by
# `python -m shared.zoo.train_suite`, with a warmup-stable-decay learning rate. Runs differ in shape and
# in the mix of documents: the `ioi` documents are scenes of two people, each named once, in many sentence
# shapes, that end with one of them acting on the other ("While Ana and Tom were at the park, Tom gave
# the old key to Ana"); `story` documents are the suite's older stories; repeated spans of random words
# train induction. Every 250 steps (1 M tokens) the run is probed, on forms it never read, for:
#
# * **IOI**, separately by order: *ABBA* prompts name the indirect object first ("Mary and John ...,
#   John gave ... to"), *BABA* prompts name the subject first. A model that only copies "a name from the
#   intro" gets one order right and the other wrong; only one that inhibits the repeated subject gets both;
# * **induction**: top-1 accuracy on the second copy of a span of uniformly random tokens;
# * **greater-than** (probability difference) and **sequence continuation** (top-1 over 9 held-out forms).

# %%
table = pilots.pilot_table(records, ioi_share=ioi_share)
show_table(table[["layers", "d_model", "tokens_M", "ioi_docs", "stories", "repeats", "val_loss", "induction",
                  "abba", "abba_ld", "baba", "baba_ld", "induction_at_M", "ioi_at_M", "s_preferred_M"]],
           digits=2, percent=["induction", "abba", "baba", "ioi_docs", "stories", "repeats"])

# %% [markdown]
# Columns: layers and width; millions of tokens read so far; the shares of `ioi` documents, older
# stories and repeated spans (documents plus random rows); the last probe's validation loss, induction
# top-1, and per order the share of prompts preferring IO and the mean logit difference (nats);
# `induction_at_M` and `ioi_at_M`: millions of tokens at the probe from which induction (≥ 50%) and IOI
# (both orders at the criterion) stay present; `s_preferred_M`: the span of probes in which one order
# preferred the repeated name S in at least 65% of prompts.

# %%
probes = {label: pd.DataFrame(record["probes"]) for label, record in records.items()}
probe_curves(probes, {"ioi_abba_share": "IOI ABBA: share preferring IO", "ioi_baba_share": "IOI BABA: share preferring IO",
                      "induction_top1": "induction top-1 (random tokens)", "ioi_ld": "IOI mean logit diff (nats)"},
             reference={"ioi_abba_share": ioi_share, "ioi_baba_share": ioi_share, "induction_top1": 0.5},
             title="Held-out probes while training", name="probes")

# %% [markdown]
# ## Result

# %%
lines = []
for label, record in records.items():
    ind = pilots.lasting_from(record["probes"], "induction_top1")
    ioi = pilots.lasting_from(record["probes"], "ioi_both", ioi_share)
    last = record["probes"][-1]
    phase = pilots.s_preferred_phase(record["probes"])
    text = (f"**{label}**: induction from {ind / 1e6:.1f} M tokens" if ind else f"**{label}**: no induction yet")
    text += (f", IOI in both orders from {ioi / 1e6:.1f} M tokens" + (f" ({(ioi - ind) / 1e6:.1f} M after induction)"
             if ind else "") if ioi else f", no IOI in both orders within {last['tokens'] / 1e6:.1f} M tokens")
    text += (f"; last probe ABBA {last['ioi_abba_share']:.0%} ({last['ioi_abba_ld']:+.2f} nats), "
             f"BABA {last['ioi_baba_share']:.0%} ({last['ioi_baba_ld']:+.2f} nats)")
    if phase:
        text += f"; one order preferred the repeated name between {phase[0] / 1e6:.1f} and {phase[1] / 1e6:.1f} M tokens"
    lines.append(text + ".")
say("\n".join(f"- {line}" for line in lines))

# %% [markdown]
# ## What it means

# %%
ioi_from = {label: pilots.lasting_from(r["probes"], "ioi_both", ioi_share) for label, r in records.items()}
with_ioi = [label for label, tokens in ioi_from.items() if tokens]
after_induction = [label for label in with_ioi if pilots.lasting_from(records[label]["probes"], "induction_top1")
                   and pilots.lasting_from(records[label]["probes"], "induction_top1")
                   <= ioi_from[label]]
no_ioi = [label for label in records if label not in with_ioi]
last = {label: records[label]["probes"][-1] for label in no_ioi}
split = [l for l in no_ioi if abs(last[l]["ioi_abba_share"] - last[l]["ioi_baba_share"]) >= 0.25]
chance = [l for l in no_ioi if l not in split and max(last[l]["ioi_abba_share"], last[l]["ioi_baba_share"]) < 0.6]
rising = [l for l in no_ioi if l not in split and l not in chance]
say(f"IOI in both orders appeared in {len(with_ioi)} of {len(records)} runs ({', '.join(with_ioi) or 'none'}), "
    f"in {len(after_induction)} of them only after induction had formed. "
    + (f"In {', '.join(split)} the last probe still splits the preference by the order of the names (one order "
       f"right, the other wrong): copying a name from context without inhibiting the repeated one. " if split else "")
    + (f"In {', '.join(rising)} both orders are above chance but below the criterion of {ioi_share:.0%}. "
       if rising else "")
    + (f"{', '.join(chance)} still {'prefer' if len(chance) > 1 else 'prefers'} IO at about chance." if chance else ""))
