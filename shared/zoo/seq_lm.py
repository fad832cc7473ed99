"""Local model ``seq-lm``: a small GPT-2-style language model for the sequence-continuation chapters.

Four layers with LayerNorm and MLPs, trained on CPU on a mix of standard-library source text and
generated passages full of ordered sequences (:mod:`shared.zoo.text.sequences`; none of the evaluation
templates). Its tokenizer keeps numbers, number words, months, days and letters as single tokens
(:func:`shared.zoo.text.seq_tokenizers.seq_tokenizer`); ``seq-lm-digits`` is the same recipe with the
digit-splitting tokenizer variant. After training, held-out accuracy per task on the
evaluation templates is stored in the model's metrics (:func:`shared.zoo.registry.model_metrics`).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from shared.paths import cache_dir
from shared.tasks import sequences as tasks
from shared.tasks.tokens import answer_ids, score
from shared.zoo.cache import config_key
from shared.zoo.registry import Checkpoints, LocalModel, local_models, register_local_model
from shared.zoo.text.seq_tokenizers import seq_tokenizer
from shared.zoo.text.sequences import passages
from shared.zoo.text.stdlib import stdlib_text
from shared.zoo.train import evaluate_loss, train_loop

CONFIG = dict(n_layers=4, d_model=128, n_heads=4, d_head=32, d_vocab=2048, n_ctx=64, attn_only=False,
              d_mlp=512, act_fn="gelu", normalization_type="LN", positional_embedding_type="standard",
              seed=0)
RECIPE = dict(tokenizer="words", vocab_size=2048, corpus_chars=3_000_000, passages=80_000, seq_share=0.7,
              steps=1600, batch_size=32, lr=2e-3, warmup=150, seed=0, eval_samps=100,
              task_weights={"numerals": 3.0, "months": 2.0})
# Tasks and seeds of the held-out evaluation (different seeds from anything the chapters draw).
EVAL_SEED = 12345


def _tokenizer(recipe: dict[str, Any]) -> Any:
    return seq_tokenizer(recipe["tokenizer"], vocab_size=recipe["vocab_size"])


def _stream(tok: Any, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """All texts as one token array, each preceded by BOS; also the start index of each text."""
    bos = tok.bos_token_id
    ids = tok(texts, add_special_tokens=False)["input_ids"]
    starts = np.cumsum([0] + [len(x) + 1 for x in ids[:-1]])
    flat = np.fromiter((t for x in ids for t in [bos, *x]), dtype=np.int64)
    return flat, starts


def is_trained(name: str) -> bool:
    """Whether local model ``name`` (default settings) is already in the cache, so loading it won't train."""
    spec = local_models()[name]
    key = {"name": name, "version": spec.version, "config": spec.config, "recipe": spec.recipe}
    return (cache_dir() / "models" / f"{name}-{config_key(key)}" / "model.safetensors").exists()


def held_out_accuracy(bridge: Any, n_prompts: int = 100, seed: int = EVAL_SEED) -> dict[str, dict[str, float]]:
    """Top-1 accuracy and mean logit difference per task and template on freshly drawn prompts."""
    out: dict[str, dict[str, float]] = {}
    for template in tasks.TEMPLATES:
        for task in tasks.TASKS:
            spec = tasks.get_task(task)
            n = min(n_prompts, len(spec.starts(4))) if template == "bare" else n_prompts
            multi = any(len(ids) > 1 for ids in answer_ids(bridge, spec.sequence))
            table = score(bridge, tasks.generate(task, template, 4, n, seed=seed), multi_token=multi)
            out[f"{template}/{task}"] = dict(accuracy=float(table.top1.mean()),
                                             logit_diff=float(table.logit_diff.mean()), n=int(n))
    return out


def _train(bridge: Any, recipe: dict[str, Any], checkpoints: Checkpoints) -> dict[str, Any]:
    tok = bridge.tokenizer
    n_ctx = bridge.cfg.n_ctx
    code, _ = _stream(tok, stdlib_text("train", max_chars=recipe["corpus_chars"]))
    texts = passages(recipe["passages"], seed=recipe["seed"], weights=recipe["task_weights"])
    seqs, seq_starts = _stream(tok, [" " + p for p in texts])
    seq_starts = seq_starts[seq_starts + n_ctx < len(seqs)]
    n_seq = int(round(recipe["batch_size"] * recipe["seq_share"]))
    n_code = recipe["batch_size"] - n_seq

    def batch(step: int, source_seed: int = recipe["seed"]) -> tuple[torch.Tensor, None]:
        rng = np.random.default_rng([source_seed, step])
        code_rows = [code[s:s + n_ctx] for s in rng.integers(0, len(code) - n_ctx, n_code)]
        seq_rows = [seqs[s:s + n_ctx] for s in rng.choice(seq_starts, n_seq)]
        return torch.from_numpy(np.stack(code_rows + seq_rows)), None

    losses = train_loop(bridge, batch, recipe["steps"], lr=recipe["lr"], warmup=recipe["warmup"],
                        seed=recipe["seed"], desc="seq-lm")
    val_code, _ = _stream(tok, stdlib_text("validation", max_chars=200_000))
    val_batches = [(torch.from_numpy(np.stack([val_code[s:s + n_ctx] for s in range(i, i + 32 * n_ctx, n_ctx)])), None)
                   for i in range(0, min(len(val_code) - 33 * n_ctx, 8 * 32 * n_ctx), 32 * n_ctx)]
    held = held_out_accuracy(bridge, recipe["eval_samps"])
    return dict(final_train_loss=float(np.mean(losses[-50:])), validation_code_loss=evaluate_loss(bridge, val_batches),
                tokens_seen=recipe["steps"] * recipe["batch_size"] * n_ctx, held_out=held)


register_local_model(LocalModel(
    name="seq-lm",
    description="4-layer GPT-2-style LM trained on code and generated sequences",
    config=CONFIG, recipe=RECIPE, trainer=_train, tokenizer=_tokenizer, version=2,
))
# The same model and data with the digit-splitting tokenizer (numbers are several tokens), for
# experiments on how tokenization shapes the circuit. Shipped trained (about 7 minutes on one core).
register_local_model(LocalModel(
    name="seq-lm-digits",
    description="4-layer GPT-2-style LM like seq-lm, with a digit-splitting tokenizer",
    config=CONFIG, recipe={**RECIPE, "tokenizer": "digits"}, trainer=_train, tokenizer=_tokenizer, version=2,
))


__all__ = ["CONFIG", "EVAL_SEED", "RECIPE", "held_out_accuracy", "is_trained"]
