"""Tiny Hugging Face model folders with random weights and a locally trained tokenizer.

They exercise the exact loading path of pretrained models (``boot_transformers`` on a folder) without
any download: GPT-2, GPT-NeoX (Pythia) and Llama architectures.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

import torch

ARCHITECTURES = ("gpt2", "neox", "llama")


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 300):
    """A byte-level BPE tokenizer (GPT-2 style) trained on ``texts``, as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(list(texts), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>",
                                   eos_token="<|endoftext|>", unk_token="<|endoftext|>")


def make_tiny_hf_model(arch: str, folder: Path, tokenizer, n_layers: int = 2, d_model: int = 32,
                       n_heads: int = 4, n_ctx: int = 64, seed: int = 0, n_kv_heads: Optional[int] = None) -> Path:
    """Save a randomly initialised ``arch`` model plus ``tokenizer`` into ``folder`` (``n_kv_heads``:
    grouped-query attention, Llama only)."""
    import transformers as tf

    vocab = len(tokenizer)
    common = dict(vocab_size=vocab, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    if arch == "gpt2":
        config = tf.GPT2Config(n_layer=n_layers, n_embd=d_model, n_head=n_heads, n_positions=n_ctx, **common)
        cls = tf.GPT2LMHeadModel
    elif arch == "neox":
        config = tf.GPTNeoXConfig(num_hidden_layers=n_layers, hidden_size=d_model, num_attention_heads=n_heads,
                                  intermediate_size=4 * d_model, max_position_embeddings=n_ctx, **common)
        cls = tf.GPTNeoXForCausalLM
    elif arch == "llama":
        config = tf.LlamaConfig(num_hidden_layers=n_layers, hidden_size=d_model, num_attention_heads=n_heads,
                                num_key_value_heads=n_kv_heads or n_heads, intermediate_size=4 * d_model,
                                max_position_embeddings=n_ctx, **common)
        cls = tf.LlamaForCausalLM
    else:
        raise ValueError(f"Unknown architecture {arch!r}; choose one of {ARCHITECTURES}.")
    torch.manual_seed(seed)
    model = cls(config)
    folder = Path(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
