"""Sequence tasks (shared.tasks.sequences) and their tokens (shared.tasks.tokens): fields agree with text,
corruptions, token positions, BOS, seeding, ordinal lists, errors."""
from __future__ import annotations

import pytest

from shared.tasks import sequences as tasks
from shared.tasks import tokens
from shared.errors import ParameterError
from shared.zoo.text.seq_tokenizers import seq_tokenizer


@pytest.fixture(scope="module")
def words_tok():
    return seq_tokenizer("words")


@pytest.fixture(scope="module")
def digits_tok():
    return seq_tokenizer("digits")


def _check_fields(p: tasks.SeqPrompt) -> None:
    """The text is exactly what the fields render to, and every span holds its field."""
    again = tasks.render(p.task, p.template, p.members, p.answer, p.incorrect, p.fillers, p.verb, p.corruption)
    assert again.text == p.text
    assert [p.text[a:b] for a, b in p.member_spans] == list(p.members)
    assert [p.text[a:b] for a, b in p.filler_spans] == list(p.fillers)
    # each member stands alone as a word
    for a, b in p.member_spans:
        assert p.text[a - 1] == " " and (b == len(p.text) or p.text[b] in " .")


def _all_prompts(num: int = 12):
    for task in tasks.TASKS:
        for template in tasks.TEMPLATES:
            n = min(num, len(tasks.get_task(task).starts(4))) if template == "bare" else num
            yield tasks.generate(task, template, n_members=4, n_prompts=n, seed=1)


def test_fields_match_text_for_every_clean_and_corrupted_prompt():
    checked = 0
    for prompts in _all_prompts():
        for p in prompts:
            _check_fields(p)
            spec = tasks.get_task(p.task)
            assert p.incorrect == p.members[-1]
            assert all(spec.follows(a, b) for a, b in zip(p.members, p.members[1:] + (p.answer,)))
            checked += 1
        for corruption in tasks.CORRUPTIONS:
            for clean, bad in zip(prompts, tasks.corrupt(prompts, corruption, seed=3)):
                _check_fields(bad)
                assert bad.fillers == clean.fillers and bad.corruption == corruption
                assert (bad.answer, bad.incorrect) == (clean.answer, clean.incorrect)
                if corruption == "random_members":
                    spec = tasks.get_task(bad.task)
                    assert not any(spec.follows(a, b) for a, b in zip(bad.members, bad.members[1:]))
                elif corruption == "switch_last_two":
                    assert bad.members == clean.members[:-2] + (clean.members[-1], clean.members[-2])
                elif corruption == "repeat_last":
                    assert bad.members == clean.members[:-1] + (clean.members[-2],)
                else:
                    assert sorted(bad.members) == sorted(clean.members) and bad.members != clean.members
                checked += 1
    assert checked > 500


def test_filler_words_survive_intact():
    fillers = ("Tent", "drone", "Often", "Tenth", "oneself", "Maybe")
    prompts = tasks.generate("number_words", "among_words", 4, 30, seed=0, fillers=fillers)
    prompts += tasks.corrupt(prompts, "random_members", seed=0)
    for p in prompts:
        _check_fields(p)
        words = p.text.replace(".", " ").split()
        assert [w for w in words if w in fillers] == list(p.fillers)
        assert all(w in fillers + tasks.NUMBER_WORDS + ("done", "in") for w in words)


def test_same_seed_same_dataset():
    a = tasks.generate("months", n_prompts=40, seed=7)
    b = tasks.generate("months", n_prompts=40, seed=7)
    c = tasks.generate("months", n_prompts=40, seed=8)
    assert a == b and a != c
    assert tasks.corrupt(a, "random_members", seed=2) == tasks.corrupt(b, "random_members", seed=2)
    assert len({p.text for p in a}) == 40


def test_positions_point_at_member_tokens_with_bos(words_tok):
    for prompts in _all_prompts(8):
        enc = tokens.encode(words_tok, prompts)
        assert (enc.tokens[:, 0] == tokens.bos_id(words_tok)).all()
        for i, p in enumerate(prompts):
            shown = words_tok.convert_ids_to_tokens(enc.tokens[i, enc.member_pos[i]].tolist())
            assert [s.replace("Ġ", " ") for s in shown] == [" " + m for m in p.members]
            assert enc.end_pos[i] == enc.tokens.shape[1] - 1
            assert enc.answers[i] == tokens.answer_ids(words_tok, [p.answer])[0]


def test_make_batch_answers_and_equal_lengths(words_tok):
    prompts = tasks.generate("numerals", n_prompts=20, seed=0)
    for corruption in tasks.CORRUPTIONS:
        batch = tasks.make_batch(words_tok, prompts, corruption=corruption)
        assert batch.clean.shape == batch.corrupt.shape and len(batch) == 20
        assert (batch.corrupt[:, 0] == batch.clean[:, 0]).all()
        assert batch.correct.tolist() == [i[0] for i in tokens.answer_ids(words_tok, [p.answer for p in prompts])]
        assert batch.incorrect.tolist() == [i[0] for i in tokens.answer_ids(words_tok, [p.members[-1] for p in prompts])]
        assert (batch.answer_pos == batch.clean.shape[1] - 1).all()
        # corrupted tokens differ from clean ones only at member positions
        member_pos, _ = tokens.token_positions(words_tok, prompts)
        differs = (batch.clean != batch.corrupt)
        for i in range(len(batch)):
            assert set(differs[i].nonzero().view(-1).tolist()) <= set(member_pos[i].tolist())


def test_ordinal_tokens(words_tok, digits_tok):
    ids = tasks.ordinal_tokens(words_tok, "numerals")
    assert len(set(ids.tolist())) == 100
    assert words_tok.decode(ids[:3].tolist()) == " 1 2 3"
    assert words_tok.decode(tasks.ordinal_tokens(words_tok, "months")[[0, 11]].tolist()) == " January December"
    with pytest.raises(ParameterError, match="not single-token"):
        tasks.ordinal_tokens(digits_tok, "plus2")


def test_ordinal_lists_once_per_list(words_tok, digits_tok, capsys):
    lists = tasks.ordinal_lists(words_tok, ["numerals", "plus2", "months"])
    assert list(lists) == ["numerals", "months"]  # plus2 counts on the numerals list
    assert lists["months"].cyclic and not lists["numerals"].cyclic
    assert lists["numerals"].ids.tolist() == tasks.ordinal_tokens(words_tok, "numerals").tolist()
    only_words = tasks.ordinal_lists(digits_tok, ["numerals", "months"])  # numerals split into digits here
    assert list(only_words) == ["months"] and "numerals" in capsys.readouterr().out
    with pytest.raises(ParameterError, match="single-token"):
        tasks.ordinal_lists(digits_tok, ["numerals"])


def test_digit_tokenizer_multi_token_members(digits_tok):
    prompts = tasks.generate("numerals", "bare", 4, 5, seed=0)
    with pytest.raises(ParameterError, match="multi_token=True"):
        tokens.encode(digits_tok, prompts)
    two_digit = [p for p in tasks.generate("numerals", "among_words", 4, 60, seed=0)
                 if all(len(m) == 2 for m in p.members + (p.answer,))]
    enc = tokens.encode(digits_tok, two_digit, multi_token=True)
    for i, p in enumerate(two_digit):
        last_digits = digits_tok.convert_ids_to_tokens(enc.tokens[i, enc.member_pos[i]].tolist())
        assert last_digits == [m[-1] for m in p.members]
        assert len(enc.answers[i]) == 3  # " ", tens digit, units digit
    mixed = tasks.generate("numerals", "bare", 4, 30, seed=0)
    with pytest.raises(ParameterError, match="different lengths"):
        tokens.encode(digits_tok, mixed, multi_token=True)
    groups = tokens.group_by_length(digits_tok, mixed)
    assert sum(map(len, groups.values())) == 30 and len(groups) > 1


def test_bad_parameters_fail_early(words_tok):
    with pytest.raises(ParameterError, match="Unknown task"):
        tasks.generate("primes")
    with pytest.raises(ParameterError, match="distinct prompts"):
        tasks.generate("days", "bare", n_prompts=50)
    with pytest.raises(ParameterError, match="Unknown corruption"):
        tasks.make_batch(words_tok, tasks.generate("numerals", n_prompts=4), corruption="shuffle")
    with pytest.raises(ParameterError, match="Unknown template"):
        tasks.generate("numerals", "list")


def test_empty_inputs_fail_with_one_sentence(words_tok):
    """No prompts, no members, no model call: each gives a ParameterError naming what is empty."""
    with pytest.raises(ParameterError, match="n_prompts must be at least 1, got 0"):
        tasks.generate("numerals", n_prompts=0)
    with pytest.raises(ParameterError, match="at least one member"):
        tasks.render("numerals", "bare", [], "1")
    with pytest.raises(ParameterError, match="at least one member"):
        tasks.render("numerals", "among_words", [], "1", fillers=["Sun"])
    with pytest.raises(ParameterError, match="at least one prompt"):
        tokens.filter_correct(words_tok, [])


def test_gpt2_style_tokenizer_without_bos_token(words_tok):
    """A tokenizer with only an EOS (as GPT-2) starts prompts with that EOS."""
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=words_tok.backend_tokenizer, eos_token="<|endoftext|>")
    assert tok.bos_token_id is None
    ids, offsets = tokens.tokenize(tok, " 1 2")
    assert ids[0] == tok.eos_token_id and offsets[0] == (0, 0)


@pytest.fixture(scope="module")
def llama_like_tok():
    """A small sentencepiece-style tokenizer: prepends "▁", spaces become "▁", digits split."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from shared.zoo.text import sequences as seq_corpus

    tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split("▁", "merged_with_next"),
                                                 pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.Punctuation()])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    texts = seq_corpus.passages(300) + [" ".join(tasks.DEFAULT_FILLERS + ("done", "in"))] * 50
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=600, special_tokens=["<unk>", "<s>", "</s>"]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def test_llama_like_tokenizer(llama_like_tok):
    tok = llama_like_tok
    months = tasks.generate("months", n_prompts=10, seed=0)
    enc = tokens.encode(tok, months)
    assert (enc.tokens[:, 0] == tok.bos_token_id).all()
    for i, p in enumerate(months):
        assert [s.lstrip("▁") for s in tok.convert_ids_to_tokens(enc.tokens[i, enc.member_pos[i]].tolist())] \
            == list(p.members)
    batch = tasks.make_batch(tok, months, corruption="permutation")
    assert batch.clean.shape == batch.corrupt.shape
    two_digit = [p for p in tasks.generate("numerals", n_prompts=60, seed=0)
                 if all(len(m) == 2 for m in p.members + (p.answer,))]
    enc = tokens.encode(tok, two_digit, multi_token=True)
    for i, p in enumerate(two_digit):
        assert tok.convert_ids_to_tokens(enc.tokens[i, enc.member_pos[i]].tolist()) == [m[-1] for m in p.members]
        assert tok.decode(enc.answers[i]).strip() == p.answer
