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
# # IOI across models: which heads, how big a circuit, the same algorithm?
#
# The previous chapter found the IOI circuit of one model. Here we ask the question across every
# final model of the suite (all sizes, both seeds): **does each model do IOI, and if it does, which
# heads fall in each class, how many edges does a faithful circuit need, how much do the circuits
# of different models overlap, and does each model use the algorithm Wang et al. (2022) describe —
# name movers whose queries are set by S-inhibition heads, which read induction and duplicate-token
# heads?**
#
# Every suite model fails the behaviour check (the `model_suite` chapter shows they do not even
# recall names from context), so the per-model analysis has nothing to work on there. To show what
# the machinery does and that it can say both "yes" and "no", the chapter also runs on three
# **controls**, hand-set models whose answer is known (`shared.zoo.planted_ioi`): the planted IOI
# model of the previous chapter (`planted`), the same construction with every class in another head
# and layer of a six-layer model (`planted-moved`), and a model that does IOI but whose S-inhibition
# head finds S2 by its position instead of reading the induction and duplicate-token heads
# (`planted-cut`): a link of the algorithm is cut, so the test must answer "no" for it.

# %% tags=["remove-cell"]
# On Colab, install the book's code and shipped models first (this cell does nothing elsewhere).
import sys
if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/circuits-book/circuits-book")  # noqa: F821

# %% tags=["parameters"]
model_names = ["suite-s-s0", "suite-s-s1", "suite-m-s0", "suite-m-s1", "suite-l-s0"]  # or pretrained: "gpt2-small"
controls = ["planted", "planted-moved", "planted-cut"]  # hand-set models with a known answer ([] for none)
n_prompts = 10              # prompts per held-out template (models) or in all (controls)
seed = 0
min_logit_diff = 1.0        # a model does IOI if its mean logit difference IO - S is at least this (nats)
min_share_positive = 0.8    # ... and it prefers IO on at least this share of the prompts
min_effect = 0.1            # name movers, S-inhibition and their links: effect >= this x clean logit difference
min_attention = 0.2         # every class: attention at its defining positions >= this
min_copy = 0.0              # name movers: OV copy score on names > this
min_upstream_effect = 0.05  # induction, duplicate-token, previous-token heads and their links: effect >= this
min_rise = 0.1              # backup name movers: rise of the direct effect >= this x clean logit difference
min_faithfulness = 0.8      # the EAP-IG circuit: smallest top-k edge set with normalised faithfulness >= this
ig_steps = 5                # EAP-IG interpolation steps

# %%
from shared.analysis.ioi import classify_ioi_heads
from shared.analysis.ioi_algorithm import ioi_algorithm
from shared.chapters import count, open_chapter, say, show_table
from shared.chapters import ioi as ic
from shared.chapters import ioi_across as ia
from shared.plots import circuits as circuit_plots
from shared.plots import ioi as plots

thresholds = dict(min_effect=min_effect, min_attention=min_attention, min_copy=min_copy,
                  min_upstream_effect=min_upstream_effect, min_rise=min_rise)
ch = open_chapter("ioi_across_models", model_names=model_names, controls=controls, n_prompts=n_prompts, seed=seed,
                  min_logit_diff=min_logit_diff, min_share_positive=min_share_positive,
                  min_faithfulness=min_faithfulness, ig_steps=ig_steps, **thresholds)
subjects = ia.load_subjects(model_names, controls)

# %% [markdown]
# ## Which models do IOI?
#
# The behaviour comes first. A language model is scored on the held-out IOI templates (`n_prompts`
# each, half ABBA, half BABA), a control on its own prompts ("N1 and N2 w w S gave to"). A model does
# IOI when its mean logit difference logit(IO) − logit(S) is at least `min_logit_diff` **and** it
# prefers the IO on at least `min_share_positive` of the prompts.

# %%
checks = {name: s.behaviour(n_prompts, seed, min_logit_diff, min_share_positive) for name, s in subjects.items()}
behaviour = ia.behaviour_table(subjects, checks)
show_table(behaviour, digits=2, percent=["share positive"])

# %%
plots.behaviour(behaviour, min_logit_diff, title="Does each model do IOI? (controls are hand-set)",
                name="behaviour")
doing = [n for n, c in checks.items() if c.does_ioi]
not_doing = [n for n, c in checks.items() if not c.does_ioi]
say(" ".join(f"**{n} does not do IOI** (mean logit difference {checks[n].mean:+.2f} nats, IO preferred on "
             f"{checks[n].share_positive:.0%} of {checks[n].n_prompts} prompts), so its per-class analysis stops here: "
             f"any heads it labelled would be noise." for n in not_doing)
    + ("\n\n" + f"The analysis below runs on the {count(len(doing), 'model')} that do IOI: "
       + ", ".join(subjects[n].label for n in doing) + "."
       if doing else "\n\nNo model does IOI, so there is no circuit to compare and the chapter stops here."))

# %% [markdown]
# ## Which heads fall in each class?
#
# For each model that does IOI, the backwards search of the previous chapter (`classify_ioi_heads`,
# the same thresholds) runs on `n_prompts` prompts of one template (the first held-out one for a
# language model, the planted prompts for a control) with their ABC twins: name movers by their
# direct effect, S-inhibition heads by their effect on the movers' queries, induction and
# duplicate-token heads by their effect on the S-inhibition heads' values, previous-token heads by
# their effect on the induction heads' keys, and backup name movers by how much they take over when
# the movers are ablated.

# %%
data = {n: subjects[n].prompts(n_prompts, seed) for n in doing}
found = {n: classify_ioi_heads(subjects[n].bridge, *data[n], **thresholds).as_dict() for n in doing}
if found:
    show_table(ia.class_table(ia.labelled(found, subjects)))
controls_ok = [n for n in found if subjects[n].control and ia.planted_check(found[n], subjects[n])]
controls_off = [n for n in found if subjects[n].control and n not in controls_ok]
if controls_ok or controls_off:
    say(f"On the controls the search returns exactly the planted heads in every class for "
        f"{', '.join(controls_ok) or 'no control'}"
        + "".join(f"; for {n} it differs: " + ", ".join(
            f"{c} (planted {', '.join(hs)}, found {', '.join(found[n].get(c, [])) or 'none'})"
            for c, hs in subjects[n].classes.items() if set(hs) != set(found[n].get(c, []))) for n in controls_off)
        + "." + (" The S-inhibition head of `planted-cut` does not read the induction and duplicate-token heads, "
                 "so a search that looks upstream only through the S-inhibition heads' values cannot reach them."
                 if "planted-cut" in controls_off else ""))

# %% [markdown]
# ## Does each model use the IOI algorithm?
#
# The algorithm is a chain of links, each measured by path patching the edges between two classes
# together (their senders' outputs replaced by the corrupted run's, as seen by the receivers only)
# and divided by the clean logit difference: name movers → logits and S-inhibition → name mover
# queries must reach `min_effect`, induction/duplicate-token → S-inhibition values must reach
# `min_upstream_effect`. A model uses the algorithm when every one of these three links holds; the
# link previous-token → induction keys is shown but not required (a model may mark the repeated name
# with duplicate-token heads alone). A class without heads is a missing link.

# %%
algorithm = {n: ioi_algorithm(subjects[n].bridge, *data[n], found[n], min_effect, min_upstream_effect) for n in doing}
if algorithm:
    links = ia.algorithm_table(ia.labelled(algorithm, subjects))
    show_table(links, digits=2)
    plots.link_effects(links.drop(columns="uses the IOI algorithm"),
                       title="Path-patching effect of each link of the IOI algorithm", name="links")

# %%
if algorithm:
    say("\n".join(f"* **{subjects[n].label}**: " + ("uses the IOI algorithm — every required link holds"
                                   if r.uses_algorithm else
                                   "does IOI but **not** with the IOI algorithm — missing: "
                                   + "; ".join(f"{link} (effect {r.links.loc[link, 'relative']:+.2f} of the clean "
                                               f"logit difference, threshold {r.links.loc[link, 'threshold']:g}, "
                                               f"senders: {r.links.loc[link, 'senders']})" for link in r.missing))
                  + "." for n, r in algorithm.items()))

# %% [markdown]
# For a control the classes are also known by construction, so the test can be run on the planted
# heads themselves: then no class is empty, and only the measured effects of the links decide.

# %%
known = {n: ioi_algorithm(subjects[n].bridge, *data[n], subjects[n].classes, min_effect, min_upstream_effect)
         for n in doing if subjects[n].control}
if known:
    show_table(ia.algorithm_table(ia.labelled(known, subjects)), digits=2)
    say("With the planted heads as the classes: " + "; ".join(
        f"{subjects[n].label} " + ("uses the algorithm" if r.uses_algorithm else "does not: " + ", ".join(
            f"{link} has {int(r.links.loc[link, 'edges'])} edges from {r.links.loc[link, 'senders']} but an effect of "
            f"only {r.links.loc[link, 'relative']:+.2f} of the clean logit difference (threshold "
            f"{r.links.loc[link, 'threshold']:g})" for link in r.missing)) for n, r in known.items()) + ".")

# %% [markdown]
# ## How many edges does a faithful circuit need?
#
# EAP-IG (`eap_ig`, `ig_steps` steps from the corrupted to the clean embeddings) scores every edge of
# the model; edges are kept in order of |score|, every other edge is patched to its corrupted value,
# and the circuit is the smallest top-k set whose normalised logit difference
# (F(C) − F(∅)) / (F(M) − F(∅)) reaches `min_faithfulness` (a log-spaced scan of k, then every k
# between the last size below the target and the first above it). The chosen circuit's faithfulness
# is measured again with the engine's `faithfulness`. A value above 100% means the kept edges give a
# larger logit difference than the whole model: edges that lower it (a negative name mover's, for
# example) are among those patched away. A partial circuit can also score below zero, when an edge is
# kept without the edges that feed it.

# %%
circuits = {n: ia.edge_circuit(subjects[n].bridge, data[n][0], min_faithfulness, ig_steps) for n in doing}
if circuits:
    show_table(ia.circuit_table(ia.labelled(circuits, subjects)), digits=2)
    circuit_plots.faithfulness_curves(ia.labelled({n: c.curve for n, c in circuits.items()}, subjects),
                                      title=f"EAP-IG: faithfulness of the top-k edges (target {min_faithfulness:g})",
                                      name="faithfulness")

# %%
if circuits:
    say(" ".join(f"{subjects[n].label} reaches {c.circuit.info['normalized']:.0%} with {c.circuit.info['k']} of its "
                 f"{c.n_edges} edges ({len(c.heads)} heads; re-measured: {c.faith.normalized:.0%})"
                 + ("" if c.circuit.info["reached"] else f" — it never reaches {min_faithfulness:.0%}, so every edge "
                    "is kept") + "." for n, c in circuits.items())
        + " The class heads inside each circuit: "
        + "; ".join(f"{subjects[n].label}: {sum(h in set(c.heads) for h in ic.circuit_heads(found[n]))} of "
                    f"{len(ic.circuit_heads(found[n]))}" for n, c in circuits.items()) + ".")

# %% [markdown]
# ## Do the circuits overlap?
#
# The Jaccard overlap |A ∩ B| / |A ∪ B| of two models' edge sets, and of the sets of heads those
# edges touch. Edges and heads are compared by name (`a3.h0`), so two models share an edge only if the
# same head position plays a part in both.

# %%
if len(circuits) >= 2:
    edge_overlap, head_overlap = ia.overlaps(ia.labelled(circuits, subjects))
    plots.circuit_overlap(edge_overlap, head_overlap, title="Jaccard overlap of the EAP-IG circuits",
                          name="overlap")
    pairs = [(a, b) for i, a in enumerate(edge_overlap.index) for b in edge_overlap.index[i + 1:]]
    say("Jaccard overlap of edges and of heads: " + "; ".join(
        f"{a} and {b}: {edge_overlap.loc[a, b]:.2f} and {head_overlap.loc[a, b]:.2f}" for a, b in pairs) + ".")
elif circuits:
    say("Only one model does IOI, so there is no pair of circuits to compare.")

# %% [markdown]
# ## The check of the `paper` profile: GPT-2 small
#
# Wang et al. (2022) name the heads of each class in GPT-2 small (name movers 9.9, 9.6, 10.0;
# S-inhibition 7.3, 7.9, 8.6, 8.10; see `CANONICAL` in `shared.chapters.ioi`). When `gpt2-small` is
# among the models and does IOI, the classes found here are compared with theirs.

# %%
if "gpt2-small" in found:
    canonical = ic.agreement_table(found["gpt2-small"], ic.CANONICAL, "Wang et al.")
    show_table(canonical)
    say("Overlap with Wang et al.'s heads: " + "; ".join(f"{c}: {row['overlap']}" for c, row in canonical.iterrows())
        + ".")
elif "gpt2-small" in checks:
    say("gpt2-small does not pass the behaviour check here, so its classes are not compared with Wang et al.'s.")
else:
    say("GPT-2 small is not among this run's models (it runs with the `paper` profile), so there is nothing to "
        "compare with Wang et al.'s heads: " + "; ".join(f"{c} {', '.join(hs)}" for c, hs in ic.CANONICAL.items())
        + ".")

# %% [markdown]
# ## What it means
#
# None of the suite's models does IOI at this training budget, so for them the chapter's answer is
# the behaviour table alone: there are no classes to label, no circuit to size and nothing to
# compare. The controls show what the rest of the chapter measures when the behaviour is there. The
# head classes and the circuit size say *where* a model computes IOI; the overlap of circuits says
# whether two models compute it in the *same places* — the moved control does the same computation
# in other heads and shares almost nothing by name with the original, so a low overlap between
# models does not mean a different algorithm. That question is the link test's: it asks whether
# the information flows along the chain the algorithm needs, and it separates `planted-cut`, which
# does IOI with the same name movers and S-inhibition head but without the induction and
# duplicate-token heads feeding them, from the two models that use the algorithm.
