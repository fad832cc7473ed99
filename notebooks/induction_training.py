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
batch = 16                   # repeated random sequences
early_pos = 5                # ICL score: loss around this position ...
late_pos = 55                # ... subtracted from the loss around this one
seed = 0

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import display
from tqdm.auto import tqdm

from shared.analysis import framework as fw
from shared.zoo.text.stdlib import stdlib_text
from shared.errors import ParameterError
from shared.zoo.registry import checkpoint_steps, load_model, local_models, model_metrics
from shared.chapters.common import report_run, say, seed_everything

if model_name not in local_models():
    raise ParameterError(f"This chapter reads saved training checkpoints, which only local models have; "
                         f"choose one of {sorted(local_models())} instead of {model_name!r}.")
seed_everything(seed)
model = load_model(model_name)
report_run(model, max_checkpoints=max_checkpoints, n_prompts=n_prompts, seq_len=seq_len, batch=batch,
           early_pos=early_pos, late_pos=late_pos, seed=seed)
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
bos = model.tokenizer.bos_token_id
stream = fw.tokenize_stream(model.tokenizer, stdlib_text("validation"))
windows = fw.text_windows(stream, model.cfg.n_ctx, n_prompts, seed, bos_id=bos)
records, position_losses, prefix = [], [], []
for step in tqdm(steps, desc="checkpoints"):
    m = load_model(model_name, step=step)
    pos_loss = fw.loss_by_position(m, windows)
    pm = fw.prefix_matching_scores(m, seq_len, batch, seed)
    position_losses.append(pos_loss)
    prefix.append(pm)
    records.append({"step": step, "tokens": int(step * tokens_per_step), "validation loss": float(pos_loss.mean()),
                    "ICL score": fw.icl_score(pos_loss, early_pos, late_pos),
                    "best prefix matching": float(pm.max()),
                    "best head": fw.head_label(*fw.top_heads(pm, 1.0)[0])})
history = pd.DataFrame(records).set_index("step")
prefix = torch.stack(prefix)                     # [checkpoint, layer, head]
position_losses = torch.stack(position_losses)   # [checkpoint, pos]
display(history.round(3))

# %% [markdown]
# ## Result

# %%
n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
tokens_seen = np.maximum(history["tokens"].to_numpy(), 1)
final = prefix[-1]
# The phase change: the interval where the best prefix-matching score rises the most,
# and the interval where the ICL score falls the most.
best_pm = history["best prefix matching"].to_numpy()
icl = history["ICL score"].to_numpy()
jump = int(np.argmax(np.diff(best_pm)))
drop = int(np.argmin(np.diff(icl)))

fig, axes = plt.subplots(3, 1, figsize=(9, 10), sharex=True, constrained_layout=True)
axes[0].plot(tokens_seen, history["validation loss"], marker="o")
axes[0].set_ylabel("validation loss (nats)")
axes[1].plot(tokens_seen, icl, marker="o", color="tab:purple")
axes[1].axhline(0, color="grey", lw=0.5)
axes[1].set_ylabel(f"ICL score\n(loss@{late_pos} − loss@{early_pos})")
top = set(fw.top_heads(final, 0.3)[:4])
for layer in range(n_layers):
    for head in range(n_heads):
        is_top = (layer, head) in top
        axes[2].plot(tokens_seen, prefix[:, layer, head], lw=2 if is_top else 0.8, alpha=1 if is_top else 0.4,
                     color=None if is_top else ("tab:grey" if layer == 0 else "tab:olive"),
                     label=fw.head_label(layer, head) if is_top else None)
axes[2].set_ylabel("prefix-matching score")
axes[2].set_xlabel("training tokens seen")
axes[2].legend(title="final top heads", fontsize=8)
for ax in axes:
    ax.axvspan(tokens_seen[jump], tokens_seen[jump + 1], color="orange", alpha=0.2)
    ax.set_xscale("log")
axes[0].set_title("Shaded: the checkpoint interval where prefix matching rises the most")
plt.show()

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
fig, ax = plt.subplots(figsize=(9, 4.5))
colors = plt.cm.viridis(np.linspace(0, 1, len(steps)))
for i, step in enumerate(steps):
    ax.plot(np.arange(1, position_losses.shape[1] + 1), position_losses[i], color=colors[i], lw=1,
            label=f"step {step}" if i in (0, jump, jump + 1, len(steps) - 1) else None)
ax.set_xscale("log")
ax.set_xlabel("token position in the window")
ax.set_ylabel("validation loss (nats)")
ax.set_ylim(position_losses[-1].min() - 0.2, position_losses[len(steps) // 3:].max() + 0.3)
ax.legend()
plt.show()

# %% [markdown]
# ## What it means
#
# If the shaded interval is where both the prefix-matching score and the ICL score move, the model
# acquires its induction heads and its ability to use context at the same moment, as Olsson et al.
# report for much larger models. Log-spaced checkpoints resolve this moment only to within one
# interval; the chapter *Two attention layers* identifies the heads in the final model and shows
# by ablation that they are what makes repeated text predictable.
