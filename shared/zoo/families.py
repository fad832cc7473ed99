"""Siblings of the suite's middle model in two other architecture families, saved as Hugging Face folders.

``family-llama-m`` and ``family-neox-m`` read the same generated documents in the same order as
``suite-m-s0`` (:mod:`shared.zoo.text.suite_corpus`, data seed 0, the held-out forms filtered out by the
corpus itself), for the same 1600 steps of 32 x 128 tokens, with the same learning-rate schedule and
seed (:func:`shared.zoo.suite.pretrain`). What differs is the architecture and the tokenizer:

==========  =================================================  ===========================================
model       architecture (transformers class)                  tokenizer (trained here, vocabulary 2048)
==========  =================================================  ===========================================
suite-m-s0  GPT-2-style: LayerNorm, learned positions, GELU    byte-level BPE, digits cut in pairs
            MLP; 3 layers, d_model 96, 3 heads of d 32
llama-m     ``LlamaForCausalLM``: RMSNorm, rotary, SwiGLU MLP  SentencePiece-style BPE: "▁" marks a word
            (width 256), 4 query heads of d 24 sharing 2       start, every digit is its own token, BOS
            key/value heads (grouped-query attention)          ``<s>`` is added unless told not to
neox-m      ``GPTNeoXForCausalLM``: parallel attention and     byte-level BPE without digit rules (numbers
            MLP, rotary on a quarter of each head, LayerNorm,  merge as the data made them), no BOS added
            3 heads of d 32
==========  =================================================  ===========================================

Each model is trained in float32 through its transformers class, then written with ``save_pretrained``
in float16 next to its tokenizer; :func:`shared.zoo.registry.load_model` boots the folder with
``TransformerBridge.boot_transformers``, the path a downloaded Llama-2 or Pythia takes.
"""
from __future__ import annotations

import random
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from safetensors import safe_open

from shared.errors import ParameterError
from shared.zoo.cache import cached_dir
from shared.zoo.registry import PRETRAINED, LocalModel, local_model_dir, local_models, register_local_model
from shared.zoo.suite import RECIPE, SIZES, pretrain
from shared.zoo.text.suite_corpus import DEFAULT_MIX, document, required_tokens

FAMILIES = ("llama", "neox")
SIBLING_OF = "suite-m-s0"
TOKENIZER_KINDS = ("llama", "neox")
_ASCII = [chr(c) for c in range(32, 127)] + ["\n", "\t"]


def family_name(family: str) -> str:
    return f"family-{family}-m"


def _training_text(n_docs: int, seed: int) -> list[str]:
    """Tokenizer training text: generated documents plus a glossary of the corpus's words and years
    (the same recipe as the suite tokenizer's, so names and members are frequent enough to merge)."""
    rng = random.Random(f"suite-tokenizer-{seed}")
    glossary = " ".join(w.strip() for w in required_tokens()[:-100])
    years = " ".join(str(y) for y in range(1000, 2100))
    return [document(rng) for _ in range(n_docs)] + [glossary] * 300 + [years] * 20


def _build_llama_tokenizer(vocab_size: int, n_docs: int, seed: int, folder: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first"),
                                                 pre_tokenizers.Digits(individual_digits=True)])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    tok.train_from_iterator(_training_text(n_docs, seed), trainer=trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False,
        initial_alphabet=_ASCII + ["▁"]))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    tok.save(str(folder / "tokenizer.json"))


def _build_neox_tokenizer(vocab_size: int, n_docs: int, seed: int, folder: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    tok.train_from_iterator(_training_text(n_docs, seed), trainer=trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(str(folder / "tokenizer.json"))


@lru_cache(maxsize=4)
def family_tokenizer(kind: str, vocab_size: int = 2048, n_docs: int = 30_000, seed: int = 0) -> Any:
    """The cached tokenizer of ``kind`` as a ``PreTrainedTokenizerFast``.

    ``"llama"``: BOS ``<s>`` is prepended by the tokenizer itself (as Llama-2's does) unless
    ``add_special_tokens=False``; ``"neox"``: ``<|endoftext|>`` is BOS, EOS and padding and is never
    added by the tokenizer (as Pythia's)."""
    from transformers import PreTrainedTokenizerFast

    if kind not in TOKENIZER_KINDS:
        raise ParameterError(f"Unknown tokenizer kind {kind!r}; choose one of {', '.join(TOKENIZER_KINDS)}.")
    key = dict(kind=f"{kind}-style", vocab_size=vocab_size, n_docs=n_docs, seed=seed, mix=DEFAULT_MIX, version=1)
    builder = _build_llama_tokenizer if kind == "llama" else _build_neox_tokenizer
    folder = cached_dir("tokenizers", f"{kind}-style", key, lambda tmp: builder(vocab_size, n_docs, seed, tmp))
    if kind == "llama":
        specials = dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="</s>")
    else:
        specials = dict(bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    return PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), name_or_path=str(folder),
                                   clean_up_tokenization_spaces=False, **specials)


def hf_config(family: str, config: dict[str, Any], tokenizer: Any) -> Any:
    """The transformers config of ``family`` for the book's ``config`` (sizes of :data:`CONFIGS`)."""
    import transformers as tf

    common = dict(vocab_size=config["d_vocab"], hidden_size=config["d_model"], num_hidden_layers=config["n_layers"],
                  num_attention_heads=config["n_heads"], intermediate_size=config["d_mlp"],
                  max_position_embeddings=config["n_ctx"], tie_word_embeddings=False,
                  bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    if family == "llama":
        return tf.LlamaConfig(num_key_value_heads=config["n_kv_heads"], head_dim=config["d_head"],
                              rms_norm_eps=1e-5, hidden_act="silu", **common)
    return tf.GPTNeoXConfig(rotary_pct=config["rotary_pct"], use_parallel_residual=True, hidden_act="gelu",
                            layer_norm_eps=1e-5, **common)


class LogitsOnly(torch.nn.Module):
    """A transformers causal LM seen as ``tokens -> logits`` (what :func:`shared.zoo.train.train_loop` calls)."""

    def __init__(self, hf_model: Any):
        super().__init__()
        self.hf_model = hf_model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.hf_model(input_ids=tokens).logits


def _builder(family: str):
    def build(config: dict[str, Any], recipe: dict[str, Any], folder: Path) -> dict[str, Any]:
        import transformers as tf

        tokenizer = family_tokenizer(family, vocab_size=config["d_vocab"])
        torch.manual_seed(recipe["seed"])
        cls = tf.LlamaForCausalLM if family == "llama" else tf.GPTNeoXForCausalLM
        hf_model = cls(hf_config(family, config, tokenizer)).float()
        trainee = SimpleNamespace(original_model=LogitsOnly(hf_model), tokenizer=tokenizer,
                                  cfg=SimpleNamespace(n_ctx=config["n_ctx"]))
        metrics = pretrain(trainee, recipe, checkpoints=None, desc=family_name(family))
        hf_model.to(torch.float16).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        metrics["architecture"] = cls.__name__
        metrics["parameters"] = sum(p.numel() for p in hf_model.parameters())
        return metrics
    return build


# Parameter counts of pretrained models, known without downloading them (the models' Hugging Face
# weights: Touvron et al. 2023 for Llama-2, Biderman et al. 2023, table 1, for Pythia).
PRETRAINED_PARAMETERS: dict[str, int] = {"llama-2-7b": 6_738_415_616, "pythia-1.4b": 1_414_647_808,
                                         "gpt2-small": 124_439_808, "gpt2": 124_439_808}


def parameter_count(name: str) -> int:
    """Parameters of model ``name`` without loading it: from :data:`PRETRAINED_PARAMETERS`, or from the
    tensor shapes in a local model's weight files (the headers only)."""
    if name in PRETRAINED_PARAMETERS:
        return PRETRAINED_PARAMETERS[name]
    if name not in local_models():
        raise ParameterError(f"No parameter count is recorded for {name!r}; known: "
                             f"{', '.join(sorted(PRETRAINED_PARAMETERS))} and the local models.")
    total = 0
    for path in sorted(local_model_dir(name).glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():
                total += int(torch.tensor(f.get_slice(key).get_shape()).prod())
    return total


def memory_line(name: str) -> str:
    """One line: the parameters of ``name`` and the memory its weights need in float32 and float16
    (activations and caches come on top)."""
    n = parameter_count(name)
    where = f" ({PRETRAINED[name]})" if name in PRETRAINED else ""
    def size(n_bytes: int) -> str:
        return f"{n_bytes / 2 ** 30:,.2f} GiB" if n_bytes >= 2 ** 30 else f"{n_bytes / 2 ** 20:,.1f} MiB"
    return (f"{name}{where}: {n / 1e6:,.2f} M parameters; its weights need {size(4 * n)} in float32, "
            f"{size(2 * n)} in float16")


_M = SIZES["m"]
CONFIGS: dict[str, dict[str, Any]] = {
    "llama": dict(n_layers=_M["n_layers"], d_model=_M["d_model"], n_heads=4, d_head=24, n_kv_heads=2, d_mlp=256,
                  n_ctx=128, d_vocab=2048),
    "neox": dict(n_layers=_M["n_layers"], d_model=_M["d_model"], n_heads=_M["n_heads"], d_head=_M["d_head"],
                 rotary_pct=0.25, d_mlp=4 * _M["d_model"], n_ctx=128, d_vocab=2048),
}


def _register() -> None:
    recipe = dict(RECIPE, lr=_M["lr"], seed=0)
    for family in FAMILIES:
        register_local_model(LocalModel(
            name=family_name(family), config=dict(CONFIGS[family]), recipe=recipe, trainer=None,
            description=f"{family.capitalize()}-style sibling of {SIBLING_OF} (Hugging Face folder, "
                        f"{family}-style tokenizer), trained on the suite's corpus",
            build_folder=_builder(family), version=1))


_register()


__all__ = ["CONFIGS", "FAMILIES", "LogitsOnly", "PRETRAINED_PARAMETERS", "memory_line", "parameter_count", "SIBLING_OF", "TOKENIZER_KINDS", "family_name", "family_tokenizer",
           "hf_config"]
