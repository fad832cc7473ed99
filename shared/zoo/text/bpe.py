"""A byte-level BPE tokenizer trained on the standard-library corpus, and the corpus as token ids.

The tokenizer is trained once with the ``tokenizers`` library and cached under
``<cache>/tokenizers/stdlib-bpe-<hash>/tokenizer.json``; everything here is deterministic.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

from shared.zoo.cache import cached_dir
from shared.zoo.text.stdlib import stdlib_text
from shared.errors import ParameterError

BOS = "<|bos|>"


def _build_tokenizer(vocab_size: int, folder: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[BOS], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(stdlib_text("train"), trainer=trainer)
    tok.save(str(folder / "tokenizer.json"))


def tokenizer_dir(vocab_size: int = 1024) -> Path:
    """Cache folder holding ``tokenizer.json`` for a BPE vocabulary of ``vocab_size`` tokens."""
    if not 260 <= vocab_size <= 65536:
        raise ParameterError(f"vocab_size must be between 260 and 65536, got {vocab_size}.")
    key = {"kind": "byte-level-bpe", "corpus": "stdlib-train", "vocab_size": vocab_size, "version": 1}
    return cached_dir("tokenizers", "stdlib-bpe", key, lambda tmp: _build_tokenizer(vocab_size, tmp))


@lru_cache(maxsize=4)
def stdlib_tokenizer(vocab_size: int = 1024):
    """The cached BPE tokenizer as a ``transformers.PreTrainedTokenizerFast`` (BOS = ``<|bos|>``)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer.from_file(str(tokenizer_dir(vocab_size) / "tokenizer.json"))
    return PreTrainedTokenizerFast(tokenizer_object=raw, bos_token=BOS, eos_token=BOS, pad_token=BOS,
                                   add_bos_token=True, name_or_path=str(tokenizer_dir(vocab_size)))


@lru_cache(maxsize=4)
def corpus_tokens(split: str = "train", vocab_size: int = 1024, max_chars: int | None = None) -> torch.Tensor:
    """The split's files tokenized and concatenated (a BOS token before each file), as int64 ids."""
    tok = stdlib_tokenizer(vocab_size)
    texts = stdlib_text(split, max_chars=max_chars)
    bos = tok.convert_tokens_to_ids(BOS)
    ids: list[int] = []
    for enc in tok.backend_tokenizer.encode_batch(texts):
        ids.append(bos)
        ids.extend(enc.ids)
    return torch.tensor(ids, dtype=torch.long)


__all__ = ["BOS", "corpus_tokens", "stdlib_tokenizer", "tokenizer_dir"]
