"""The Llama-style and NeoX-style siblings of suite-m-s0, their tokenizers, and one test per tokenizer
pitfall of the ``tokenizer_pitfalls`` chapter (each fails when the book's fix is removed)."""
from __future__ import annotations

import json

import pytest
import torch

from shared.chapters.tokenizers import prompts_past
from shared.errors import ModelUnavailableError, ParameterError
from shared.tasks import pitfalls as P
from shared.tasks import tokens as T
from shared.tasks.sequences import generate
from shared.zoo.families import CONFIGS, family_name, family_tokenizer, hf_config, memory_line, parameter_count
from shared.zoo.registry import load_model
from shared.zoo.suite import trained_folder
from shared.zoo.text.suite_corpus import suite_tokenizer

TRAINED = {family: trained_folder(family_name(family)) for family in ("llama", "neox")}
needs_trained = pytest.mark.skipif(not all(TRAINED.values()),
                                   reason="the family models are not trained yet: load_model('family-llama-m') "
                                          "and load_model('family-neox-m') train them (about 20 min each)")


@pytest.fixture(scope="module")
def llama_tok():
    return family_tokenizer("llama")


@pytest.fixture(scope="module")
def neox_tok():
    return family_tokenizer("neox")


@pytest.fixture(scope="module")
def random_llama(tmp_path_factory, llama_tok):
    """A random-weight model of the Llama-style sibling's exact shape, saved in float16 as a Hugging
    Face folder and loaded through load_model (the same path as the trained one)."""
    import transformers as tf

    folder = tmp_path_factory.mktemp("llama-m")
    torch.manual_seed(0)
    tf.LlamaForCausalLM(hf_config("llama", CONFIGS["llama"], llama_tok)).to(torch.float16).save_pretrained(folder)
    llama_tok.save_pretrained(folder)
    return folder


# ------------------------------------------------------------------------------- tokenizers
def test_llama_style_tokenizer_splits_digits_marks_word_starts_and_adds_bos(llama_tok):
    ids = llama_tok("In 1732 Ana met Tom")["input_ids"]
    assert llama_tok.convert_ids_to_tokens(ids) == ["<s>", "▁In", "▁", "1", "7", "3", "2", "▁Ana", "▁met", "▁Tom"]
    assert llama_tok(" 5", add_special_tokens=False)["input_ids"] == llama_tok.convert_tokens_to_ids(["▁", "5"])
    assert llama_tok.decode(ids, skip_special_tokens=True) == "In 1732 Ana met Tom"


def test_neox_style_tokenizer_is_byte_level_bpe_without_bos(neox_tok, llama_tok):
    ids = neox_tok(" 1732 Ana met Tom")["input_ids"]
    assert neox_tok.bos_token_id not in ids
    assert all(piece.startswith("Ġ") for piece in neox_tok.convert_ids_to_tokens(ids)[-3:])
    assert neox_tok.decode(ids) == " 1732 Ana met Tom"
    assert len(neox_tok(" 57", add_special_tokens=False)["input_ids"]) == 1  # no digit rule: a common number merges
    assert neox_tok.get_vocab() != llama_tok.get_vocab() and len(neox_tok) == len(llama_tok) == 2048


# ------------------------------------------------------------------------------- bridge vs HF
def _compare(folder, ungroup: bool) -> float:
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    bridge = load_model(str(folder), ungroup_kv=ungroup)
    tokens = torch.tensor([T.tokenize(bridge, " Ana gave the key to Tom. 1 2 3 4 and 13 21")[0]])
    with torch.no_grad():
        return (bridge(tokens) - hf(tokens).logits).abs().max().item()


@pytest.mark.parametrize("ungroup", [False, True])
def test_llama_style_bridge_logits_equal_the_hugging_face_model(random_llama, ungroup):
    """Tolerance 1e-4 (float32 on both sides from the same float16 weights; logits are of order 10)."""
    config = json.loads((random_llama / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["num_key_value_heads"] == 2
    assert _compare(random_llama, ungroup) < 1e-4


@needs_trained
@pytest.mark.parametrize("family", ["llama", "neox"])
def test_trained_sibling_is_a_float16_hf_folder_whose_bridge_matches_it(family):
    folder = TRAINED[family]
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == [{"llama": "LlamaForCausalLM", "neox": "GPTNeoXForCausalLM"}[family]]
    assert config.get("dtype", config.get("torch_dtype")) == "float16"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["tokens_seen"] == 1600 * 32 * 128 and metrics["final_val_loss"] < 4.0
    assert _compare(folder, ungroup=family == "llama") < 1e-4
    assert parameter_count(family_name(family)) == metrics["parameters"]


def test_memory_is_printed_from_counts_and_pretrained_loading_fails_in_one_sentence(monkeypatch):
    assert "25.10 GiB in float32" in memory_line("llama-2-7b") and "2.63 GiB in float16" in memory_line("pythia-1.4b")
    from shared.chapters import tokenizers as chapter

    asked = []

    def offline(name, **kwargs):
        asked.append(kwargs)
        raise ModelUnavailableError("Pretrained model cannot be downloaded here.")
    monkeypatch.setattr(chapter, "load_model", offline)
    with pytest.raises(ModelUnavailableError, match="set the parameter `model_names`"):
        chapter.load_models(["llama-2-7b", "pythia-1.4b"])
    assert asked == [{"ungroup_kv": True}]


# ------------------------------------------------------------------------------- pitfalls
def test_pitfall_bos_once_by_the_book_twice_without_its_fix(llama_tok, monkeypatch):
    """The book tokenizes with add_special_tokens=False and adds one BOS; letting the Llama-style
    tokenizer add its own as well gives two."""
    assert P.leading_bos(llama_tok, T.tokenize(llama_tok, " 1 2 3")[0]) == 1
    assert P.leading_bos(llama_tok, P.prompt_ids(llama_tok, " 1 2 3", "tokenizer's own")) == 1
    monkeypatch.setattr(T, "encode_text", lambda tok, text: (
        list(tok(text)["input_ids"]), [tuple(o) for o in tok(text, return_offsets_mapping=True)["offset_mapping"]]))
    assert P.leading_bos(llama_tok, T.tokenize(llama_tok, " 1 2 3")[0]) == 2


def test_pitfall_first_answer_token_is_the_space_and_teacher_forcing_fixes_it(random_llama, monkeypatch):
    """On the SentencePiece-style tokenizer " 5" and " 4" both start with "▁": the first-token logit
    difference is exactly 0 for any weights; the book's teacher forcing tells them apart, and with
    the forcing cut to the first token the zero comes back."""
    model = load_model(str(random_llama))
    prompts = generate("numerals", "bare", n_members=4, n_prompts=6, seed=0)
    table = P.trailing_space_table({"llama": model}, prompts)
    assert table.loc["llama", "same first token"] == 1.0 and table.loc["llama", "first-token logit diff"] == 0.0
    assert table.loc["llama", "trailing space: prefix kept"] == 1.0
    book = T.score(model, prompts, multi_token=True)
    assert (book["logit_diff"].abs() > 1e-6).all()
    forced = T.teacher_forced
    monkeypatch.setattr(T, "teacher_forced", lambda m, tokens, answer: forced(m, tokens, answer[:1]))
    assert (T.score(model, prompts, multi_token=True)["logit_diff"] == 0).all()


def test_pitfall_trailing_space_breaks_the_prefix_on_byte_level_bpe(neox_tok):
    """With a trailing space, a byte-level BPE merges the space into the answer: the prompt's tokens
    are no longer a prefix of prompt + answer (the Llama-style tokenizer keeps them)."""
    p = generate("numerals", "bare", n_members=4, n_prompts=1, seed=0)[0]
    with_space = T.tokenize(neox_tok, p.text + " ")[0]
    assert T.tokenize(neox_tok, p.text + " " + p.answer)[0][:len(with_space)] != with_space
    assert T.tokenize(neox_tok, p.text + " " + p.answer)[0][:len(with_space) - 1] == T.tokenize(neox_tok, p.text)[0]


def test_pitfall_multi_token_answers_are_refused_unless_scored_whole(llama_tok, neox_tok):
    prompts = prompts_past("fibonacci", 5, seed=0)
    assert sorted(p.answer for p in prompts) == ["13", "21", "34", "55", "89"]
    with pytest.raises(ParameterError, match="multi_token=True"):
        T.encode(llama_tok, prompts)
    for p in prompts:  # one at a time: on the digit-split tokenizer their lengths differ
        answer = T.encode(llama_tok, [p], multi_token=True).answers[0]
        assert llama_tok.convert_ids_to_tokens(answer) == ["▁"] + list(p.answer)
    assert all(len(a) == 1 for a in T.encode(neox_tok, prompts).answers)


def test_pitfall_positions_come_from_offsets_not_from_a_fixed_rule(llama_tok, neox_tok):
    prompts = prompts_past("numerals", 6, seed=0, n_members=4)
    table = P.position_table({"llama": llama_tok, "neox": neox_tok, "suite": suite_tokenizer()}, prompts)
    assert (table["offsets: share right"] == 1.0).all()
    assert table.loc["suite", "hard-coded: share right"] == 1.0  # GPT-2-style: one token per numeral
    assert table.loc["llama", "hard-coded: share right"] < 0.25
    assert table.loc["llama", "offsets: pieces"].split() == [m[-1] for m in prompts[0].members]


@needs_trained
def test_trained_llama_sibling_predicts_the_space_and_continues_by_teacher_forcing():
    model = load_model(family_name("llama"))
    prompts = generate("numerals", "bare", n_members=4, n_prompts=12, seed=0)
    table = P.trailing_space_table({"llama": model}, prompts)
    assert table.loc["llama", "top is a space"] >= 0.9
    assert table.loc["llama", "book (teacher forced): accuracy"] >= 0.5
