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
# # Zero and one attention layer: bigrams, skip-trigrams and copying
#
# An attention-only transformer without MLPs is a sum of paths from the token embedding to the
# logits (Elhage et al., 2021). A zero-layer model has only the direct path $W_E W_U$ and can only
# learn **bigram** statistics. A one-layer model adds, for each head, a path through attention: the
# head's QK circuit decides which earlier *source* token the *destination* token attends to, and
# its OV circuit decides how attending to that source changes the next-token logits — a table of
# **skip-trigrams** "source … destination → next". Do small models trained here on Python source
# code learn these, and how much of what their heads do is plain **copying**?

# %% tags=["remove-cell"]
# On Colab, install the book's code and shipped models first (this cell does nothing elsewhere).
import sys
if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/circuits-book/circuits-book")  # noqa: F821

# %% tags=["parameters"]
model_name = "attn-only-1l"              # one-layer model: a local model or "attn-only-1l-pretrained"
zero_layer_model_name = "attn-only-0l"   # the bigram baseline
n_frequent = 1024         # analyse the most frequent tokens of the corpus (all of a small vocabulary)
corpus_chars = 3_000_000  # characters of training text used for the bigram statistics
min_count = 20            # bigrams seen fewer times are left out of the correlation
n_trigram_tokens = 300    # skip-trigrams among this many most frequent tokens (rare ones are noisy)
n_sources = 4             # skip-trigram rows shown per head
seed = 0

# %%
import numpy as np
import pandas as pd

from shared.analysis.text import bigram_log_probs, frequent_tokens, special_ids, tokenize_stream
from shared.analysis.weights import (direct_path_log_probs, ov_copying_scores, ov_eigenvalues, skip_trigrams,
                                     weights)
from shared.chapters import open_chapter, say, show_table
from shared.engine.graph import head_name
from shared.errors import ParameterError
from shared.plots import framework as plots
from shared.zoo.registry import describe, load_model, local_models, model_metrics
from shared.zoo.text.stdlib import stdlib_text

ch = open_chapter("framework_1l", model_name=model_name, zero_layer_model_name=zero_layer_model_name,
                  n_frequent=n_frequent, corpus_chars=corpus_chars, min_count=min_count,
                  n_trigram_tokens=n_trigram_tokens, n_sources=n_sources, seed=seed)
model = ch.model
zero = load_model(zero_layer_model_name)
print(f"Baseline: {describe(zero)}")
if model.cfg.n_layers != 1 or not model.cfg.attn_only:
    raise ParameterError(f"This chapter needs a one-layer attention-only model; {model_name!r} has "
                         f"{model.cfg.n_layers} layers{'' if model.cfg.attn_only else ' and MLPs'}.")

# %% [markdown]
# ## The models and the corpus
#
# The corpus is the source code of the Python standard library of the interpreter running this
# notebook (code, comments and docstrings; tests excluded), split by file into training and
# validation text. The local models use a byte-level BPE vocabulary trained on the training split.

# %%
rows = []
for name in dict.fromkeys([zero_layer_model_name, model_name]):
    if name in local_models():
        m = model_metrics(name)
        rows.append({"model": name, "validation loss (nats)": m["validation_loss"], "training tokens seen":
                     m["tokens_seen"], "corpus training tokens": m["train_tokens_available"],
                     "train time (s)": m["train_seconds"]})
if rows:
    show_table(pd.DataFrame(rows).set_index("model"), digits={"train time (s)": 0},
               integers=["training tokens seen", "corpus training tokens"])
    say(f"The training split holds **{rows[0]['corpus training tokens']:,} tokens** under the local "
        f"tokenizer; the validation loss is {rows[0]['validation loss (nats)']:.2f} nats with no attention "
        f"layer and {rows[-1]['validation loss (nats)']:.2f} with one.")

# %% [markdown]
# ## Zero layers: the direct path learns bigrams
#
# For the most frequent tokens we compare the direct path's prediction
# $\mathrm{softmax}(W_E W_U + b_U)$ with the bigram statistics of the training text,
# $\log P(\text{next} \mid \text{current})$, over all token pairs seen at least `min_count` times
# — in the zero-layer model, where the direct path is everything, and in the one-layer model,
# where the heads can take over part of the job.

# %%
def bigram_fit(bridge):
    """Corpus bigram log-probabilities and the direct path's, over pairs seen >= min_count times."""
    tok = bridge.tokenizer
    stream = tokenize_stream(tok, stdlib_text("train", max_chars=corpus_chars))
    ids = frequent_tokens(stream, n_frequent, exclude=special_ids(tok))
    corpus_logp, pairs = bigram_log_probs(stream, ids)                # log P(next | current) in the text
    model_logp = direct_path_log_probs(weights(bridge), ids)          # log softmax(W_E W_U + b_U)
    keep = pairs >= min_count
    x, y = corpus_logp[keep].numpy(), model_logp[keep].numpy()
    return x, y, float(np.corrcoef(x, y)[0, 1]), len(stream)


fits = {name: bigram_fit(bridge) for name, bridge in ((zero_layer_model_name, zero), (model_name, model))}
plots.bigram_fit({name: fit[:3] for name, fit in fits.items()}, name="bigram_fit")
(_, _, r0, n_tok), (_, _, r1, _) = fits.values()
say(f"Over {len(fits[zero_layer_model_name][0]):,} token pairs seen at least {min_count} times in "
    f"{n_tok:,} training tokens, the zero-layer model's direct path correlates with the corpus bigram "
    f"log-probabilities at **r = {r0:.2f}**; the one-layer model's direct path at **r = {r1:.2f}**.")

# %% [markdown]
# ## One layer: skip-trigrams from the QK and OV circuits
#
# Restricted to the `n_trigram_tokens` most frequent tokens, the QK circuit $W_E W_Q W_K^\top W_E^\top$ gives the attention
# score of every destination token on every source token (positional terms left out, centred over
# sources) and the OV circuit $W_E W_V W_O W_U$ the logit change of every output token per unit of
# attention to a source (centred over outputs). For each head we list the source tokens that are
# both strongly attended to by some destination and strongly push some output, with their top
# destinations and the tokens they boost. "copies source" marks rows where the source token is among
# the tokens it boosts.

# %%
w = weights(model)
ids = frequent_tokens(tokenize_stream(model.tokenizer, stdlib_text("train", max_chars=corpus_chars)),
                      n_trigram_tokens, exclude=special_ids(model.tokenizer))
tables = [skip_trigrams(w, model.tokenizer, 0, h, ids, n_sources=n_sources) for h in range(model.cfg.n_heads)]
trigrams = pd.concat(tables, ignore_index=True)
show_table(trigrams.set_index(["head", "source"]))
say(f"In {int(trigrams['copies source'].sum())} of the {len(trigrams)} strongest skip-trigrams listed, the "
    f"source token boosts itself — the head copies what it attends to.")

# %% [markdown]
# ## Copying, measured on the weights
#
# A head that copies maps each token to a higher logit for the same token, so its full OV circuit
# $W_E W_V W_O W_U$ (vocabulary × vocabulary) has mostly **positive eigenvalues**. Following Elhage et
# al. we summarise the spectrum by $\sum_i \lambda_i / \sum_i |\lambda_i|$: +1 for a pure copier,
# −1 for a head that suppresses what it attends to. The non-zero eigenvalues of the
# vocabulary-sized product equal those of the small $d_\text{head} \times d_\text{head}$ product
# $W_O W_U W_E W_V$, which is what we compute.

# %%
eigenvalues = {head_name(0, h): ov_eigenvalues(w, 0, h) for h in range(model.cfg.n_heads)}  # of W_O W_U W_E W_V
copying = ov_copying_scores(w)[0]     # sum of eigenvalues / sum of their moduli, per head
plots.ov_eigenvalues(eigenvalues, copying.tolist(), name="ov_eigenvalues")

# %%
order = copying.argsort(descending=True)
say(f"Copying scores of the {model.cfg.n_heads} heads range from {float(copying.min()):+.2f} to "
    f"{float(copying.max()):+.2f}; **{int((copying > 0.5).sum())}** exceed +0.5 "
    f"(strongest: {head_name(0, int(order[0]))}, {float(copying[order[0]]):+.2f}), "
    f"{int((copying < 0).sum())} are negative.")

# %% [markdown]
# ## What it means
#
# With no attention layer, all the model can do is learn which token tends to follow which, and its
# direct path is close to the corpus bigram table. One attention layer adds skip-trigrams, and on
# source code many of the strongest ones copy: a name that appeared earlier in the file becomes more
# likely to appear again. The copying scores show this is not an accident of the examples picked —
# most heads' OV circuits are dominated by positive eigenvalues. Copying from *anywhere* earlier is
# the crude form of in-context learning that a second layer turns into induction (next chapter).
