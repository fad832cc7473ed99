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
# # Induction heads across training: is there a phase change?
#
# Olsson et al. (2022) found that induction heads appear abruptly, in a short window early in
# training, and that in the same window the model suddenly gets much better at using its context:
# the loss on late tokens of a text drops compared with early tokens, and the training loss shows
# a visible bump. Does the two-layer model trained in this book go through the same phase change,
# and do the two events coincide?

# %% tags=["remove-cell"]
# On Colab, install the book's code and shipped models first (this cell does nothing elsewhere).
import sys
if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/circuits-book/circuits-book")  # noqa: F821

# %% tags=["parameters"]
model_name = "attn-only-2l"  # a local model with saved checkpoints
max_checkpoints = 0          # analyse at most this many saved checkpoints (0: all)
n_prompts = 96               # validation text windows for the loss by position
seq_len = 25                 # repeated random sequence length for prefix matching
n_repeated = 16              # repeated random sequences for prefix matching
early_pos = 5                # ICL score: loss around this position ...
late_pos = 55                # ... subtracted from the loss around this one
seed = 0

# %%
import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from shared.analysis.heads import prefix_matching_scores, top_heads
from shared.analysis.text import icl_score, loss_by_position, text_windows, tokenize_stream
from shared.chapters import open_chapter, say, show_table
from shared.errors import ParameterError
from shared.plots import framework as plots
from shared.tasks.repeated import repeated_tokens_for
from shared.zoo.registry import checkpoint_steps, load_model, local_models, model_metrics
from shared.zoo.text.stdlib import stdlib_text

ch = open_chapter("induction_training", model_name=model_name, max_checkpoints=max_checkpoints,
                  n_prompts=n_prompts, seq_len=seq_len, n_repeated=n_repeated, early_pos=early_pos,
                  late_pos=late_pos, seed=seed)
model = ch.model
if model_name not in local_models():
    raise ParameterError(f"This chapter reads saved training checkpoints, which only local models have; "
                         f"choose one of {sorted(local_models())} instead of {model_name!r}.")
if not 0 <= early_pos < late_pos < model.cfg.n_ctx - 1:
    raise ParameterError(f"Need 0 <= early_pos < late_pos < {model.cfg.n_ctx - 1} (got {early_pos}, {late_pos}).")
steps = checkpoint_steps(model_name)
if max_checkpoints and len(steps) > max_checkpoints:  # keep first, last and evenly spread ones
    steps = [steps[int(i)] for i in np.unique(np.linspace(0, len(steps) - 1, max_checkpoints).round())]

# %% [markdown]
# ## Method
#
# The model saved its weights at log-spaced steps during training. For each checkpoint we measure,
# on held-out text and on synthetic sequences:
#
# * the **loss by token position** on random windows of the validation split (each starting with
#   the BOS token), and its mean — the validation loss;
# * the **in-context-learning (ICL) score**: the loss around position `late_pos` minus the loss
#   around position `early_pos` (averaged over ±4 positions). It is negative when tokens late in a
#   window are easier to predict than early ones, i.e. when the model uses its context;
# * each head's **prefix-matching score**: on repeated random token sequences, the attention from a
#   token to the token that followed its earlier occurrence (the defining behaviour of an
#   induction head).

# %%
metrics = model_metrics(model_name)
tokens_per_step = metrics["tokens_seen"] / max(steps[-1], 1)
stream = tokenize_stream(model.tokenizer, stdlib_text("validation"))
windows = text_windows(stream, model.cfg.n_ctx, n_prompts, seed, bos_id=model.tokenizer.bos_token_id)
repeated = repeated_tokens_for(model, seq_len, n_repeated, seed)   # [BOS] t1 .. tn t1 .. tn
records, position_losses, prefix = [], [], []
for step in tqdm(steps, desc="checkpoints"):
    m = load_model(model_name, step=step)
    pos_loss = loss_by_position(m, windows)                          # [position]
    pm = prefix_matching_scores(m, repeated.tokens, seq_len)         # [layer, head]
    position_losses.append(pos_loss)
    prefix.append(pm)
    records.append({"step": step, "tokens": int(step * tokens_per_step), "validation loss": float(pos_loss.mean()),
                    "ICL score": icl_score(pos_loss, early_pos, late_pos),
                    "best prefix matching": float(pm.max()), "best head": top_heads(pm, 1.0)[0]})
history = pd.DataFrame(records).set_index("step")
prefix = torch.stack(prefix)                     # [checkpoint, layer, head]
position_losses = torch.stack(position_losses)   # [checkpoint, pos]
show_table(history, digits=3)

# %% [markdown]
# ## Result

# %%
tokens_seen = np.maximum(history["tokens"].to_numpy(), 1)
# The phase change: the interval where the best prefix-matching score rises the most,
# and the interval where the ICL score falls the most.
best_pm = history["best prefix matching"].to_numpy()
icl = history["ICL score"].to_numpy()
jump = int(np.argmax(np.diff(best_pm)))
drop = int(np.argmin(np.diff(icl)))
plots.phase_change(tokens_seen, history["validation loss"], icl, prefix, top_heads(prefix[-1], 0.3)[:4],
                   (jump, jump + 1), f"ICL score\n(loss@{late_pos} − loss@{early_pos})", name="phase_change")

# %%
same = abs(jump - drop) <= 1
say(f"The best prefix-matching score rises the most between steps {steps[jump]} and {steps[jump + 1]} "
    f"(≈{history['tokens'].iloc[jump]:,} → {history['tokens'].iloc[jump + 1]:,} tokens), from "
    f"{best_pm[jump]:.2f} to {best_pm[jump + 1]:.2f}; at the end the best head is "
    f"**{history['best head'].iloc[-1]}** with {best_pm[-1]:.2f}. The ICL score falls the most between steps "
    f"{steps[drop]} and {steps[drop + 1]} ({icl[drop]:+.2f} → {icl[drop + 1]:+.2f} nats; final {icl[-1]:+.2f}). "
    + ("**The two coincide** (same or adjacent checkpoint interval)." if same else
       "The two do **not** fall in the same or adjacent checkpoint intervals."))

# %% [markdown]
# ### Loss by token position
#
# Each curve is one checkpoint. Before the phase change the loss hardly depends on the position;
# after it, later tokens — which can look further back for an earlier occurrence of their prefix
# — are predicted better.

# %%
plots.loss_by_position(position_losses, steps, (0, jump, jump + 1, len(steps) - 1), name="loss_by_position")

# %% [markdown]
# ## What it means
#
# If the shaded interval is where both the prefix-matching score and the ICL score move, the model
# acquires its induction heads and its ability to use context at the same moment, as Olsson et al.
# report for much larger models. Log-spaced checkpoints resolve this moment only to within one
# interval; the chapter *Two attention layers* identifies the heads in the final model and shows
# by ablation that they are what makes repeated text predictable.
