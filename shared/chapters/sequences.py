"""Sequence-continuation circuits: prompt sets per task, logit lens, OV scores, aligned attention,
circuit overlap and cross-task transfer. Shared by the ``seq_*`` chapters.

The circuit-discovery machinery itself (mean ablation, knockouts, pruning, path patching, EAP)
lives in :mod:`shared.engine.ablation`, :mod:`shared.engine.pruning`, :mod:`shared.engine.patching`, :mod:`shared.engine.eap`
and :mod:`shared.engine.circuit`; this module adds what is specific to "predict the next member":

* :func:`task_data` — prompts the model gets right, their clean/corrupted batch and the token
  positions of the members and of the end.
* :func:`final_norm`, :func:`logit_lens` — the final LayerNorm applied once to each layer's
  residual stream, and the rank of chosen tokens after every layer.
* :func:`ov_logits`, :func:`copy_score`, :func:`successor_score`, :func:`ov_scores` — what each
  head's OV circuit writes when it reads an ordinal token (e.g. " 4" -> " 5" for a successor head).
* :func:`aligned_attention`, :func:`position_labels` — attention between roles (member -> previous
  member, end -> members) rather than raw positions.
* :func:`jaccard`, :func:`overlap_table`, :func:`common_nodes`, :func:`transfer_table` — how far
  the task circuits agree, and how well the circuit of one task explains another.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import torch

from shared.engine.batch import PromptBatch
from shared.errors import ParameterError
from shared.engine.runs import final_norm

DEFAULT_TASKS: tuple[str, ...] = ("numerals", "number_words", "months")
MAX_SAMPS = 2000  # prompts per task; drawing and filtering several times as many is the slow part


# --------------------------------------------------------------------------------------------
# prompt sets
# --------------------------------------------------------------------------------------------

@dataclass
class TaskData:
    """One task's prompts (all answered correctly by the model, one common token length).

    ``member_pos`` [n, n_members] and ``end_pos`` [n] are token positions (BOS = 0);
    ``kept``/``drawn`` count prompts after and before filtering.
    """

    task: str
    prompts: list
    batch: PromptBatch
    member_pos: torch.Tensor
    end_pos: torch.Tensor
    kept: int
    drawn: int

    @property
    def tokens(self) -> torch.Tensor:
        return self.batch.clean


def task_data(bridge: Any, task: str, n_prompts: int = 64, seed: int = 0, template: str = "among_words",
              n_members: int = 4, corruption: str = "random_members", min_margin: float = 0.0,
              only_correct: bool = True, min_prompts: int = 4) -> TaskData:
    """Draw prompts of ``task``, keep those the model answers correctly (top-1 with at least
    ``min_margin`` in probability) and of the most common token length, at most ``n_prompts``."""
    from shared.tasks import sequences as tasks

    if not min_prompts <= n_prompts <= MAX_SAMPS:
        raise ParameterError(f"n_prompts must be from {min_prompts} to {MAX_SAMPS}, got {n_prompts}.")
    spec = tasks.get_task(task)
    capacity = len(spec.starts(n_members)) if template == "bare" else 10 ** 9
    drawn = min(capacity, max(4 * n_prompts, 96))
    prompts = tasks.generate(task, template, n_members, drawn, seed=seed)
    if only_correct:
        prompts = list(tasks.filter_correct(bridge, prompts, min_margin=min_margin, seed=seed, verbose=False))
    groups = tasks.group_by_length(bridge, prompts)
    if not groups:
        raise ParameterError(f"The model answers none of {drawn} {task!r} prompts correctly, so there is no "
                             f"behaviour to explain; pick another task or model.")
    length = max(groups, key=lambda k: len(groups[k]))
    chosen = groups[length][:n_prompts]
    if len(chosen) < min_prompts:
        raise ParameterError(f"Only {len(chosen)} of {drawn} {task!r} prompts are answered correctly with one "
                             f"token length (need {min_prompts}); pick another task or model.")
    batch = tasks.make_batch(bridge, chosen, corruption=corruption, seed=seed)
    member_pos, end_pos = tasks.token_positions(bridge, chosen)
    return TaskData(task, chosen, batch, member_pos, end_pos, len(chosen), drawn)


def check_tasks(task_list: Sequence[str]) -> list[str]:
    """Validate a list of task names (raises :class:`ParameterError` in one sentence)."""
    from shared.tasks import sequences as tasks

    task_list = [task_list] if isinstance(task_list, str) else list(task_list)
    if not task_list:
        raise ParameterError("The list of tasks is empty.")
    for t in task_list:
        tasks.get_task(t)
    if len(set(task_list)) != len(task_list):
        raise ParameterError(f"The list of tasks {task_list} repeats a task.")
    return task_list


def check_fraction(name: str, value: float) -> float:
    if not 0 < float(value) <= 1:
        raise ParameterError(f"{name} must be a fraction in (0, 1], got {value}.")
    return float(value)


_FRACTIONS = ("threshold", "successor_cutoff")
_COUNTS = {"n_prompts": (4, MAX_SAMPS), "top_k": (1, 1000), "ig_steps": (1, 100)}


def start_chapter(model_name: str, task_names: Sequence[str], seed: int = 0, *, min_tasks: int = 1,
                  ungroup_kv: bool = False, **params: Any) -> tuple[Any, list[str]]:
    """Open a sequence chapter: check its parameters in one sentence each before any heavy work
    (task names, fractions such as ``threshold`` in (0, 1], counts such as ``n_prompts`` in range),
    then seed, load the model and print what the chapter runs on. Returns the model and the tasks."""
    from shared.chapters.common import open_model

    task_names = check_tasks(task_names)
    if len(task_names) < min_tasks:
        raise ParameterError(f"This chapter compares tasks and needs at least {min_tasks}; got {task_names}.")
    for name in _FRACTIONS:
        if name in params:
            check_fraction(name, params[name])
    for name, (low, high) in _COUNTS.items():
        if name in params and not low <= int(params[name]) <= high:
            raise ParameterError(f"{name} must be an integer from {low} to {high}, got {params[name]}.")
    return open_model(model_name, seed, ungroup_kv=ungroup_kv, task_names=task_names, **params), task_names


# --------------------------------------------------------------------------------------------
# final LayerNorm and logit lens
# --------------------------------------------------------------------------------------------

@torch.no_grad()
def residual_stack(bridge: Any, tokens: torch.Tensor, pos: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Residual stream entering each block and leaving the last one: ``[n_layers + 1, batch, d]``
    at positions ``pos`` [batch] (default: last position)."""
    n_layers = bridge.cfg.n_layers
    store: dict[int, torch.Tensor] = {}

    def keep(i: int):
        def hook(x, hook):
            store[i] = x.detach()
            return x
        return hook

    hooks = [(f"blocks.{l}.hook_resid_pre", keep(l)) for l in range(n_layers)]
    hooks.append((f"blocks.{n_layers - 1}.hook_resid_post", keep(n_layers)))
    bridge.run_with_hooks(tokens, fwd_hooks=hooks)
    pos = torch.full((tokens.shape[0],), tokens.shape[1] - 1) if pos is None else pos
    rows = torch.arange(tokens.shape[0])
    return torch.stack([store[i][rows, pos.to(store[i].device)] for i in range(n_layers + 1)])


def stage_names(n_layers: int) -> list[str]:
    """Labels of the logit-lens stages: the embedding, then after each layer."""
    return ["embed"] + [f"after L{l}" for l in range(n_layers)]


def token_ranks(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Rank of ``targets`` [...] in ``logits`` [..., vocab]: 0 = top, k = k tokens score higher."""
    target_logit = logits.gather(-1, targets.unsqueeze(-1))
    return (logits > target_logit).sum(-1)


def stage_phrase(stage: Optional[str]) -> str:
    """Prose for a logit-lens stage: ``"after L2"`` -> ``"after layer 2"``."""
    if stage is None:
        return "at no layer"
    if stage == "embed":
        return "already at the embedding"
    return stage.replace("after L", "after layer ")


@dataclass
class LensResult:
    """Ranks [stage, prompt] of each named target token after every layer (stage 0 = embedding)."""

    stages: list[str]
    ranks: dict[str, torch.Tensor]
    logits: dict[str, torch.Tensor]

    def table(self):
        """Per stage and target: mean and median rank, share of prompts where it is the top token."""
        import pandas as pd

        rows = []
        for name, r in self.ranks.items():
            for i, stage in enumerate(self.stages):
                rf = r[i].float()
                rows.append(dict(stage=stage, layer=i - 1, target=name, mean_rank=float(rf.mean()),
                                 median_rank=float(rf.median()), top1=float((r[i] == 0).float().mean()),
                                 mean_logit=float(self.logits[name][i].float().mean())))
        return pd.DataFrame(rows)

    @staticmethod
    def _from_stage(flags: torch.Tensor) -> Optional[int]:
        """Index of the first stage from which ``flags`` holds through the last stage."""
        if not bool(flags[-1]):
            return None
        i = len(flags) - 1
        while i > 0 and bool(flags[i - 1]):
            i -= 1
        return i

    def switch_stage(self, target: str = "answer") -> Optional[str]:
        """The stage where the prediction switches to ``target``: the first from which it is the
        top token on most prompts through the output (``None`` if it is not top-1 at the end)."""
        i = self._from_stage((self.ranks[target] == 0).float().mean(1) > 0.5)
        return None if i is None else self.stages[i]

    def overtake_stage(self, first: str = "answer", second: str = "last member") -> Optional[str]:
        """First stage from which ``first`` outranks ``second`` on most prompts through the output."""
        i = self._from_stage((self.ranks[first] < self.ranks[second]).float().mean(1) > 0.5)
        return None if i is None else self.stages[i]


@torch.no_grad()
def logit_lens(bridge: Any, tokens: torch.Tensor, targets: Mapping[str, torch.Tensor],
               pos: Optional[torch.Tensor] = None) -> LensResult:
    """Unembed the residual stream after every layer (final LayerNorm applied once, with its own
    statistics) and rank each target token [batch] among the whole vocabulary."""
    resid = residual_stack(bridge, tokens, pos)
    logits = final_norm(bridge, resid) @ bridge.W_U
    if getattr(bridge, "b_U", None) is not None:
        logits = logits + bridge.b_U
    ranks, values = {}, {}
    for name, ids in targets.items():
        ids = torch.as_tensor(ids, dtype=torch.long, device=logits.device).view(1, -1).expand(logits.shape[0], -1)
        ranks[name] = token_ranks(logits, ids).cpu()
        values[name] = logits.gather(-1, ids.unsqueeze(-1)).squeeze(-1).cpu()
    return LensResult(stage_names(bridge.cfg.n_layers), ranks, values)


def lens_figure(results: Mapping[str, LensResult], log: bool = True):
    """Median rank (log scale) of the answer and the last member after each layer, one panel per task."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.4), squeeze=False, sharey=True)
    for ax, (task, res) in zip(axes[0], results.items()):
        for name, r in res.ranks.items():
            med = r.float().median(1).values + 1
            q1, q3 = r.float().quantile(0.25, 1) + 1, r.float().quantile(0.75, 1) + 1
            x = range(len(res.stages))
            ax.plot(x, med, marker="o", label=name)
            ax.fill_between(x, q1, q3, alpha=0.2)
        ax.set_xticks(range(len(res.stages)), res.stages, rotation=45, ha="right")
        if log:
            ax.set_yscale("log")
        ax.set_title(task)
        ax.set_xlabel("residual stream")
    axes[0, 0].set_ylabel("rank + 1 (median, quartiles)")
    axes[0, -1].legend()
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# OV circuits: copy and successor scores
# --------------------------------------------------------------------------------------------

@torch.no_grad()
def effective_embedding(bridge: Any, token_ids: torch.Tensor, mlp0: bool = True) -> torch.Tensor:
    """Token embeddings [n, d_model]; with ``mlp0`` the residual after MLP 0 reads them alone
    (``W_E + MLP0(LN(W_E))``, attention 0 skipped), as in the successor-heads paper."""
    x = bridge.W_E[torch.as_tensor(token_ids, dtype=torch.long, device=bridge.W_E.device)]
    if mlp0 and not bridge.cfg.attn_only:
        block = bridge.blocks[0]
        x = x + block.mlp(block.ln2(x.unsqueeze(0))).squeeze(0)
    return x


@torch.no_grad()
def ov_logits(bridge: Any, token_ids: torch.Tensor, mlp0: bool = True,
              heads: Optional[Sequence[tuple[int, int]]] = None) -> torch.Tensor:
    """Logits [heads, n, vocab] the OV circuit of each head writes when it attends only to a token.

    Effective embedding -> the head's input LayerNorm -> ``W_V W_O`` -> final LayerNorm (no bias)
    -> ``W_U`` (no bias). ``heads`` defaults to every (layer, head) in order.
    """
    cfg = bridge.cfg
    heads = [(l, h) for l in range(cfg.n_layers) for h in range(cfg.n_heads)] if heads is None else list(heads)
    x = effective_embedding(bridge, token_ids, mlp0)
    out = []
    for layer, head in heads:
        ln1 = bridge.blocks[layer].ln1
        normed = ln1(x.unsqueeze(0)).squeeze(0) if (cfg.normalization_type or "") else x
        written = normed @ bridge.W_V[layer, head] @ bridge.W_O[layer, head]
        out.append(final_norm(bridge, written, bias=False) @ bridge.W_U)
    return torch.stack(out)


def _rows(n: int, cyclic: bool) -> tuple[torch.Tensor, torch.Tensor]:
    src = torch.arange(n if cyclic else n - 1)
    return src, (src + 1) % n


def copy_score(logits: torch.Tensor, token_ids: torch.Tensor, k: int = 5) -> torch.Tensor:
    """Share of tokens whose own id is among the top ``k`` of their OV logits row
    (``logits`` [..., n, vocab], row i belongs to ``token_ids[i]``)."""
    ids = torch.as_tensor(token_ids, dtype=torch.long, device=logits.device)
    top = logits.topk(k, dim=-1).indices
    return (top == ids.view(-1, 1)).any(-1).float().mean(-1)


def successor_topk(logits: torch.Tensor, token_ids: torch.Tensor, k: int = 5, cyclic: bool = False) -> torch.Tensor:
    """Share of tokens whose successor in the list is among the top ``k`` of the whole vocabulary."""
    ids = torch.as_tensor(token_ids, dtype=torch.long, device=logits.device)
    src, dst = _rows(len(ids), cyclic)
    top = logits[..., src, :].topk(k, dim=-1).indices
    return (top == ids[dst].view(-1, 1)).any(-1).float().mean(-1)


def successor_score(logits: torch.Tensor, token_ids: torch.Tensor, cyclic: bool = False) -> torch.Tensor:
    """Share of tokens for which, among the list's own tokens, the successor gets the highest logit."""
    ids = torch.as_tensor(token_ids, dtype=torch.long, device=logits.device)
    src, dst = _rows(len(ids), cyclic)
    within = logits[..., src, :][..., ids]  # [..., n_src, n]
    return (within.argmax(-1) == dst).float().mean(-1)


def ov_scores(bridge: Any, ordinals: Mapping[str, tuple[torch.Tensor, bool]], k: int = 5,
              mlp0: bool = True):
    """Per head: copy@k, successor@k and the full successor score on each ordinal list.

    ``ordinals`` maps a list name to ``(token ids in order, cyclic)``. Returns a DataFrame with
    one row per head and the mean successor score over lists in ``successor_mean``.
    """
    import pandas as pd

    cfg = bridge.cfg
    heads = [(l, h) for l in range(cfg.n_layers) for h in range(cfg.n_heads)]
    table = pd.DataFrame({"head": [f"a{l}.h{h}" for l, h in heads],
                          "layer": [l for l, _ in heads], "index": [h for _, h in heads]})
    succ_cols = []
    for name, (ids, cyclic) in ordinals.items():
        cols: dict[str, list[float]] = {f"copy@{k} {name}": [], f"succ@{k} {name}": [], f"successor {name}": []}
        for head in heads:  # one head at a time: [n, vocab] logits stay small for large vocabularies
            logits = ov_logits(bridge, ids, mlp0, heads=[head])[0]
            cols[f"copy@{k} {name}"].append(float(copy_score(logits, ids, k)))
            cols[f"succ@{k} {name}"].append(float(successor_topk(logits, ids, k, cyclic)))
            cols[f"successor {name}"].append(float(successor_score(logits, ids, cyclic)))
        for col, values in cols.items():
            table[col] = values
        succ_cols.append(f"successor {name}")
    table["successor_mean"] = table[succ_cols].mean(axis=1)
    table["copy_mean"] = table[[c for c in table.columns if c.startswith("copy@")]].mean(axis=1)
    return table.set_index("head")


def ordinal_lists(bridge: Any, task_list: Sequence[str]) -> dict[str, tuple[torch.Tensor, bool]]:
    """The ordinal token list of each task (``(ids, cyclic)``), skipping lists that are not
    single-token for this tokenizer (their names are printed)."""
    from shared.tasks import sequences as tasks

    out: dict[str, tuple[torch.Tensor, bool]] = {}
    skipped = []
    for t in task_list:
        spec = tasks.get_task(t)
        if spec.ordinal in out:
            continue
        try:
            out[spec.ordinal] = (tasks.ordinal_tokens(bridge, t), spec.cyclic)
        except ParameterError:
            skipped.append(spec.ordinal)
    if skipped:
        print(f"Skipped ordinal lists that are not single tokens here: {', '.join(skipped)}")
    if not out:
        raise ParameterError("None of the tasks' ordinal lists is single-token for this model's tokenizer.")
    return out


def head_grid(values: Mapping[str, float], n_layers: int, n_heads: int) -> torch.Tensor:
    """A ``[layer, head]`` grid from ``{"aL.hH": value}`` (missing heads are NaN)."""
    from shared.engine.graph import parse_node

    grid = torch.full((n_layers, n_heads), float("nan"))
    for name, v in values.items():
        node = parse_node(name)
        if node.kind == "head":
            grid[node.layer, node.head] = float(v)
    return grid


def grid_figure(grids: Mapping[str, torch.Tensor], title: str, cmap: str = "viridis",
                vmin: Optional[float] = None, vmax: Optional[float] = None, label: str = ""):
    """One layer x head heatmap per entry, with the value written in each cell."""
    import matplotlib.pyplot as plt

    n = len(grids)
    first = next(iter(grids.values()))
    fig, axes = plt.subplots(1, n, figsize=(0.9 * first.shape[1] * n + 1.5 * n, 0.55 * first.shape[0] + 1.6),
                             squeeze=False)
    for ax, (name, g) in zip(axes[0], grids.items()):
        im = ax.imshow(g.numpy(), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
        if g.shape[0] * g.shape[1] <= 64:
            for (i, j), v in zip([(i, j) for i in range(g.shape[0]) for j in range(g.shape[1])], g.flatten().tolist()):
                if v == v:
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                            color="white" if vmax is None or v < 0.6 * vmax else "black")
        ax.set(xlabel="head", ylabel="layer", title=name, xticks=range(g.shape[1]), yticks=range(g.shape[0]))
        fig.colorbar(im, ax=ax, label=label, fraction=0.046)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------------------------
# attention on aligned positions
# --------------------------------------------------------------------------------------------

@torch.no_grad()
def attention_patterns(bridge: Any, tokens: torch.Tensor, heads: Sequence[str]) -> torch.Tensor:
    """Attention patterns [batch, len(heads), query, key] of the named heads ("aL.hH")."""
    from shared.engine.graph import parse_node

    nodes = [parse_node(h, bridge.cfg.n_layers, bridge.cfg.n_heads) for h in heads]
    if any(n.kind != "head" for n in nodes):
        raise ParameterError(f"Attention patterns need attention heads, got {list(heads)}.")
    layers = sorted({n.layer for n in nodes})
    store: dict[int, torch.Tensor] = {}

    def keep(l: int):
        def hook(x, hook):
            store[l] = x.detach()
            return x
        return hook

    bridge.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{l}.attn.hook_pattern", keep(l)) for l in layers])
    return torch.stack([store[n.layer][:, n.head] for n in nodes], dim=1).cpu()


def aligned_attention(pattern: torch.Tensor, member_pos: torch.Tensor, end_pos: torch.Tensor) -> dict[str, torch.Tensor]:
    """Attention between roles, per prompt and head (``pattern`` is [batch, heads, query, key]).

    ``prev_member`` [b, h]: mean over members j >= 2 of attention from member j to member j-1;
    ``end_to_member`` [b, h, n_members]: attention from the end position to each member;
    ``end_to_members`` [b, h]: their sum; ``end_to_bos`` [b, h]: from the end to position 0;
    ``before_to_prev`` [b, h]: mean over j >= 2 of attention from the position just before member j
    (where member j is predicted, like the end predicts the answer) to member j-1.
    """
    b = torch.arange(pattern.shape[0]).view(-1, 1)
    mp = member_pos.to(torch.long)
    per_pair = pattern[b, :, mp[:, 1:], mp[:, :-1]]  # [b, n-1, h]
    before = pattern[b, :, mp[:, 1:] - 1, mp[:, :-1]]  # [b, n-1, h]
    end = end_pos.to(torch.long).view(-1, 1)
    to_members = pattern[b, :, end.expand_as(mp), mp]  # [b, n, h]
    return {"prev_member": per_pair.mean(1), "before_to_prev": before.mean(1), "end_to_member": to_members.transpose(1, 2),
            "end_to_members": to_members.sum(1), "end_to_bos": pattern[torch.arange(pattern.shape[0]), :, end_pos, 0]}


def attention_table(pattern: torch.Tensor, member_pos: torch.Tensor, end_pos: torch.Tensor, heads: Sequence[str]):
    """Mean attention per head between roles (a DataFrame indexed by head)."""
    import pandas as pd

    a = aligned_attention(pattern, member_pos, end_pos)
    table = pd.DataFrame(index=list(heads))
    table.index.name = "head"
    table["member→previous member"] = a["prev_member"].mean(0).numpy()
    table["before member→previous member"] = a["before_to_prev"].mean(0).numpy()
    n = member_pos.shape[1]
    for j in range(n):
        table[f"end→member {j + 1}"] = a["end_to_member"][:, :, j].mean(0).numpy()
    table["end→all members"] = a["end_to_members"].mean(0).numpy()
    table["end→BOS"] = a["end_to_bos"].mean(0).numpy()
    return table


def position_labels(bridge: Any, tokens: torch.Tensor, member_pos: torch.Tensor, end_pos: torch.Tensor) -> list[str]:
    """A label per position valid for every prompt of an aligned batch: the token where all prompts
    agree, ``M1..Mn`` for members, ``END`` for the answer position, ``x{i}`` for other varying tokens."""
    if not (member_pos == member_pos[:1]).all() or not (end_pos == end_pos[:1]).all():
        raise ParameterError("Prompts are not aligned: members sit at different positions.")
    labels = []
    first = bridge.to_str_tokens(tokens[0]) if hasattr(bridge, "to_str_tokens") else [str(t) for t in tokens[0].tolist()]
    members = {int(p): j for j, p in enumerate(member_pos[0].tolist())}
    varying = 0
    for i in range(tokens.shape[1]):
        if i in members:
            labels.append(f"M{members[i] + 1}")
        elif i == int(end_pos[0]):
            labels.append(f"END {first[i].strip()}" if bool((tokens[:, i] == tokens[0, i]).all()) else "END")
        elif bool((tokens[:, i] == tokens[0, i]).all()):
            labels.append(first[i] if i else "BOS")
        else:
            varying += 1
            labels.append(f"x{varying}")
    return labels


def attention_heatmaps(mean_pattern: torch.Tensor, labels: Sequence[str], heads: Sequence[str], title: str = ""):
    """Averaged attention [heads, query, key] as heatmaps, axes labelled by role."""
    import matplotlib.pyplot as plt

    n = len(heads)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    size = 0.22 * len(labels) + 1.5
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.axis("off")
            continue
        ax.imshow(mean_pattern[k].numpy(), cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
        ax.set_yticks(range(len(labels)), labels, fontsize=6)
        ax.set_title(heads[k], fontsize=9)
        ax.set_xlabel("key (attended to)", fontsize=7)
        ax.set_ylabel("query", fontsize=7)
    fig.tight_layout(rect=(0, 0, 1, 0.96) if title else None)
    if title:
        fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------------------------
# comparing circuits across tasks
# --------------------------------------------------------------------------------------------

def jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    """|A ∩ B| / |A ∪ B| (1.0 for two empty sets)."""
    a, b = set(a), set(b)
    return 1.0 if not a | b else len(a & b) / len(a | b)


def overlap_table(circuits: Mapping[str, Iterable[str]]):
    """Pairwise Jaccard similarity of the circuits' node (or edge) sets, as a DataFrame."""
    import pandas as pd

    names = list(circuits)
    sets = {k: set(v) for k, v in circuits.items()}
    return pd.DataFrame([[jaccard(sets[a], sets[b]) for b in names] for a in names], index=names, columns=names)


def common_nodes(circuits: Mapping[str, Iterable[str]], order: Optional[Sequence[str]] = None) -> list[str]:
    """Nodes present in every circuit (in ``order`` if given, else sorted)."""
    sets = [set(v) for v in circuits.values()]
    if not sets:
        return []
    both = set.intersection(*sets)
    return [n for n in order if n in both] if order is not None else sorted(both)


def node_order(bridge: Any) -> list[str]:
    """Heads and MLPs in forward order."""
    from shared.engine.graph import Graph

    return list(Graph.of(bridge).components)


def circuit_score(bridge: Any, data: TaskData, nodes: Iterable[str], values: Any = None) -> float:
    """Mean logit difference with every head and MLP outside ``nodes`` replaced (mean-ablated per
    position over ``data``'s clean and corrupted prompts unless ``values`` is given)."""
    from shared.engine.ablation import score_circuit_nodes

    values = mean_values(bridge, data) if values is None else values
    return float(score_circuit_nodes(bridge, data.batch, list(nodes), values))


@torch.no_grad()
def full_score(bridge: Any, data: TaskData) -> float:
    """The intact model's mean logit difference (answer minus last member) on ``data``."""
    from shared.engine.ablation import score_circuit_nodes, zero_values

    return float(score_circuit_nodes(bridge, data.batch, node_order(bridge), zero_values(bridge)))


def transfer_table(bridge: Any, data: Mapping[str, TaskData], circuits: Mapping[str, Iterable[str]],
                   progress: bool = True):
    """Rows: whose circuit; columns: the task it is evaluated on; value: the circuit's logit
    difference as a percentage of the full model's on that task (everything else mean-ablated)."""
    import pandas as pd
    from tqdm.auto import tqdm

    table = pd.DataFrame(index=list(circuits), columns=list(data), dtype=float)
    pairs = [(a, b) for b in data for a in circuits]
    values = {b: mean_values(bridge, d) for b, d in data.items()}
    full = {b: full_score(bridge, d) for b, d in data.items()}
    for a, b in tqdm(pairs, desc="transfer", disable=not progress, leave=False):
        table.loc[a, b] = 100.0 * circuit_score(bridge, data[b], circuits[a], values[b]) / full[b]
    table.index.name = "circuit of"
    table.columns.name = "evaluated on"
    return table


def matrix_figure(table, title: str, fmt: str = "{:.2f}", cmap: str = "viridis",
                  vmin: Optional[float] = None, vmax: Optional[float] = None, label: str = ""):
    """A labelled heatmap of a square or rectangular DataFrame with values in the cells."""
    import matplotlib.pyplot as plt

    values = table.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.3 * values.shape[1] + 2.2, 1.0 * values.shape[0] + 1.4))
    im = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(j, i, fmt.format(values[i, j]), ha="center", va="center", fontsize=9,
                    color="white" if (vmax is not None and values[i, j] < 0.55 * vmax) else "black")
    ax.set_xticks(range(values.shape[1]), [str(c) for c in table.columns], rotation=30, ha="right")
    ax.set_yticks(range(values.shape[0]), [str(r) for r in table.index])
    ax.set_xlabel(table.columns.name or "")
    ax.set_ylabel(table.index.name or "")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label=label, fraction=0.046)
    fig.tight_layout()
    return fig


def membership_figure(circuits: Mapping[str, Iterable[str]], order: Sequence[str], title: str = ""):
    """Which task circuits contain each node (task x node grid; dark: the node is in every circuit,
    light: in this task's circuit only among some; nodes in no circuit omitted)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    sets = {k: set(v) for k, v in circuits.items()}
    used = [n for n in order if any(n in s for s in sets.values())]
    shared = {n for n in used if all(n in s for s in sets.values())}
    grid = torch.tensor([[(2.0 if n in shared else 1.0) if n in sets[t] else 0.0 for n in used] for t in sets])
    fig, ax = plt.subplots(figsize=(0.42 * max(len(used), 4) + 2.2, 0.45 * len(sets) + 1.5))
    ax.imshow(grid.numpy(), cmap=ListedColormap(["#f4f4f4", "#9fd39f", "#1b7a36"]), vmin=0, vmax=2, aspect="auto")
    ax.set_xticks(range(len(used)), used, rotation=90)
    ax.set_yticks(range(len(sets)), list(sets))
    ax.set_xticks([x - 0.5 for x in range(1, len(used))], minor=True)
    ax.set_yticks([y - 0.5 for y in range(1, len(sets))], minor=True)
    ax.grid(which="minor", color="white", lw=2)
    ax.tick_params(which="minor", length=0)
    ax.set_title((title + "\n" if title else "") + "dark: in every task's circuit, light: in some", fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# per-task prompt sets, knockouts, node and edge circuits
# --------------------------------------------------------------------------------------------

def load_tasks(bridge: Any, task_list: Sequence[str], n_prompts: int, seed: int, **kwargs: Any) -> dict[str, TaskData]:
    """:func:`task_data` for each task; prints how many prompts were kept."""
    out = {t: task_data(bridge, t, n_prompts, seed, **kwargs) for t in check_tasks(task_list)}
    print("Prompts answered correctly and kept: " + ", ".join(
        f"{t} {d.kept} (of {d.drawn} drawn, {d.tokens.shape[1]} tokens)" for t, d in out.items()))
    return out


def mean_values(bridge: Any, data: TaskData) -> Any:
    """Replacement values for mean ablation: each node's mean output at each position over the
    task's clean and corrupted prompts (all aligned, so position means are well defined)."""
    from shared.engine.ablation import ablation_values

    return ablation_values(bridge, data.batch, "mean", per_position=True)


def knockouts(bridge: Any, data: Mapping[str, TaskData], progress: bool = True) -> dict[str, Any]:
    """Mean-ablate every head and MLP alone for each task (:func:`shared.engine.ablation.knockout_sweep`)."""
    from shared.engine.ablation import knockout_sweep

    return {t: knockout_sweep(bridge, d.batch, values=mean_values(bridge, d), progress=progress)
            for t, d in data.items()}


def knockout_table(results: Mapping[str, Any]):
    """Drop of the logit difference, in % of the intact model's, per node (rows) and task (columns)."""
    import pandas as pd

    cols = {t: {n: 100.0 * float(e) / r.full for n, e in zip(r.nodes, r.effects)} for t, r in results.items()}
    table = pd.DataFrame(cols)
    table.index.name = "node"
    return table


def knockout_bars(table, title: str = "Mean-ablating one node at a time"):
    """One bar chart per task: drop of the logit difference (% of intact) for every head and MLP."""
    import matplotlib.pyplot as plt

    tasks_ = list(table.columns)
    fig, axes = plt.subplots(len(tasks_), 1, figsize=(max(8, 0.32 * len(table) + 2), 2.3 * len(tasks_)),
                             squeeze=False, sharex=True)
    colors = ["tab:orange" if n.startswith("m") else "tab:blue" for n in table.index]
    for ax, t in zip(axes[:, 0], tasks_):
        ax.bar(range(len(table)), table[t].to_numpy(), color=colors)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_ylabel("drop (% of\nintact)")
        ax.set_title(t, loc="left", fontsize=10)
    axes[-1, 0].set_xticks(range(len(table)), list(table.index), rotation=90, fontsize=7)
    fig.suptitle(f"{title} (blue: heads, orange: MLPs)")
    fig.tight_layout()
    return fig


def prune_nodes(bridge: Any, data: TaskData, threshold: float, progress: bool = True) -> list[str]:
    """Iterative node pruning (:func:`shared.engine.pruning.prune_nodes`): heads/MLPs are removed one at a
    time while the circuit (everything else mean-ablated per position) keeps at least ``threshold``
    of the intact model's logit difference."""
    from shared.engine.pruning import prune_nodes as prune

    circuit = prune(bridge, data.batch, threshold=threshold, values=mean_values(bridge, data),
                    relative_to="full", progress=progress)
    return list(circuit.nodes)


def node_circuit(bridge: Any, task: str, n_prompts: int, threshold: float, seed: int,
                 progress: bool = True) -> dict[str, Any]:
    """The node circuit of ``task`` at ``threshold`` (cached on disk per model and parameters).

    Returns ``nodes`` (forward order), ``full`` and ``score`` (mean logit differences on the
    prompts it was found on), ``percent``, and the same re-measured on fresh prompts drawn with
    ``seed + 1`` (``heldout_full``, ``heldout_score``, ``heldout_percent``).
    """
    check_fraction("threshold", threshold)
    params = dict(task=task, n_prompts=n_prompts, threshold=threshold, seed=seed, method="prune_nodes-full-mean-v1")

    def compute() -> dict[str, Any]:
        data = task_data(bridge, task, n_prompts, seed)
        nodes = prune_nodes(bridge, data, threshold, progress)
        full = full_score(bridge, data)
        score = circuit_score(bridge, data, nodes, mean_values(bridge, data))
        fresh = task_data(bridge, task, n_prompts, seed + 1)
        h_full = full_score(bridge, fresh)
        h_score = circuit_score(bridge, fresh, nodes, mean_values(bridge, fresh))
        return dict(task=task, nodes=nodes, size=len(nodes), n_prompts=data.kept, full=full, score=score,
                    percent=100 * score / full, heldout_full=h_full, heldout_score=h_score,
                    heldout_percent=100 * h_score / h_full, n_components=len(node_order(bridge)))

    result = cached_json("seq-node-circuit", bridge, params, compute)
    order = node_order(bridge)
    result["nodes"] = [n for n in order if n in set(result["nodes"])]
    return result


def node_circuits(bridge: Any, task_list: Sequence[str], n_prompts: int, threshold: float, seed: int,
                  progress: bool = True) -> dict[str, dict[str, Any]]:
    """:func:`node_circuit` for each task."""
    return {t: node_circuit(bridge, t, n_prompts, threshold, seed, progress) for t in check_tasks(task_list)}


def circuit_table(circuits: Mapping[str, Mapping[str, Any]]):
    """One row per task: size, score (% of intact) on its prompts and on fresh ones, the nodes."""
    import pandas as pd

    return pd.DataFrame([dict(task=t, size=c["size"], of=c["n_components"], prompts=c["n_prompts"],
                              full_logit_diff=round(c["full"], 3), circuit_logit_diff=round(c["score"], 3),
                              percent=round(c["percent"], 1), heldout_percent=round(c["heldout_percent"], 1),
                              nodes=" ".join(c["nodes"])) for t, c in circuits.items()]).set_index("task")


def circuit_edges(bridge: Any, nodes: Iterable[str]) -> list[str]:
    """Edges of the model's graph whose sender and receiver are both in the node circuit (the
    input and the logits always count as in it)."""
    from shared.engine.graph import Graph, split_edge

    keep = set(nodes) | {"input", "logits"}
    out = []
    for e in Graph.of(bridge).edges:
        s, r, _ = split_edge(e)
        if s in keep and r in keep:
            out.append(e)
    return out


def edge_circuit(bridge: Any, data: TaskData, nodes: Sequence[str], threshold: float,
                 progress: bool = True) -> dict[str, Any]:
    """Path patching on the edges inside a node circuit; keeps the fewest top-ranked edges whose
    circuit (every other edge of the model mean-ablated) reaches ``threshold`` of the intact
    logit difference (all candidate edges if none does). Returns edges, effects and scores."""
    from shared.engine.patching import edge_mask, path_patching, score_edge_masks
    from shared.engine.graph import Graph

    graph = Graph.of(bridge)
    values = mean_values(bridge, data)
    candidates = circuit_edges(bridge, nodes)
    effects = path_patching(bridge, data.batch, candidates, values=values, progress=progress)
    ranked = sorted(candidates, key=lambda e: -effects[e])
    full = full_score(bridge, data)
    keep_masks = torch.stack([edge_mask(graph, ranked[:k]) for k in range(1, len(ranked) + 1)])
    scores = score_edge_masks(bridge, data.batch, ~keep_masks, values)
    reached = (scores >= threshold * full).nonzero().flatten()
    k = int(reached[0]) + 1 if len(reached) else len(ranked)
    return dict(edges=ranked[:k], effects={e: effects[e] for e in ranked}, full=full,
                score=float(scores[k - 1]), percent=100 * float(scores[k - 1]) / full,
                prefix_percent=(100 * scores / full).tolist(), n_candidates=len(ranked))


def eap_ig_edges(bridge: Any, data: TaskData, size: int, steps: int = 5) -> dict[str, Any]:
    """The ``size`` edges with the largest EAP-IG scores (mean ablation, all edges of the model),
    and the logit difference of that edge circuit (% of intact)."""
    from shared.engine.eap import eap_ig
    from shared.engine.patching import score_circuit_edges

    values = mean_values(bridge, data)
    scores = eap_ig(bridge, data.batch, steps=steps, values=values)
    top = sorted(scores, key=lambda e: -scores[e])[:size]
    full = full_score(bridge, data)
    kept = score_circuit_edges(bridge, data.batch, top, values)
    return dict(edges=top, scores=scores, score=kept, percent=100 * kept / full)


# --------------------------------------------------------------------------------------------
# cached results
# --------------------------------------------------------------------------------------------

def model_key(bridge: Any) -> dict[str, Any]:
    """What identifies a model for result caching: its book name and description (which holds
    the local cache folder, itself a hash of config and recipe)."""
    return {"model": getattr(bridge, "book_model_name", getattr(bridge.cfg, "model_name", "?")),
            "description": getattr(bridge, "book_model_description", "")}


def cached_json(kind: str, bridge: Any, params: Mapping[str, Any], compute: Callable[[], Any]) -> Any:
    """``compute()`` once per model, ``params`` and version of the ``shared`` code, stored as JSON
    under the results cache (not shipped: a fresh build recomputes it once)."""
    from shared.build.cli import shared_digest
    from shared.zoo.cache import cached_dir

    def build(tmp: Path) -> None:
        (tmp / "result.json").write_text(json.dumps(compute(), indent=1, default=float))

    key = {**model_key(bridge), **dict(params), "code": shared_digest()[:16]}
    folder = cached_dir("results", kind, key, build)
    return json.loads((folder / "result.json").read_text())


__all__ = [
    "DEFAULT_TASKS", "LensResult", "TaskData", "aligned_attention", "attention_heatmaps", "attention_patterns",
    "attention_table", "cached_json", "check_fraction", "check_tasks", "start_chapter", "circuit_score", "common_nodes",
    "copy_score", "effective_embedding", "final_norm", "full_score", "grid_figure", "head_grid", "jaccard",
    "lens_figure", "logit_lens", "matrix_figure", "membership_figure", "model_key", "node_order",
    "ordinal_lists", "ov_logits", "ov_scores", "overlap_table", "position_labels", "residual_stack",
    "stage_names", "stage_phrase", "successor_score", "load_tasks", "mean_values", "knockouts", "knockout_table",
    "knockout_bars", "prune_nodes", "node_circuit", "node_circuits", "circuit_table", "circuit_edges",
    "edge_circuit", "eap_ig_edges", "successor_topk", "task_data", "token_ranks", "transfer_table",
]
