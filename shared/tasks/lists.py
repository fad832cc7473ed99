"""Toy algorithmic tasks (find the minimum, find the median) and the tools to read their circuits.

Sequence layout for a list of ``L`` integers drawn from ``0..V-1`` (``SEP = V``, ``PAD = V + 1``)::

    x_1 ... x_L  SEP  answer  PAD ... PAD

The prediction made *at* the ``SEP`` token (position ``L``) is the answer; padding only follows the
answer, so with causal attention it never influences it. Sequences of different lengths share a
batch. ``answer`` is the minimum, or the median: for even ``L`` the *lower* median
(``sorted(x)[(L - 1) // 2]``).

The held-out split is by multiset: a fixed hash of the sorted values decides whether a list is a
test list, so no training list is a reordering of a test list. Training batches reject test lists.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from shared.errors import ParameterError

TASKS = ("min", "median")
TEST_FRACTION = 0.2  # share of multisets reserved for the held-out split
_HASH_MOD = 2_147_483_629  # a prime below 2**31: hashing stays inside int64


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------

def reference_answer(task: str, values: Sequence[int]) -> int:
    """Brute-force answer by plain Python (the ground truth the generator is checked against)."""
    values = list(values)
    if task == "min":
        return min(values)
    if task == "median":
        return sorted(values)[(len(values) - 1) // 2]
    raise ParameterError(f"Unknown task {task!r}; choose one of {', '.join(TASKS)}.")


def check_task(task: str, n: int, V: int, repeats: bool = False, n_min: Optional[int] = None) -> None:
    """Raise :class:`ParameterError` for settings the generator cannot produce."""
    if task not in TASKS:
        raise ParameterError(f"Unknown task {task!r}; choose one of {', '.join(TASKS)}.")
    if n < 2:
        raise ParameterError(f"The sequence length n must be at least 2, got {n}.")
    if n_min is not None and not 2 <= n_min <= n:
        raise ParameterError(f"The shortest length n_min must lie between 2 and n={n}, got {n_min}.")
    if V < 2:
        raise ParameterError(f"The vocabulary size V must be at least 2, got {V}.")
    if not repeats and V < n:
        raise ParameterError(f"Without repeats a list of {n} values needs V >= {n}, got V={V}.")


@dataclass
class AlgoData:
    """A batch of task sequences: ``tokens`` [batch, width], ``lengths``/``answers`` [batch]."""

    task: str
    V: int
    tokens: torch.Tensor
    lengths: torch.Tensor
    answers: torch.Tensor

    @property
    def sep(self) -> int:
        return self.V

    @property
    def answer_pos(self) -> torch.Tensor:
        """Position whose next-token prediction is the answer (the SEP token)."""
        return self.lengths

    def values(self, i: int) -> list[int]:
        return self.tokens[i, : int(self.lengths[i])].tolist()

    def mask(self) -> torch.Tensor:
        """[batch, width-1] mask selecting only the answer prediction (for ``train.lm_loss``)."""
        pos = torch.arange(self.tokens.shape[1] - 1)
        return pos[None, :] == self.lengths[:, None]

    def value_mask(self) -> torch.Tensor:
        """[batch, width] True at the list positions (not SEP, answer or padding)."""
        return torch.arange(self.tokens.shape[1])[None, :] < self.lengths[:, None]

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def subset(self, idx: torch.Tensor) -> "AlgoData":
        return AlgoData(self.task, self.V, self.tokens[idx], self.lengths[idx], self.answers[idx])

    def labels(self, i: int) -> list[str]:
        """Readable tokens of example ``i`` up to and including SEP."""
        return [str(v) for v in self.values(i)] + ["SEP"]


def split_of(values: torch.Tensor, lengths: torch.Tensor, V: int) -> torch.Tensor:
    """True where a list belongs to the held-out split (hash of its sorted values and length)."""
    width = values.shape[1]
    valid = torch.arange(width)[None, :] < lengths[:, None]
    ordered = torch.where(valid, values, torch.full_like(values, V + 7)).sort(dim=1).values
    h = lengths.long() * 7919 + 12345
    for i in range(width):
        h = torch.where(valid[:, i], (h * (V + 11) + ordered[:, i] + 1) % _HASH_MOD, h)
    h = (h * 48271) % _HASH_MOD  # one extra mixing round before bucketing
    return (h % 1000) < int(TEST_FRACTION * 1000)


def _raw_batch(task: str, count: int, V: int, lengths: torch.Tensor, width: int,
               repeats: bool, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    n_max = int(lengths.max())
    if repeats:
        values = torch.randint(0, V, (count, n_max), generator=gen)
    else:
        values = torch.rand(count, V, generator=gen).argsort(dim=1)[:, :n_max]
    valid = torch.arange(n_max)[None, :] < lengths[:, None]
    big = torch.where(valid, values, torch.full_like(values, V + 7))
    if task == "min":
        answers = big.min(dim=1).values
    else:
        answers = big.sort(dim=1).values.gather(1, ((lengths - 1) // 2)[:, None]).squeeze(1)
    tokens = torch.full((count, width), V + 1, dtype=torch.long)
    tokens[:, :n_max] = torch.where(valid, values, torch.full_like(values, V + 1))
    rows = torch.arange(count)
    tokens[rows, lengths] = V
    tokens[rows, lengths + 1] = answers
    return tokens, answers


def make_data(task: str, V: int, count: int, lengths: Sequence[int] | int, split: str = "train",
              repeats: bool = False, seed: int = 0, width: Optional[int] = None) -> AlgoData:
    """``count`` sequences of the ``split`` ("train", "test" or "any"), lengths drawn from ``lengths``.

    ``width`` (default: longest length + 2) pads every row to the same number of positions.
    """
    lengths = [lengths] if isinstance(lengths, int) else list(lengths)
    for L in lengths:
        check_task(task, L, V, repeats)
    if split not in ("train", "test", "any"):
        raise ParameterError(f"Unknown split {split!r}; use 'train', 'test' or 'any'.")
    width = width or max(lengths) + 2
    if width < max(lengths) + 2:
        raise ParameterError(f"Width {width} cannot hold lists of length {max(lengths)} plus SEP and answer.")
    gen = torch.Generator().manual_seed(seed)
    choices = torch.tensor(lengths)
    got_t, got_l, got_a, have = [], [], [], 0
    for _ in range(200):
        draw = max(2 * (count - have), 64) if split == "train" else max(8 * (count - have), 256)
        L = choices[torch.randint(len(choices), (draw,), generator=gen)]
        tokens, answers = _raw_batch(task, draw, V, L, width, repeats, gen)
        if split != "any":
            held = split_of(tokens, L, V)
            keep = held if split == "test" else ~held
            tokens, L, answers = tokens[keep], L[keep], answers[keep]
        got_t.append(tokens), got_l.append(L), got_a.append(answers)
        have += len(L)
        if have >= count:
            break
    else:
        raise ParameterError(f"Could not draw {count} {split} lists of lengths {lengths} over V={V}; "
                             f"there are too few distinct lists, ask for fewer.")
    return AlgoData(task, V, torch.cat(got_t)[:count], torch.cat(got_l)[:count], torch.cat(got_a)[:count])


def test_set(recipe: dict[str, Any], count: Optional[int] = None, lengths: Optional[Sequence[int]] = None,
             repeats: Optional[bool] = None, seed_offset: int = 0) -> AlgoData:
    """The held-out set of a model's recipe (same lengths and repeat rule unless overridden)."""
    lengths = list(lengths) if lengths is not None else training_lengths(recipe)
    width = recipe["n"] + 2 + recipe.get("extra_positions", 0)
    return make_data(recipe["task"], recipe["V"], count or recipe.get("test_size", 2000), lengths, "test",
                     recipe.get("repeats", False) if repeats is None else repeats,
                     seed=10_000 + recipe.get("seed", 0) + seed_offset, width=max(width, max(lengths) + 2))


def training_lengths(recipe: dict[str, Any]) -> list[int]:
    return list(range(recipe.get("n_min", recipe["n"]), recipe["n"] + 1))


# ----------------------------------------------------------------------------------------------
# Running the model
# ----------------------------------------------------------------------------------------------

def _rows(data: AlgoData) -> torch.Tensor:
    return torch.arange(len(data))


@torch.no_grad()
def answer_logits(bridge: Any, data: AlgoData, batch_size: int = 1000,
                  fwd_hooks: Optional[list] = None) -> torch.Tensor:
    """Logits [batch, vocab] predicted at the SEP position (optionally with hooks)."""
    out = []
    for start in range(0, len(data), batch_size):
        part = data.subset(torch.arange(start, min(start + batch_size, len(data))))
        tokens = part.tokens[:, : int(part.lengths.max()) + 1]
        if fwd_hooks:
            logits = bridge.run_with_hooks(tokens, fwd_hooks=fwd_hooks)
        else:
            logits = bridge.original_model(tokens)
        out.append(logits[_rows(part), part.lengths])
    return torch.cat(out)


def predictions(bridge: Any, data: AlgoData, **kw: Any) -> torch.Tensor:
    return answer_logits(bridge, data, **kw).argmax(-1)


def accuracy(bridge: Any, data: AlgoData, **kw: Any) -> float:
    """Share of sequences whose top prediction (over the whole vocabulary) is the right answer."""
    return float((predictions(bridge, data, **kw) == data.answers).float().mean())


# ----------------------------------------------------------------------------------------------
# Reading the circuit
# ----------------------------------------------------------------------------------------------

def head_names(bridge: Any) -> list[str]:
    return [f"L{l}H{h}" for l in range(bridge.cfg.n_layers) for h in range(bridge.cfg.n_heads)]


@torch.no_grad()
def run_cache(bridge: Any, data: AlgoData, names: Callable[[str], bool]) -> dict[str, torch.Tensor]:
    """Activations whose hook name passes ``names``, for all of ``data`` (full width)."""
    _, cache = bridge.run_with_cache(data.tokens, names_filter=names)
    return {k: v for k, v in cache.items()}


@torch.no_grad()
def answer_attention(bridge: Any, data: AlgoData, scores: bool = False) -> torch.Tensor:
    """Attention (or pre-softmax scores ``q.k / sqrt(d_head)``) from the SEP position: [batch, layer, head, src].

    Scores are recomputed from ``hook_q``/``hook_k`` (the bridge's ``hook_attn_scores`` may already
    hold the softmax) and centred: the mean score over the list's tokens is subtracted per example
    and head (softmax ignores such shifts; without it averages mix per-list offsets). Causally masked
    sources get ``-inf``.
    """
    rows = _rows(data)
    if not scores:
        cache = run_cache(bridge, data, lambda n: n.endswith("hook_pattern"))
        return torch.stack([cache[f"blocks.{l}.attn.hook_pattern"][rows, :, data.lengths]
                            for l in range(bridge.cfg.n_layers)], dim=1)
    cache = run_cache(bridge, data, lambda n: n.endswith(("hook_q", "hook_k")))
    out = []
    for l in range(bridge.cfg.n_layers):
        q = cache[f"blocks.{l}.attn.hook_q"][rows, data.lengths]  # [batch, head, d_head]
        k = cache[f"blocks.{l}.attn.hook_k"]  # [batch, pos, head, d_head]
        s = torch.einsum("bhd,bphd->bhp", q, k) / bridge.cfg.d_head ** 0.5
        later = torch.arange(k.shape[1])[None, :] > data.lengths[:, None]
        valid = data.value_mask()[:, None, : k.shape[1]]
        mean = torch.where(valid, s, torch.zeros_like(s)).sum(-1, keepdim=True) / data.lengths[:, None, None]
        out.append((s - mean).masked_fill(later[:, None, :], float("-inf")))
    return torch.stack(out, dim=1)


def value_ranks(data: AlgoData) -> torch.Tensor:
    """[batch, width] rank of each list value among its list (0 = smallest; ties by position); -1 elsewhere."""
    valid = data.value_mask()
    keyed = torch.where(valid, data.tokens * 1000 + torch.arange(data.tokens.shape[1]), torch.full_like(data.tokens, 10**9))
    ranks = keyed.argsort(dim=1).argsort(dim=1)
    return torch.where(valid, ranks, torch.full_like(ranks, -1))


def attention_by(data: AlgoData, attn: torch.Tensor, key: str = "value", relative: bool = False) -> np.ndarray:
    """Mean of ``attn`` [batch, layer, head, src] over list positions, grouped by the key's value or rank.

    Returns [layer, head, groups] (NaN for empty groups). ``key="rank"`` groups by rank among the
    list; with ``relative=True`` rank minus the median rank ``(L - 1) // 2`` (group ``width`` is 0).
    ``key="offset"`` groups by key value minus the answer (group ``V`` is 0).
    """
    valid = data.value_mask()
    width = data.tokens.shape[1]
    if key == "value":
        group, groups = data.tokens, data.V
    elif key == "offset":
        group, groups = data.tokens - data.answers[:, None] + data.V, 2 * data.V
    elif key == "rank":
        group = value_ranks(data)
        groups = width
        if relative:
            group = group - ((data.lengths - 1) // 2)[:, None] + width
            groups = 2 * width
    else:
        raise ParameterError(f"Group attention by 'value', 'offset' or 'rank', not {key!r}.")
    att = attn[:, :, :, :width].permute(1, 2, 0, 3)[:, :, valid]  # [layer, head, items]
    g = group[valid]
    total = torch.zeros(*att.shape[:2], groups).index_add_(2, g, att.float())
    count = torch.zeros(groups).index_add_(0, g, torch.ones_like(g, dtype=torch.float))
    out = (total / count).numpy()
    out[:, :, count.numpy() == 0] = np.nan
    return out


def monotonicity(curve: np.ndarray) -> dict[str, float]:
    """Spearman correlation of ``curve`` with its index and the share of falling adjacent steps."""
    idx = np.flatnonzero(~np.isnan(curve))
    c = curve[idx]
    rank_c = c.argsort().argsort().astype(float)
    rank_i = np.arange(len(c), dtype=float)
    spearman = float(np.corrcoef(rank_i, rank_c)[0, 1]) if len(c) > 2 else float("nan")
    steps = np.diff(c)
    return {"spearman": spearman, "falling_share": float((steps < 0).mean()), "points": int(len(c))}


@torch.no_grad()
def ov_by_source(bridge: Any, data: AlgoData, layer: int, head: int) -> np.ndarray:
    """OV circuit read from activations: [source value, output value] mean direct logit effect.

    For every list token, its value vector through the head's ``W_O`` and the unembedding gives the
    logits it would add at the answer if fully attended. Rows are averaged over tokens with the same
    value (all positions and contexts) and centred over the output values.
    """
    v = run_cache(bridge, data, lambda n: n == f"blocks.{layer}.attn.hook_v")[f"blocks.{layer}.attn.hook_v"]
    direct = v[:, :, head] @ bridge.W_O[layer, head] @ bridge.W_U[:, : data.V]  # [batch, pos, V]
    valid = data.value_mask()
    vals, eff = data.tokens[valid], direct[valid]
    total = torch.zeros(data.V, data.V).index_add_(0, vals, eff)
    count = torch.zeros(data.V).index_add_(0, vals, torch.ones(len(vals)))
    out = total / count[:, None].clamp_min(1)
    out = out - out.mean(dim=1, keepdim=True)
    out[count == 0] = float("nan")
    return out.numpy()


def copying_score(ov: np.ndarray) -> float:
    """Share of source values (rows with data) whose largest output effect is on the same value."""
    rows = np.flatnonzero(~np.isnan(ov[:, 0]))
    return float((np.nanargmax(ov[rows], axis=1) == rows).mean())


@torch.no_grad()
def direct_logit_attribution(bridge: Any, data: AlgoData) -> "pd.Series":
    """Mean direct contribution of each component to ``logit(answer) - mean logit over values``.

    Components: token+position embeddings, every head (its ``z @ W_O``), every MLP, and all biases
    together. Without LayerNorm they add up exactly to the final logit difference (checked).
    """
    import pandas as pd

    cfg = bridge.cfg
    cache = run_cache(bridge, data, lambda n: n.endswith(("hook_z", "hook_mlp_out", "hook_embed", "hook_pos_embed")))
    rows, pos = _rows(data), data.lengths
    direction = bridge.W_U[:, data.answers].T - bridge.W_U[:, : data.V].mean(dim=1)  # [batch, d_model]
    out: dict[str, torch.Tensor] = {}
    out["embed"] = ((cache["hook_embed"][rows, pos] + cache["hook_pos_embed"][rows, pos]) * direction).sum(-1)
    bias = torch.zeros(cfg.d_model)
    for l in range(cfg.n_layers):
        z = cache[f"blocks.{l}.attn.hook_z"][rows, pos]  # [batch, head, d_head]
        for h in range(cfg.n_heads):
            out[f"L{l}H{h}"] = ((z[:, h] @ bridge.W_O[l, h]) * direction).sum(-1)
        bias = bias + bridge.b_O[l]
        if not cfg.attn_only:
            mlp = cache[f"blocks.{l}.hook_mlp_out"][rows, pos]
            out[f"MLP{l}"] = (mlp * direction).sum(-1)
    out["biases"] = (bias * direction).sum(-1)
    logits = answer_logits(bridge, data)
    actual = logits[rows, data.answers] - logits[:, : data.V].mean(-1)
    bu = bridge.b_U[data.answers] - bridge.b_U[: data.V].mean()
    out["biases"] = out["biases"] + bu
    total = sum(out.values())
    if not torch.allclose(total, actual, atol=1e-3 * max(1.0, float(actual.abs().max()))):
        raise RuntimeError("Direct logit attribution does not add up to the logits; the model has LayerNorm?")
    return pd.Series({k: float(v.mean()) for k, v in out.items()}, name="mean logit difference")


def _mean_ablate_hook(mean: torch.Tensor, head: Optional[int]):
    def hook(act: torch.Tensor, hook: Any = None) -> torch.Tensor:
        act = act.clone()
        width = act.shape[1]
        if head is None:
            act[:] = mean[:width]
        else:
            act[:, :, head] = mean[:width, head]
        return act
    return hook


@torch.no_grad()
def ablation_accuracy(bridge: Any, data: AlgoData, reference: Optional[AlgoData] = None) -> "pd.DataFrame":
    """Accuracy when one head's output (``hook_z``) or one MLP's output is mean-ablated.

    The mean is taken per position over ``reference`` (default: ``data``), so every position keeps
    its average behaviour and only the information specific to the list is removed.
    """
    import pandas as pd

    cfg = bridge.cfg
    reference = reference or data
    cache = run_cache(bridge, reference, lambda n: n.endswith(("hook_z", "hook_mlp_out")))
    base = accuracy(bridge, data)
    rows = []
    items = [(l, h) for l in range(cfg.n_layers) for h in range(cfg.n_heads)]
    if not cfg.attn_only:
        items += [(l, None) for l in range(cfg.n_layers)]
    for l, h in tqdm(items, desc="ablating", leave=False):
        if h is None:
            name, label = f"blocks.{l}.hook_mlp_out", f"MLP{l}"
        else:
            name, label = f"blocks.{l}.attn.hook_z", f"L{l}H{h}"
        mean = cache[name].mean(0)
        acc = accuracy(bridge, data, fwd_hooks=[(name, _mean_ablate_hook(mean, h))])
        rows.append({"component": label, "accuracy": acc, "drop": base - acc})
    return pd.DataFrame(rows).set_index("component")


# ----------------------------------------------------------------------------------------------
# Failure analysis
# ----------------------------------------------------------------------------------------------

def accuracy_by_length(bridge: Any, recipe: dict[str, Any], count: int = 500,
                       repeats: bool = False) -> "pd.DataFrame":
    """Accuracy on held-out lists of every length the model's context allows (2 .. n + extra)."""
    import pandas as pd

    trained = set(training_lengths(recipe))
    longest = bridge.cfg.n_ctx - 2
    rows = []
    for L in tqdm(range(2, longest + 1), desc="lengths", leave=False):
        if not repeats and L > recipe["V"]:
            continue
        data = test_set(recipe, count=count, lengths=[L], repeats=repeats, seed_offset=L)
        rows.append({"length": L, "accuracy": accuracy(bridge, data), "trained": L in trained})
    return pd.DataFrame(rows).set_index("length")


def accuracy_by_answer(bridge: Any, data: AlgoData) -> "pd.DataFrame":
    """Accuracy and count per answer value (shows the vocabulary edges)."""
    import pandas as pd

    correct = (predictions(bridge, data) == data.answers).float()
    df = pd.DataFrame({"answer": data.answers.numpy(), "correct": correct.numpy()})
    return df.groupby("answer")["correct"].agg(accuracy="mean", count="size")


def repeat_breakdown(bridge: Any, data: AlgoData) -> "pd.DataFrame":
    """Accuracy on lists with repeats, split by whether the answer value itself is repeated."""
    import pandas as pd

    correct = (predictions(bridge, data) == data.answers)
    valid = data.value_mask()
    answer_count = ((data.tokens == data.answers[:, None]) & valid).sum(1)
    distinct = torch.tensor([len(set(data.values(i))) for i in range(len(data))])
    has_repeat = distinct < data.lengths
    groups = {
        "no repeats": ~has_repeat,
        "repeats, answer once": has_repeat & (answer_count == 1),
        "answer repeated": answer_count > 1,
    }
    return pd.DataFrame([{"lists": k, "count": int(m.sum()),
                          "accuracy": float(correct[m].float().mean()) if m.any() else float("nan")}
                         for k, m in groups.items()]).set_index("lists")


# ----------------------------------------------------------------------------------------------
# Figures (shared by both chapters)
# ----------------------------------------------------------------------------------------------

def plot_training(metrics: dict[str, Any], title: str = "") -> None:
    """Answer loss and held-out accuracy during training."""
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.2))
    loss = np.array(metrics["loss_curve"])
    a.plot(loss[:, 0], loss[:, 1])
    a.set(yscale="log", xlabel="step", ylabel="answer loss (train)", title=title)
    acc = np.array(metrics["test_accuracy_curve"])
    b.plot(acc[:, 0], acc[:, 1], marker=".")
    b.axhline(0.99, color="gray", ls="--", lw=1, label="99%")
    b.set(xlabel="step", ylabel="held-out accuracy", ylim=(0, 1.02))
    b.legend(loc="lower right")
    plt.tight_layout()
    plt.show()


def plot_by_group(curves: dict[str, np.ndarray], xlabel: str, ylabel: str, title: str = "",
                  x: Optional[np.ndarray] = None) -> None:
    """Line plot of several curves indexed by value or rank (NaN points are skipped)."""
    import matplotlib.pyplot as plt

    plt.figure(figsize=(7, 3.4))
    for label, curve in curves.items():
        xs = np.arange(len(curve)) if x is None else x
        ok = ~np.isnan(curve)
        plt.plot(xs[ok], curve[ok], marker=".", label=label)
    plt.xlabel(xlabel), plt.ylabel(ylabel), plt.title(title)
    plt.legend(fontsize=8, ncol=2)
    plt.tight_layout()
    plt.show()


def plot_ov(ov: np.ndarray, title: str) -> None:
    """Heatmap of an OV table [source value, output value]."""
    import matplotlib.pyplot as plt

    lim = np.nanmax(np.abs(ov))
    plt.figure(figsize=(5.2, 4.4))
    plt.imshow(ov, cmap="RdBu_r", vmin=-lim, vmax=lim)
    plt.colorbar(label="direct logit effect (centred)")
    plt.xlabel("output token (value)"), plt.ylabel("attended token (value)"), plt.title(title)
    plt.tight_layout()
    plt.show()


def plot_components(dla: "pd.Series", ablation: "pd.DataFrame", title: str = "") -> None:
    """Direct logit attribution and mean-ablation accuracy drop, side by side."""
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.2))
    dla.plot.bar(ax=a, color="tab:blue")
    a.set(ylabel="logit(answer) - mean logit", title="direct logit attribution")
    ablation["drop"].plot.bar(ax=b, color="tab:red")
    b.set(ylabel="accuracy drop", title="mean ablation", ylim=(0, 1))
    fig.suptitle(title)
    plt.tight_layout()
    plt.show()


def plot_failures(by_length: "pd.DataFrame", by_answer: "pd.DataFrame", repeats: "pd.DataFrame") -> None:
    """Accuracy by list length (trained lengths marked), by answer value, and with repeats."""
    import matplotlib.pyplot as plt

    fig, (a, b, c) = plt.subplots(1, 3, figsize=(13, 3.4), gridspec_kw={"width_ratios": [1.2, 1.2, 0.8]})
    colors = ["tab:green" if t else "tab:orange" for t in by_length["trained"]]
    a.bar(by_length.index, by_length["accuracy"], color=colors)
    a.set(xlabel="list length (green: trained, orange: not)", ylabel="accuracy", ylim=(0, 1.02),
          title="by list length")
    b.plot(by_answer.index, by_answer["accuracy"], marker=".")
    b.set(xlabel="answer value", ylabel="accuracy", ylim=(0, 1.02), title="by answer value")
    c.bar(range(len(repeats)), repeats["accuracy"], color="tab:purple")
    c.set_xticks(range(len(repeats)), [k.replace(", ", ",\n") for k in repeats.index], fontsize=8)
    c.set(ylabel="accuracy", ylim=(0, 1.02), title="with repeated values")
    plt.tight_layout()
    plt.show()


# ----------------------------------------------------------------------------------------------
# Summary used by both chapters
# ----------------------------------------------------------------------------------------------

def attention_on_answer(data: AlgoData, attn: torch.Tensor) -> np.ndarray:
    """[layer, head] mean attention from SEP onto list tokens whose value is the answer."""
    width = data.tokens.shape[1]
    hit = (data.tokens == data.answers[:, None]) & data.value_mask()
    return (attn[..., :width] * hit[:, None, None, :]).sum(-1).mean(0).numpy()


def circuit_summary(bridge: Any, data: AlgoData) -> dict[str, Any]:
    """Key numbers of a model on ``data``: accuracy, deciding head, its attention, QK and OV readouts."""
    ablation = ablation_accuracy(bridge, data)
    heads = ablation.loc[[i for i in ablation.index if i.startswith("L")]]
    top = heads["drop"].idxmax()
    layer, head = int(top[1]), int(top[3:])
    attn = answer_attention(bridge, data)
    scores = answer_attention(bridge, data, scores=True)
    by_value = attention_by(data, scores, "value")[layer, head]
    return {
        "accuracy": accuracy(bridge, data),
        "ablation": ablation,
        "deciding_head": top,
        "layer": layer,
        "head": head,
        "attention_on_answer": attention_on_answer(data, attn),
        "qk_by_value": by_value,
        "qk_monotonicity": monotonicity(by_value),
        "copying": copying_score(ov_by_source(bridge, data, layer, head)),
    }


# ----------------------------------------------------------------------------------------------
# Median: evidence and interventions
# ----------------------------------------------------------------------------------------------

def distance_from_uniform(data: AlgoData, attn: torch.Tensor) -> np.ndarray:
    """[layer, head] mean total-variation distance between SEP's attention and uniform over the list.

    0 means the head averages the list tokens equally (it counts: its output is the list's value
    histogram divided by the length); 1 means it ignores the list.
    """
    width = data.tokens.shape[1]
    L = data.lengths.float()[:, None, None]
    valid = data.value_mask()[:, None, None, :]
    a = attn[..., :width]
    off = torch.where(valid, (a - 1 / L[..., None]).abs(), torch.zeros_like(a)).sum(-1)
    rest = torch.where(valid, torch.zeros_like(a), a).sum(-1)  # mass on SEP and beyond
    return (0.5 * (off + rest)).mean(0).numpy()


def _free_value(values: list[int], lo: int, hi: int, rng: np.random.Generator) -> Optional[int]:
    options = [v for v in range(lo, hi) if v not in values]
    return int(rng.choice(options)) if options else None


def median_edits(data: AlgoData, kind: str, seed: int = 0) -> tuple[AlgoData, torch.Tensor, torch.Tensor]:
    """Edit one list token per example and predict the new median from the rank rule.

    ``kind``: ``"low_to_high"`` (a token below the median is raised above the maximum: the answer
    becomes the next-larger list value), ``"high_to_low"`` (a token above the median drops below the
    minimum: the answer becomes the next-smaller value) or ``"same_side"`` (a token below the median
    moves to another unused value below the median: the answer stays). Returns the edited data (only
    examples where the edit is possible), the predicted answers and the indices kept.
    """
    if kind not in ("low_to_high", "high_to_low", "same_side"):
        raise ParameterError(f"Unknown edit {kind!r}; use 'low_to_high', 'high_to_low' or 'same_side'.")
    rng = np.random.default_rng(seed)
    tokens = data.tokens.clone()
    predicted, keep = [], []
    for i in range(len(data)):
        vals = data.values(i)
        L, order = len(vals), sorted(vals)
        m = (L - 1) // 2
        below = [p for p, v in enumerate(vals) if v < order[m]]
        above = [p for p, v in enumerate(vals) if v > order[m]]
        if kind == "low_to_high" and below and m + 1 < L:
            pos, new, answer = rng.choice(below), _free_value(vals, order[-1] + 1, data.V, rng), order[m + 1]
        elif kind == "high_to_low" and above and m >= 1:
            pos, new, answer = rng.choice(above), _free_value(vals, 0, order[0], rng), order[m - 1]
        elif kind == "same_side" and below:
            pos, new, answer = rng.choice(below), _free_value(vals, 0, order[m], rng), order[m]
        else:
            continue
        if new is None:
            continue
        tokens[i, pos] = new
        tokens[i, L + 1] = answer
        predicted.append(answer)
        keep.append(i)
    idx = torch.tensor(keep, dtype=torch.long)
    edited = AlgoData(data.task, data.V, tokens[idx], data.lengths[idx], torch.tensor(predicted, dtype=torch.long))
    return edited, edited.answers, idx


def edit_intervention(bridge: Any, data: AlgoData, seed: int = 0) -> "pd.DataFrame":
    """Model answers after each kind of input edit versus the rank rule's prediction."""
    import pandas as pd

    rows = []
    for kind in ("low_to_high", "high_to_low", "same_side"):
        edited, predicted, idx = median_edits(data, kind, seed)
        before = predictions(bridge, data.subset(idx))
        after = predictions(bridge, edited)
        rows.append({"edit": kind, "examples": len(idx),
                     "answer changed": float((after != before).float().mean()),
                     "rule predicted change": float((predicted != data.answers[idx]).float().mean()),
                     "model = rule prediction": float((after == predicted).float().mean())})
    return pd.DataFrame(rows).set_index("edit")


@torch.no_grad()
def sep_patching(bridge: Any, data: AlgoData, layer: int = 0, seed: int = 0,
                 hook: Optional[str] = None) -> "pd.DataFrame":
    """Patch the residual stream after ``layer`` (or activation ``hook``) from a low-to-high edited list into the clean run.

    Patching only the SEP position tests whether SEP's state (which has seen the whole list) sets the
    target: the clean run should then output the edited list's median, the next-larger clean value.
    Patching every list position instead (SEP kept clean) should leave the clean median.
    """
    import pandas as pd

    edited, new_answer, idx = median_edits(data, "low_to_high", seed)
    clean = data.subset(idx)
    name = hook or f"blocks.{layer}.hook_resid_post"
    corrupt = run_cache(bridge, edited, lambda n: n == name)[name]
    rows = _rows(clean)

    def patch(where: str):
        def hook(act: torch.Tensor, hook: Any = None) -> torch.Tensor:
            act = act.clone()
            width = act.shape[1]
            if where == "SEP":
                act[rows, clean.lengths] = corrupt[rows, clean.lengths]
            else:
                mask = clean.value_mask()[:, :width]
                act[mask] = corrupt[:, :width][mask]
            return act
        return hook

    out = []
    for where in ("none", "SEP", "list positions"):
        hooks = None if where == "none" else [(name, patch(where))]
        pred = predictions(bridge, clean, fwd_hooks=hooks, batch_size=len(clean))
        out.append({"patched": where, "examples": len(clean),
                    "= clean median": float((pred == clean.answers).float().mean()),
                    "= edited median": float((pred == new_answer).float().mean())})
    return pd.DataFrame(out).set_index("patched")


# ----------------------------------------------------------------------------------------------
# Notebook building blocks shared by both chapters
# ----------------------------------------------------------------------------------------------

def data_checks(recipe: dict[str, Any], data: AlgoData, seed: int = 0) -> dict[str, int]:
    """Generator answers that disagree with the brute-force reference, and train/test multiset overlap."""
    wrong = sum(int(data.answers[i]) != reference_answer(data.task, data.values(i)) for i in range(len(data)))
    train = make_data(data.task, data.V, len(data), training_lengths(recipe), "train",
                      recipe.get("repeats", False), seed=seed + 1, width=data.tokens.shape[1])
    held = {tuple(sorted(data.values(i))) for i in range(len(data))}
    overlap = sum(tuple(sorted(train.values(i))) in held for i in range(len(train)))
    return {"checked": len(data), "wrong": wrong, "train_lists": len(train), "overlap": overlap}


@torch.no_grad()
def group_ablation(bridge: Any, data: AlgoData, groups: dict[str, list[tuple[int, int]]]) -> "pd.Series":
    """Accuracy with every head of each group mean-ablated at once."""
    import pandas as pd

    cache = run_cache(bridge, data, lambda n: n.endswith("hook_z"))
    out = {}
    for label, heads in groups.items():
        hooks = []
        for layer in sorted({l for l, _ in heads}):
            name = f"blocks.{layer}.attn.hook_z"
            mean = cache[name].mean(0)
            for l, h in heads:
                if l == layer:
                    hooks.append((name, _mean_ablate_hook(mean, h)))
        out[label] = accuracy(bridge, data, fwd_hooks=hooks)
    return pd.Series(out, name="accuracy")


def failure_analysis(bridge: Any, recipe: dict[str, Any], data: AlgoData, count: int) -> str:
    """Plot accuracy by length, by answer value and with repeats; return the findings as a sentence."""
    by_length = accuracy_by_length(bridge, recipe, count=max(50, count // 4))
    by_answer = accuracy_by_answer(bridge, data)
    rep = repeat_breakdown(bridge, test_set(recipe, count=count, repeats=True, seed_offset=99))
    plot_failures(by_length, by_answer, rep)
    trained = by_length.loc[by_length["trained"], "accuracy"]
    longer = by_length.loc[~by_length["trained"] & (by_length.index > recipe["n"]), "accuracy"]
    lo, hi = by_answer.index.min(), by_answer.index.max()
    worst = by_answer.loc[by_answer["count"] >= 5, "accuracy"]
    return (f"Trained lengths {min(training_lengths(recipe))}–{recipe['n']}: {trained.min():.1%} to "
            f"{trained.max():.1%}. Longer, never-trained lengths: "
            + ", ".join(f"{L}: {a:.0%}" for L, a in longer.items())
            + ". Lists with repeated values: "
            + "; ".join(f"{k} {r.accuracy:.1%} ({int(r['count'])} lists)" for k, r in rep.iterrows())
            + f". By answer value, the edges {lo} and {hi} score {by_answer.loc[lo, 'accuracy']:.0%} and "
            f"{by_answer.loc[hi, 'accuracy']:.0%} ({int(by_answer.loc[lo, 'count'])} and {int(by_answer.loc[hi, 'count'])} "
            f"lists); the worst value seen at least 5 times is {worst.idxmin()} at {worst.min():.1%}.")


def compare_models(names: Sequence[str], count: int, known: Optional[dict[str, dict[str, Any]]] = None) -> "pd.DataFrame":
    """:func:`circuit_summary` of several zoo models, one row each (each on its own held-out set).

    ``known`` maps model names to summaries already computed, which are reused.
    """
    import pandas as pd
    from shared.zoo.registry import load_model, local_models

    rows = []
    for name in names:
        if name not in local_models():
            raise ParameterError(f"Unknown model {name!r} in compare_with; choose from {sorted(local_models())}.")
        s = (known or {}).get(name)
        if s is None:
            s = circuit_summary(load_model(name), test_set(local_models()[name].recipe, count=count))
        rows.append({"model": name, "held-out accuracy": s["accuracy"], "deciding head": s["deciding_head"],
                     "ablation drop": s["ablation"].loc[s["deciding_head"], "drop"],
                     "largest drop (any component)": s["ablation"]["drop"].max(),
                     "attention on answer": s["attention_on_answer"][s["layer"], s["head"]],
                     "QK Spearman": s["qk_monotonicity"]["spearman"], "copying share": s["copying"]})
    return pd.DataFrame(rows).set_index("model")


@torch.no_grad()
def cdf_probe(bridge: Any, data: AlgoData, hook: str = "blocks.0.hook_attn_out") -> float:
    """How well a linear read-out of ``hook`` at SEP recovers the list's cumulative histogram.

    Targets are ``#{values <= t} / L`` for every threshold ``t``; a least-squares probe is fitted on
    the first half of ``data`` and scored on the second. Returns the mean held-out R^2 over thresholds.
    """
    act = run_cache(bridge, data, lambda n: n == hook)[hook][_rows(data), data.lengths]
    valid = data.value_mask()
    counts = torch.stack([((data.tokens <= t) & valid).sum(1) for t in range(data.V)], 1).float()
    target = counts / data.lengths[:, None].float()
    x = torch.cat([act, torch.ones(len(data), 1)], 1).double()
    half = len(data) // 2
    coef = torch.linalg.lstsq(x[:half], target[:half].double()).solution
    pred = x[half:] @ coef
    test = target[half:].double()
    var = test.var(0, unbiased=False)
    keep = var > 1e-6
    r2 = 1 - ((pred - test) ** 2).mean(0)[keep] / var[keep]
    return float(r2.mean())
