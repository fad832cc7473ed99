"""Attention between the roles of an aligned prompt set (member -> previous member, end -> members)
rather than between raw positions.

Every prompt of an aligned set has its members and its end at the same token positions, so
attention can be averaged over prompts by role. Patterns come from the one reader,
:func:`shared.analysis.attention.attention_patterns`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import pandas as pd
import torch

from shared.analysis.attention import attention_patterns
from shared.errors import ParameterError


@dataclass
class RoleAttention:
    """Attention between roles, per prompt and head.

    ``prev_member`` [b, h]: mean over members j >= 2 of attention from member j to member j-1;
    ``before_to_prev`` [b, h]: the same from the position just before member j (where member j is
    predicted, as the end predicts the answer); ``end_to_member`` [b, h, n_members]: from the end
    to each member; ``end_to_members`` [b, h]: their sum; ``end_to_bos`` [b, h]: from the end to
    position 0.
    """

    prev_member: torch.Tensor
    before_to_prev: torch.Tensor
    end_to_member: torch.Tensor
    end_to_members: torch.Tensor
    end_to_bos: torch.Tensor


def role_attention(pattern: torch.Tensor, member_pos: torch.Tensor, end_pos: torch.Tensor) -> RoleAttention:
    """Read :class:`RoleAttention` off patterns [batch, heads, query, key] given member positions
    [batch, n_members] and end positions [batch]."""
    b = torch.arange(pattern.shape[0]).view(-1, 1)
    mp = member_pos.to(torch.long)
    per_pair = pattern[b, :, mp[:, 1:], mp[:, :-1]]  # [b, n-1, h]
    before = pattern[b, :, mp[:, 1:] - 1, mp[:, :-1]]  # [b, n-1, h]
    end = end_pos.to(torch.long).view(-1, 1)
    to_members = pattern[b, :, end.expand_as(mp), mp]  # [b, n, h]
    return RoleAttention(prev_member=per_pair.mean(1), before_to_prev=before.mean(1),
                         end_to_member=to_members.transpose(1, 2), end_to_members=to_members.sum(1),
                         end_to_bos=pattern[torch.arange(pattern.shape[0]), :, end_pos, 0])


def role_table(pattern: torch.Tensor, member_pos: torch.Tensor, end_pos: torch.Tensor,
               heads: Sequence[str]) -> pd.DataFrame:
    """Mean attention over prompts per head (rows) and pair of roles (columns)."""
    a = role_attention(pattern, member_pos, end_pos)
    table = pd.DataFrame(index=list(heads))
    table.index.name = "head"
    table["member→previous member"] = a.prev_member.mean(0).numpy()
    table["before member→previous member"] = a.before_to_prev.mean(0).numpy()
    for j in range(member_pos.shape[1]):
        table[f"end→member {j + 1}"] = a.end_to_member[:, :, j].mean(0).numpy()
    table["end→all members"] = a.end_to_members.mean(0).numpy()
    table["end→BOS"] = a.end_to_bos.mean(0).numpy()
    return table


def head_role_table(bridge: Any, tokens: torch.Tensor, member_pos: torch.Tensor, end_pos: torch.Tensor,
                    heads: Sequence[str]) -> pd.DataFrame:
    """:func:`role_table` of the named heads on ``tokens`` (one forward pass)."""
    return role_table(attention_patterns(bridge, tokens, heads), member_pos, end_pos, heads)


def aligned_subset(member_pos: torch.Tensor, end_pos: torch.Tensor) -> torch.Tensor:
    """Indices of the largest group of prompts whose members and end sit at the same positions
    (fillers of several tokens shift the positions of some prompts): the prompts an averaged
    pattern can be labelled for."""
    layout = torch.cat([member_pos, end_pos.view(-1, 1)], dim=1)
    groups, inverse, counts = torch.unique(layout, dim=0, return_inverse=True, return_counts=True)
    return torch.nonzero(inverse == int(counts.argmax())).flatten()


def position_labels(bridge: Any, tokens: torch.Tensor, member_pos: torch.Tensor, end_pos: torch.Tensor) -> list[str]:
    """A label per position valid for every prompt of an aligned batch: the token where all prompts
    agree, ``M1..Mn`` for members, ``END`` for the answer position, ``x{i}`` for other varying tokens."""
    if not (member_pos == member_pos[:1]).all() or not (end_pos == end_pos[:1]).all():
        raise ParameterError("Prompts are not aligned: members sit at different positions (keep the prompts "
                             "of aligned_subset).")
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


__all__ = ["RoleAttention", "aligned_subset", "head_role_table", "position_labels", "role_attention", "role_table"]
