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
# # Indirect object identification: the circuit, found from the logits backwards
#
# "While Mary and John were cleaning up the market, John quietly slipped a book to" should end in
# " Mary": the name that was introduced but not repeated, the *indirect object* (IO), not the
# *subject* (S). Wang et al. (2022) found the circuit that does this in GPT-2 small by working
# backwards from the logits. We ask: **does that method, with stated and measurable criteria, find
# the heads of each class in a model where we know the answer, and does our own model do IOI at all,
# so that there is a circuit to find?**

# %% tags=["remove-cell"]
# On Colab, install the book's code and shipped models first (this cell does nothing elsewhere).
import sys
if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/circuits-book/circuits-book")  # noqa: F821

# %% tags=["parameters"]
model_name = "suite-l-s0"  # a local model (see the models page) or a pretrained name such as "gpt2-small"
n_prompts = 10              # prompts per template (the planted model has one template)
seed = 0
min_logit_diff = 1.0        # the model does IOI if its mean logit difference IO - S is at least this (nats)
min_share_positive = 0.8    # ... and it prefers IO on at least this share of the prompts
min_effect = 0.1            # name movers, S-inhibition: path-patching effect >= this x clean logit difference
min_attention = 0.2         # every class: attention at its defining positions >= this
min_copy = 0.0              # name movers: OV copy score on names > this (negative movers: < -this)
min_upstream_effect = 0.05  # induction, duplicate-token, previous-token: effect >= this x clean logit difference
min_rise = 0.1              # backup name movers: rise of the direct effect >= this x clean logit difference

# %%
from shared.analysis.ioi import (IOIHeadClasses, backup_name_movers, classify_ioi_heads, clean_logit_diff,
                                 induction_and_duplicate_heads, ioi_attention, name_movers, previous_token_heads,
                                 s_inhibition_heads)
from shared.chapters import open_chapter, say, show_table
from shared.chapters import ioi as ic
from shared.engine.circuit import Circuit, faithfulness
from shared.engine.graph import Graph
from shared.plots import ioi as plots
from shared.tasks.abilities import ioi_scores
from shared.tasks.ioi import ioi_batch
from shared.zoo.planted_ioi import planted_ioi_model

thresholds = dict(min_effect=min_effect, min_attention=min_attention, min_copy=min_copy,
                  min_upstream_effect=min_upstream_effect, min_rise=min_rise)
ch = open_chapter("ioi_circuit", model_name=model_name, n_prompts=n_prompts, seed=seed, min_logit_diff=min_logit_diff,
                  min_share_positive=min_share_positive, **thresholds)
model = ch.model

# %% [markdown]
# ## Method
#
# Each prompt has a **corrupted twin** from the ABC set: the same template, place and object, but the
# subject's two mentions (S1, S2) replaced by two new distinct names, so that no name is repeated and
# nothing tells the model which name is the answer. The behaviour is the **logit difference**
# logit(IO) − logit(S) at the last token (END).
#
# **Path patching** (the engine's `path_patching`) measures one edge at a time: the sender head's
# output, as seen by one receiver only (the logits, or one head's query, key or value input), is
# replaced by its value on the corrupted prompt; the drop of the logit difference is the edge's
# effect. Every effect is divided by the clean logit difference. Working backwards:
#
# 1. **Name movers**: direct effect (head → logits) ≥ `min_effect`, attention END → IO ≥ `min_attention`,
#    and an OV circuit that copies names (copy score > `min_copy`: the logit it writes for the name it
#    attends to, minus the other names'). **Negative name movers**: direct effect ≤ −`min_effect`,
#    attention END → names ≥ `min_attention`, copy score < −`min_copy`.
# 2. **S-inhibition heads**: effect through the name movers' *queries* ≥ `min_effect`, attention
#    END → S2 ≥ `min_attention`.
# 3. **Induction** and **duplicate-token heads**: effect through the S-inhibition heads' *values* ≥
#    `min_upstream_effect`, and attention S2 → S1+1 (induction) or S2 → S1 (duplicate token) ≥
#    `min_attention`. **Previous-token heads**: effect through the induction heads' *keys* ≥
#    `min_upstream_effect`, attention S1+1 → S1 ≥ `min_attention`.
# 4. **Backup name movers**: ablate every output of the name movers (corrupted values) and re-measure
#    each other head's direct effect; a head whose direct effect rises by ≥ `min_rise` takes over.
#
# ## Does the method recover heads we planted?
#
# First a model where the answer is known: a hand-set five-layer attention-only model
# (`shared.zoo.planted_ioi`) in which each class is one head, set by hand, among noise heads.
# Its prompts are "N1 and N2 w w S gave to" over a tiny vocabulary. The chain below is the whole
# classification, one engine/analysis call per class.

# %%
planted = planted_ioi_model()
bridge = planted.bridge
batch, positions = planted.batch(n_prompts, seed=seed)
clean = clean_logit_diff(bridge, batch)
attention = ioi_attention(bridge, batch.clean, positions)
kw = dict(attention=attention, clean=clean)
movers, negative = name_movers(bridge, batch, positions, min_effect, min_attention, min_copy, **kw)
inhibition = s_inhibition_heads(bridge, batch, positions, movers.heads, min_effect, min_attention, **kw)
induction, duplicate = induction_and_duplicate_heads(bridge, batch, positions, inhibition.heads,
                                                     min_upstream_effect, min_attention, **kw)
previous = previous_token_heads(bridge, batch, positions, induction.heads, min_upstream_effect, min_attention, **kw)
backup = backup_name_movers(bridge, batch, movers.heads, min_rise, clean=clean)
found = IOIHeadClasses(clean, movers, negative, inhibition, induction, duplicate, previous, backup)
agreement = ic.agreement_table(found.as_dict(), planted.classes)
show_table(agreement)

# %%
n_agree = int(agreement["agree"].sum())
say(f"On {len(batch)} planted prompts the model's logit difference is {clean:.2f}. The method assigns "
    f"{n_agree} of the {len(agreement)} planted classes exactly the planted heads"
    + (" — every class, and no noise head in any." if n_agree == len(agreement) else
       f"; it disagrees on {', '.join(agreement.index[~agreement['agree']])}.") + "\n\n" + ic.class_lines(found))

# %% [markdown]
# Step 1, the direct effect of every head on the logit difference (path patching head → logits):

# %%
graph = Graph.of(bridge)
plots.direct_effects(movers.scores["relative"], graph, title="Planted model: direct effect of each head",
                     name="planted_direct")

# %% [markdown]
# The circuit the classes form, each edge one that a step measured (width: the sender's effect),
# and the attention of each class at the positions that define it (on the clean prompts; a backup
# name mover turns to the IO only once the name movers are ablated, so its row has no defining entry):

# %%
circuit = ic.class_circuit(found, method="planted model")
plots.class_graph(circuit, found.as_dict(), graph, title="Planted model: IOI circuit by head class",
                  name="planted_graph")

# %%
plots.class_attention(attention, found.as_dict(), title="Planted model: attention (red box: defining entry)",
                      name="planted_attention")

# %% [markdown]
# Step 4, the backup: the direct effect of the heads that change most when the name movers are ablated.

# %%
plots.backup_rise(backup.scores, clean, title="Planted model: direct effects with the name movers ablated",
                  name="planted_backup")
say(f"The name movers ({', '.join(f'`{h}`' for h in movers.heads) or 'none'}) have a direct effect of "
    f"{movers.scores.loc[movers.heads, 'direct'].sum():.2f} nats together; with them ablated the logit difference "
    f"goes from {clean:.2f} to {backup.scores.attrs['metric with movers ablated']:.2f}: "
    + ("; ".join(f"`{h}`'s direct effect rises from {backup.scores.loc[h, 'direct']:.2f} to "
                 f"{backup.scores.loc[h, 'direct, movers ablated']:.2f} nats" for h in backup.heads)
       or "no head takes over") + ".")

# %% [markdown]
# ## Faithfulness, completeness and minimality
#
# A circuit C is a set of heads; every head outside it is **mean-ablated** (replaced by its mean output
# at the same position over the ABC prompts; MLPs are always kept, as in Wang et al.). F(S) is the
# logit difference with only the heads in S kept, M is the whole model.
#
# * **Faithfulness**: F(C) / F(M), and the normalised logit difference (F(C) − F(∅)) / (F(M) − F(∅)).
# * **Completeness** (simplified): Wang et al. ask that for *every* subset K of C, F(C \ K) ≈ F(M \ K),
#   and search for the worst K; we remove **one whole class at a time** and report
#   |F(C \ K) − F(M \ K)| / F(M).
# * **Minimality** (simplified): Wang et al. ask that every head v matter for *some* K ⊆ C \ {v}, with K
#   chosen by hand per class; we take K empty, except for a backup name mover, removed together with the
#   name movers (it acts only when they are gone), and report |F(C \ (K ∪ {v})) − F(C \ K)| / F(M).

# %%
values = ic.mean_abc_values(bridge, batch)
heads = ic.circuit_heads(found.as_dict())
faith = faithfulness(bridge, batch, Circuit(nodes=ic.kept_nodes(bridge, heads)), values=values)
checks = ic.circuit_checks(bridge, batch, found.as_dict(), values=values)
show_table(checks.completeness, digits=2)

# %%
plots.minimality(checks.minimality, title="Planted model: minimality (each head v removed with its K)",
                 name="planted_minimality")
worst = checks.completeness["incompleteness"].idxmax()
say(f"The planted circuit's {len(heads)} heads, with the other {len(graph.heads()) - len(heads)} mean-ablated, keep "
    f"a logit difference of {faith.score:.2f} of the whole model's {faith.full:.2f} (F(C)/F(M) = "
    f"{checks.ratio:.0%}; normalised against all heads ablated, {faith.empty:.2f}: {faith.normalized:.0%}). "
    f"Completeness: removing a whole class from the circuit and from the model differs by at most "
    f"{checks.completeness['incompleteness'].max():.0%} of F(M) (class {worst}). Minimality: every head "
    f"changes F by at least {checks.minimality['importance'].min():.0%} of F(M) "
    f"(least: `{checks.minimality['importance'].idxmin()}`).")

# %% [markdown]
# ## Does the model do IOI?
#
# Before looking for a circuit in the chapter's model, we measure the behaviour on the held-out IOI
# templates (`n_prompts` prompts each, half ABBA, half BABA). The model does IOI when its mean logit
# difference is at least `min_logit_diff` **and** it prefers the IO on at least `min_share_positive`
# of the prompts.

# %%
check = ic.ioi_check(ioi_scores(model, n_prompts=n_prompts, seed=seed), min_logit_diff, min_share_positive)
show_table(check.by_template, digits=2, percent=["share positive"])
verdict = "does IOI" if check.does_ioi else "does not do IOI"
say(f"**{model_name} {verdict}**: on {check.n_prompts} held-out prompts ({len(check.by_template)} templates) "
    f"its mean logit difference IO − S is {check.mean:+.2f} nats (criterion: at least {min_logit_diff:g}) and it "
    f"prefers the indirect object on {check.share_positive:.0%} of them (criterion: at least {min_share_positive:.0%})."
    + ("" if check.does_ioi else " Without the behaviour there is no circuit to find, so the per-class analysis "
       "stops here: any heads it labelled would be noise."))

# %% [markdown]
# ## The circuit in the model
#
# When the model does IOI, the same chain runs (`classify_ioi_heads`) on the prompts of one held-out
# template (the first; path patching needs one token length per batch) with their ABC twins. For
# GPT-2 small the classes are compared with the heads Wang et al. report.

# %%
if check.does_ioi:
    data = ioi_batch(model, ic.FIRST_TEMPLATE, n_prompts, corruption="abc", seed=seed)
    model_classes = classify_ioi_heads(model, data.batch, data.positions, min_effect, min_attention, min_copy,
                                       min_upstream_effect, min_rise)
    say(f"On {len(data)} prompts of the template `{ic.FIRST_TEMPLATE}` (logit difference "
        f"{model_classes.clean_logit_diff:.2f}):\n\n" + ic.class_lines(model_classes))
    if model_name == "gpt2-small":
        canonical = ic.agreement_table(model_classes.as_dict(), ic.CANONICAL, "Wang et al.")
        show_table(canonical)
        say("Overlap with Wang et al.'s heads: " + "; ".join(
            f"{c}: {row['overlap']}" for c, row in canonical.iterrows()) + ".")

# %%
if check.does_ioi and not ic.circuit_heads(model_classes.as_dict()):
    say(f"No head of {model_name} meets any class's criterion at these thresholds, so there is no circuit to draw.")
elif check.does_ioi:
    model_circuit = ic.class_circuit(model_classes, method=model_name)
    plots.class_graph(model_circuit, model_classes.as_dict(), Graph.of(model),
                      title=f"{model_name}: IOI circuit by head class", name="model_graph")
    plots.class_attention(ioi_attention(model, data.batch.clean, data.positions), model_classes.as_dict(),
                          title=f"{model_name}: attention (red box: defining entry)", name="model_attention")

# %%
if check.does_ioi and ic.circuit_heads(model_classes.as_dict()):
    model_values = ic.mean_abc_values(model, data.batch)
    model_checks = ic.circuit_checks(model, data.batch, model_classes.as_dict(), values=model_values)
    show_table(model_checks.completeness, digits=2)
    plots.minimality(model_checks.minimality, title=f"{model_name}: minimality", name="model_minimality")
    say(f"{model_name}'s circuit of {len(model_checks.minimality)} heads keeps F(C)/F(M) = {model_checks.ratio:.0%} "
        f"of the logit difference ({model_checks.circuit:.2f} of {model_checks.full:.2f}; normalised: "
        f"{model_checks.normalized:.0%}); removing a class changes circuit and model by at most "
        f"{model_checks.completeness['incompleteness'].max():.0%} of F(M).")

# %% [markdown]
# ## What it means
#
# The planted model is the test of the procedure: where the classes found there agree with the
# planted ones (the table above), the backwards search recovers a known circuit. Each step only looks at heads
# that feed the class found before it, through the input (query, key or value) the mechanism says
# they should use. The criteria are thresholds on measured effects and attention, so on a model that
# does not do the task they would still select *some* heads; that is why the chapter measures the
# behaviour first and stops when it is absent. The completeness and minimality checks here are the
# simple versions described above: they remove whole classes and single heads, not Wang et al.'s
# searched or hand-chosen subsets, so they can miss a subset that breaks the circuit.
