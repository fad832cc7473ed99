"""Two byte-level BPE tokenizers for the sequence language model, trained once and cached.

* ``"words"`` (GPT-2-like): ``" 1"``..``" 100"``, the number words, months, days, letters and the
  filler words are single tokens (guaranteed by a glossary added to the training text, and checked).
* ``"digits"`` (Llama-like): digits are split into single characters before BPE, so ``" 42"`` is
  ``" ", "4", "2"``; words behave as in ``"words"``.

Both use ``<|endoftext|>`` as BOS and EOS and add no special tokens themselves: prompts add BOS
explicitly (see :func:`shared.tasks.tokens.tokenize`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from shared.errors import ParameterError
from shared.tasks.sequences import DEFAULT_FILLERS, DEFAULT_VERB, ORDINALS
from shared.zoo.cache import cached_dir
from shared.zoo.text.sequences import NAMES, NOUNS
from shared.zoo.text.sequences import passages as make_passages
from shared.zoo.text.stdlib import stdlib_text

VARIANTS = ("words", "digits")
SPECIAL = "<|endoftext|>"


def required_words() -> list[str]:
    """Words the ``words`` variant must keep as single tokens (each with a leading space): task
    members, the evaluation fillers and verb (so that e.g. " done" is never read as " d" + "one")."""
    words = ([w for seq in ORDINALS.values() for w in seq] + list(DEFAULT_FILLERS) + DEFAULT_VERB.split()
             + list(NAMES) + list(NOUNS))
    return list(dict.fromkeys(words))


def _training_text(corpus_chars: int, passages: int, seed: int) -> list[str]:
    texts = stdlib_text("train", max_chars=corpus_chars) + make_passages(passages, seed=seed)
    glossary = "".join(f" {w}" for w in required_words())
    return texts + [glossary] * 400


def seq_tokenizer(variant: str = "words", vocab_size: int = 2048, corpus_chars: int = 1_500_000,
                  passages: int = 20_000, seed: int = 0) -> Any:
    """The cached ``PreTrainedTokenizerFast`` of ``variant`` (trained on first use, ~30 s)."""
    if variant not in VARIANTS:
        raise ParameterError(f"Unknown tokenizer variant {variant!r}; choose one of {', '.join(VARIANTS)}.")
    key = dict(variant=variant, vocab_size=vocab_size, corpus_chars=corpus_chars, passages=passages,
               seed=seed, version=4)

    def build(tmp: Path) -> None:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE())
        byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.pre_tokenizer = (byte_level if variant == "words" else pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level]))
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[SPECIAL], show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(_training_text(corpus_chars, passages, seed), trainer=trainer)
        tok.save(str(tmp / "tokenizer.json"))

    folder = cached_dir("tokenizers", f"seq-{variant}", key, build)
    tokenizer = _wrap(folder / "tokenizer.json")
    if variant == "words":
        split = [w for w in required_words() if len(tokenizer(" " + w, add_special_tokens=False)["input_ids"]) != 1]
        if split:
            raise ParameterError(f"The tokenizer splits {len(split)} required words (e.g. {split[0]!r}); "
                                 f"raise vocab_size.")
    return tokenizer


def _wrap(path: Path) -> Any:
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_file(str(path)), bos_token=SPECIAL,
                                   eos_token=SPECIAL, pad_token=SPECIAL, add_bos_token=True,
                                   name_or_path=str(path.parent))


__all__ = ["SPECIAL", "VARIANTS", "required_words", "seq_tokenizer"]
