"""Shared fixtures: a temporary model cache and tiny Hugging Face model folders."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):  # `pytest -n 2`: one thread per worker (and per notebook kernel it starts);
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # two workers of two threads each on two cores spin more than they work
    os.environ.setdefault("MKL_NUM_THREADS", "1")
# figures exported by smoke runs go to a temporary folder, not over the book's figures/
os.environ.setdefault("CIRCUITS_BOOK_FIGURES", tempfile.mkdtemp(prefix="circuits-book-figures-"))


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch) -> Path:
    """Point the model cache at an empty temporary folder."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("CIRCUITS_BOOK_CACHE", str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from hf_local import train_bpe_tokenizer

    texts = ["1 2 3 4 5 6 7 8 9 10", "one two three four five", "January February March April",
             "Monday Tuesday Wednesday", "def f(x): return x + 1"] * 20
    return train_bpe_tokenizer(texts, vocab_size=300)


@pytest.fixture(scope="session")
def hf_folders(tmp_path_factory, tiny_tokenizer) -> dict[str, Path]:
    """Random-weight GPT-2, GPT-NeoX and Llama folders sharing one locally trained tokenizer."""
    from hf_local import ARCHITECTURES, make_tiny_hf_model

    root = tmp_path_factory.mktemp("hf")
    return {arch: make_tiny_hf_model(arch, root / arch, tiny_tokenizer) for arch in ARCHITECTURES}
