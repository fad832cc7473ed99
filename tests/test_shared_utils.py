"""Small shared utilities: corpus split, cache folders, offline circuitsvis views."""
from __future__ import annotations

import pytest

from shared.zoo import cache
from shared.zoo.text import stdlib as corpus
from shared.plots import widgets as viz
from shared.errors import ParameterError


def test_corpus_split_is_deterministic_and_disjoint():
    train, valid = corpus.stdlib_files("train"), corpus.stdlib_files("validation")
    assert train == corpus.stdlib_files("train")
    assert not set(train) & set(valid)
    assert 0.01 < len(valid) / (len(train) + len(valid)) < 0.15
    assert not any("site-packages" in p.parts or p.name.startswith("test_") for p in train)
    assert sum(map(len, corpus.stdlib_text("validation", max_chars=1000))) == 1000
    with pytest.raises(ParameterError):
        corpus.stdlib_files("test")


def test_cached_dir_builds_once_and_keys_by_content(tmp_cache):
    built = []

    def build(folder):
        built.append(folder)
        (folder / "x.txt").write_text("hello")

    a = cache.cached_dir("things", "demo", {"size": 1}, build)
    b = cache.cached_dir("things", "demo", {"size": 1}, build)
    c = cache.cached_dir("things", "demo", {"size": 2}, build)
    assert a == b != c and len(built) == 2
    assert (a / "x.txt").read_text() == "hello" and (a / "key.json").exists()
    assert cache.config_key({"a": 1, "b": 2}) == cache.config_key({"b": 2, "a": 1})


def test_circuitsvis_view_loads_the_bundle_once_with_cdn_fallback():
    html = viz.circuitsvis_html("AttentionPatterns", tokens=["a", "b"], attention=[[[1.0, 0.0], [0.5, 0.5]]])
    assert f"_static/{viz.BUNDLE_NAME}" in html and "unpkg.com/circuitsvis" in html
    assert "CircuitsVis.AttentionPatterns" in html and len(html) < 5000, "the bundle must not be inlined"
    assert viz.bundle_path().exists()


def test_aligned_subset_keeps_the_commonest_layout():
    import torch

    from shared.analysis.roles import aligned_subset
    member = torch.tensor([[2, 5], [3, 6], [2, 5], [2, 5], [3, 6]])
    end = torch.tensor([8, 9, 8, 8, 9])
    assert aligned_subset(member, end).tolist() == [0, 2, 3]
    end = torch.tensor([8, 9, 8, 7, 9])  # the end position splits a group too
    assert aligned_subset(member, end).tolist() in ([0, 2], [1, 4])
