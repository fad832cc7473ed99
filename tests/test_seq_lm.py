"""Scoring, filtering, corruption and teacher forcing on shipped models are right."""
from __future__ import annotations

import pytest
import torch

from shared.tasks import sequences as tasks
from shared.tasks import tokens
from shared.zoo.registry import boot_native, load_model, model_metrics
from shared.zoo.text.seq_tokenizers import seq_tokenizer
from shared.zoo.seq_lm import is_trained


@pytest.fixture(scope="module")
def seq_lm():
    """A shipped language model that continues the book's sequences (seq-lm itself is no longer shipped)."""
    torch.manual_seed(0)
    return load_model("suite-l-s0")


def test_corruption_lowers_logit_difference(seq_lm):
    prompts = tasks.generate("numerals", "bare", 4, 40, seed=5)
    batch = tasks.make_batch(seq_lm, prompts, corruption="random_members", seed=0)
    with torch.no_grad():
        clean, bad = seq_lm(batch.clean)[:, -1], seq_lm(batch.corrupt)[:, -1]
    idx = torch.arange(len(batch))

    def diff(logits):
        return (logits[idx, batch.correct] - logits[idx, batch.incorrect]).mean().item()

    assert diff(clean) > 0.5 and diff(bad) < diff(clean) - 0.5  # suite-l-s0: 0.92 clean, 0.06 corrupted


def test_filter_correct_counts_and_seeding(seq_lm):
    prompts = tasks.generate("months", n_prompts=30, seed=1) + tasks.generate("letters", n_prompts=30, seed=1)
    kept = tokens.filter_correct(seq_lm, prompts, min_margin=0.1, verbose=False)
    table = tokens.score(seq_lm, prompts)
    expected = (table.top1 & (table.margin >= 0.1))
    assert len(kept) == int(expected.sum())
    assert kept.counts["months"] == (int(expected[:30].sum()), 30)
    assert all(p in prompts for p in kept)
    a = tokens.filter_correct(seq_lm, prompts, max_keep=5, seed=3, verbose=False)
    b = tokens.filter_correct(seq_lm, prompts, max_keep=5, seed=3, verbose=False)
    assert a == b and all(sum(p.task == t for p in a) <= 5 for t in ("months", "letters"))


def test_teacher_forced_scores_sum_token_log_probs():
    """With a digit-splitting tokenizer, a two-digit answer is three tokens scored by teacher forcing."""
    tok = seq_tokenizer("digits")
    cfg = dict(n_layers=1, d_model=32, n_heads=2, d_head=16, d_vocab=len(tok), n_ctx=64, attn_only=True,
               normalization_type="LN", seed=0)
    model = boot_native(cfg, tokenizer=tok)
    model.eval()
    prompts = [p for p in tasks.generate("numerals", "among_words", 4, 40, seed=0)
               if all(len(m) == 2 for m in p.members + (p.answer,))][:3]
    table = tokens.score(model, prompts, multi_token=True)
    for row, p in zip(table.itertuples(), prompts):
        ids, _ = tokens.tokenize(tok, p.text + " " + p.answer)
        n_answer = len(tokens.answer_ids(tok, [p.answer])[0])
        assert n_answer == 3
        with torch.no_grad():
            logp = model(torch.tensor([ids]))[0].log_softmax(-1)
        manual = sum(logp[pos - 1, ids[pos]].item() for pos in range(len(ids) - n_answer, len(ids)))
        assert row.logprob == pytest.approx(manual, abs=1e-4)


def test_shipped_digit_model_continues_multi_token_numbers():
    """The Llama-style sibling splits digits: numbers are several tokens, and it continues held-out bare
    numeral sequences digit by digit (teacher forcing) well above chance."""
    torch.manual_seed(0)
    model = load_model("family-llama-m")
    assert any(len(ids) > 1 for ids in tokens.answer_ids(model, [" 42", " 57"]))
    table = tokens.score(model, tasks.generate("numerals", "bare", 4, 40, seed=777), multi_token=True)
    assert table.top1.mean() >= 0.8, f"{table.top1.mean():.2f}"
