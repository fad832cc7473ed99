"""The role comparison of the ``families_compared`` chapter, against hand-computed sets."""
from collections import Counter

import pandas as pd
import pytest

from shared.chapters import families as F


def test_head_roles_follow_the_cutoff_successor_first():
    scores = pd.DataFrame({"successor_mean": [0.9, 0.2, 0.5, 0.1], "copy_mean": [0.8, 0.7, 0.0, 0.49]},
                          index=["a0.h0", "a0.h1", "a1.h0", "a1.h1"])
    assert F.head_roles(scores, 0.5) == {"a0.h0": "successor head", "a0.h1": "copy head",
                                         "a1.h0": "successor head", "a1.h1": "other head"}


def test_node_roles_counts_mlps_and_unknown_heads():
    roles = {"a0.h0": "successor head", "a1.h2": "copy head"}
    got = F.node_roles(["a0.h0", "m0", "a1.h2", "a2.h1", "m2"], roles)
    assert got == Counter({"successor head": 1, "copy head": 1, "other head": 1, "MLP": 2})


def test_role_jaccard_is_min_over_max_of_counts():
    a = Counter({"successor head": 2, "MLP": 1})
    b = Counter({"successor head": 1, "MLP": 3, "other head": 1})
    # min: 1 + 1 + 0 = 2; max: 2 + 3 + 1 = 6
    assert F.role_jaccard(a, b) == pytest.approx(2 / 6)
    assert F.role_jaccard(a, a) == 1.0
    assert F.role_jaccard(Counter({"MLP": 2}), Counter({"copy head": 1})) == 0.0
    assert F.role_jaccard(Counter(), Counter()) == 1.0


def test_role_overlap_and_roles_in_all():
    counts = {"gpt": Counter({"successor head": 1, "MLP": 2}),
              "llama": Counter({"successor head": 2, "other head": 1, "MLP": 1}),
              "neox": Counter({"MLP": 1, "other head": 3})}
    table = F.role_overlap(counts)
    assert list(table.index) == ["gpt", "llama", "neox"]
    assert table.loc["gpt", "llama"] == pytest.approx(2 / 5)   # min 1+0+1, max 2+1+2
    assert table.loc["llama", "neox"] == pytest.approx(2 / 6)  # min 0+1+1, max 2+3+1
    assert table.loc["gpt", "neox"] == table.loc["neox", "gpt"] == pytest.approx(1 / 6)  # min 0+0+1, max 1+3+2
    assert F.roles_in_all(counts) == ["MLP"]
    assert F.roles_in_all({k: counts[k] for k in ("gpt", "llama")}) == ["successor head", "MLP"]
    assert F.roles_in_all({}) == []
    assert F.role_table(counts).loc["neox"].tolist() == [0, 0, 3, 1]
