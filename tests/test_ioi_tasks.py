"""IOI and greater-than prompt sets (shared.tasks.ioi, shared.tasks.greater_than): every field
re-derived from the text and tokens, corruptions that change only what they say, checked tokenizers."""
from __future__ import annotations

import math
import random
import re
from types import SimpleNamespace

import pytest
import torch

from shared.errors import ParameterError
from shared.tasks.greater_than import (corrupt_gt, greater_than_metric, gt_batch, gt_items, prob_diff_from_logits,
                                       two_digit_ids)
from shared.tasks.heldout import GT_TEMPLATES, IOI_NAMES, IOI_TEMPLATES
from shared.tasks.ioi import (CORRUPTIONS, check_names, corrupt_items, encode_items, ioi_batch, ioi_items,
                              single_token_names)


@pytest.fixture(scope="module")
def tok():
    from shared.zoo.text.suite_corpus import suite_tokenizer
    return suite_tokenizer()


@pytest.fixture(scope="module")
def gpt2_style():
    """A byte-level BPE (GPT-2 style) where most names merge to one token but the rarer ones split,
    and where " 1732" is one token (as some years are for GPT-2)."""
    from hf_local import train_bpe_tokenizer
    common = IOI_NAMES[:12]
    texts = []
    for t in IOI_TEMPLATES:
        for it in ioi_items(t, 30, seed=1, names=common):
            texts.append(it.text)
    texts += [" ".join(IOI_NAMES[12:]) + "."] + [" 1732 and 1732"] * 50
    return train_bpe_tokenizer(texts, vocab_size=700)


def _mentions(text: str, name: str) -> list[int]:
    return [m.start() for m in re.finditer(rf"(?<![A-Za-z]){name}(?![A-Za-z])", text)]


def _decode(tok, ids) -> str:
    return tok.decode(ids if isinstance(ids, list) else [int(ids)])


# ------------------------------------------------------------------------------------ IOI
@pytest.mark.parametrize("template", list(IOI_TEMPLATES))
def test_ioi_fields_rederived_from_text(tok, template):
    b = ioi_batch(tok, template, n=8, corruption="abc", seed=3)
    pos, batch = b.positions, b.batch
    assert len(b) == 8 and {it.order for it in b.clean_items} == {"ABBA", "BABA"}
    for i, it in enumerate(b.clean_items):
        ids = batch.clean[i].tolist()
        assert _decode(tok, ids[1:]) == it.text and ids[0] == tok.bos_token_id
        assert _decode(tok, ids[int(pos.io[i])]) == " " + it.io
        assert _decode(tok, ids[int(pos.s1[i])]) == " " + it.s1 == " " + it.s2
        assert _decode(tok, ids[int(pos.s2[i])]) == " " + it.s1
        assert _decode(tok, batch.correct[i]) == " " + it.io and _decode(tok, batch.incorrect[i]) == " " + it.s1
        assert int(pos.end[i]) == int(batch.answer_pos[i]) == len(ids) - 1
        # order re-derived from the string: who is named first
        io_at, s_at = _mentions(it.text, it.io), _mentions(it.text, it.s1)
        assert len(io_at) == 1 and len(s_at) == 2  # IO named once, the subject twice
        assert (io_at[0] < s_at[0]) == (it.order == "ABBA") == bool(pos.io[i] < pos.s1[i])
        assert pos.s2[i] > max(pos.io[i], pos.s1[i]) + 1


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_ioi_corruptions_change_only_what_they_say(tok, corruption):
    for template in ("cleaning", "table", "lunch"):
        b = ioi_batch(tok, template, n=12, corruption=corruption, seed=5)
        pos = b.positions
        assert b.batch.clean.shape == b.batch.corrupt.shape
        for f in ("io", "s1", "s2", "end"):
            assert torch.equal(getattr(b.clean.positions, f), getattr(b.corrupt.positions, f))
        for i, (c, k) in enumerate(zip(b.clean_items, b.corrupt_items)):
            assert (c.template, c.order, c.place, c.obj) == (k.template, k.order, k.place, k.obj)
            changed = set((b.batch.clean[i] != b.batch.corrupt[i]).nonzero().view(-1).tolist())
            io, s1, s2 = int(pos.io[i]), int(pos.s1[i]), int(pos.s2[i])
            if corruption == "abc":
                assert k.io == c.io and len({k.io, k.s1, k.s2}) == 3 and c.s1 not in (k.s1, k.s2)
                assert changed == {s1, s2}
            elif corruption == "s2_new":
                assert (k.io, k.s1) == (c.io, c.s1) and k.s2 not in (c.io, c.s1)
                assert changed == {s2}
            else:
                assert (k.io, k.s1, k.s2) == (c.s1, c.io, c.io)
                assert changed == {io, s1, s2}
                assert int(b.corrupt.io_id[i]) == int(b.batch.incorrect[i])


def test_ioi_items_reuse_heldout_templates(tok):
    it = ioi_items("cleaning", 1, seed=0)[0]
    expected = IOI_TEMPLATES["cleaning"].text.format(N1=it.n1, N2=it.n2, S=it.n3, PLACE=it.place, OBJECT=it.obj)
    assert it.text == expected
    with pytest.raises(ParameterError, match="Unknown IOI template"):
        ioi_items("nope", 1)
    with pytest.raises(ParameterError, match="Unknown IOI corruption"):
        corrupt_items([it], "shuffle")


def _one_sentence(msg: str) -> bool:
    return msg.endswith(".") and ". " not in msg[:-1].replace("e.g. ", "")


def test_non_single_token_name_is_one_sentence(tok):
    with pytest.raises(ParameterError) as err:
        ioi_batch(tok, "cleaning", n=4, names=list(IOI_NAMES[:6]) + ["Zxqvwbrt"])
    msg = str(err.value)
    assert "'Zxqvwbrt'" in msg and _one_sentence(msg)


def test_gpt2_style_tokenizer_where_names_split(gpt2_style):
    split = [n for n in IOI_NAMES if len(gpt2_style(" " + n, add_special_tokens=False)["input_ids"]) > 1]
    assert split and len(split) < len(IOI_NAMES)  # the fixture does what it says
    with pytest.raises(ParameterError) as err:
        check_names(gpt2_style, IOI_NAMES)
    msg = str(err.value)
    assert f"'{split[0]}'" in msg and _one_sentence(msg)
    good = single_token_names(gpt2_style, IOI_NAMES)
    assert set(good) == set(IOI_NAMES) - set(split)
    b = ioi_batch(gpt2_style, "cleaning", n=6, names=good, corruption="s2_new")
    for i, it in enumerate(b.clean_items):
        assert _decode(gpt2_style, b.batch.clean[i, int(b.positions.io[i])]) == " " + it.io
        assert _decode(gpt2_style, b.batch.clean[i, 1:].tolist()) == it.text
    # a name glued into a bigger token is refused by the offsets check as well
    with pytest.raises(ParameterError):
        encode_items(gpt2_style, [ioi_items("cleaning", 1, names=split[:1] + good[:3])[0]])


# ------------------------------------------------------------------------------------ greater-than
@pytest.mark.parametrize("template", list(GT_TEMPLATES))
def test_gt_fields_rederived_and_01_corruption(tok, template):
    b = gt_batch(tok, template, n=10, seed=2)
    assert b.batch.clean.shape == b.batch.corrupt.shape
    for i, it in enumerate(b.items):
        ids, bad = b.batch.clean[i].tolist(), b.batch.corrupt[i].tolist()
        assert _decode(tok, ids[1:]) == it.text and _decode(tok, bad[1:]) == b.corrupt_items[i].text
        start = f"{it.century}{it.yy:02d}"
        assert start in it.text and it.text.endswith(f" {it.century}")
        assert _decode(tok, ids[int(b.yy_pos[i])]) == f"{it.yy:02d}" and _decode(tok, bad[int(b.yy_pos[i])]) == "01"
        assert [j for j in range(len(ids)) if ids[j] != bad[j]] == [int(b.yy_pos[i])]
        assert _decode(tok, ids[-1]).strip() == str(it.century)
        assert _decode(tok, b.batch.incorrect[i]) == f"{it.yy:02d}"
        assert _decode(tok, b.batch.correct[i]) == f"{it.yy + 1:02d}"
        assert 2 <= it.yy <= 98


def test_gt_checks_the_tokenizer(gpt2_style, tok):
    with pytest.raises(ParameterError, match="two-digit"):
        two_digit_ids(gpt2_style)
    digits = two_digit_ids(tok)
    assert len(set(digits.tolist())) == 100
    with pytest.raises(ParameterError, match="yy_range"):
        gt_items("dragged", 2, yy_range=(0, 50))
    assert all(it.yy == 1 for it in corrupt_gt(gt_items("dragged", 5)))


def test_gt_checks_a_year_that_is_one_token():
    from hf_local import train_bpe_tokenizer
    from shared.tasks.greater_than import _encode, GTItem
    digits = [f"{k:02d}" for k in range(100)]
    t = train_bpe_tokenizer(["\n".join(digits)] * 20 + ["from the year 1732 until the year 17"] * 60, vocab_size=600)
    ids = two_digit_ids(t)
    with pytest.raises(ParameterError, match="1732"):
        _encode(t, GTItem("dragged", "war", 17, 32), ids)


def test_prob_diff_by_hand():
    """Vocabulary of 103: ids 0..2 are not digits, id 3 + k is the two digits k (shuffled order is
    checked too). All logits 0 except token 0 (log 3), "05" (log 4), "10" (log 2): Z = 109."""
    digits = torch.arange(3, 103)
    logits = torch.zeros(103)
    logits[0], logits[3 + 5], logits[3 + 10] = math.log(3), math.log(4), math.log(2)
    yy = torch.tensor([7, 5, 10])
    # yy=7: above = 91 ones + 2 = 93, below = 7 ones + 4 = 11 -> 82/109
    # yy=5: above = 93 + 2 = 95, below = 5 + 4 = 9 -> 86/109;  yy=10: above 89, below 9+4+2=15 -> 74/109
    expected = torch.tensor([82 / 109, 86 / 109, 74 / 109])
    got = prob_diff_from_logits(logits.expand(3, -1), yy, digits)
    assert torch.allclose(got, expected, atol=1e-6)
    stacked = prob_diff_from_logits(logits.expand(2, 3, -1), yy, digits)  # leading candidate dimension
    assert stacked.shape == (2, 3) and torch.allclose(stacked[1], expected, atol=1e-6)
    perm = list(range(3, 103))
    random.Random(0).shuffle(perm)
    shuffled = torch.zeros(103)
    shuffled[0] = math.log(3)
    shuffled[perm[5]], shuffled[perm[10]] = math.log(4), math.log(2)
    assert torch.allclose(prob_diff_from_logits(shuffled.expand(3, -1), yy, torch.tensor(perm)), expected, atol=1e-6)
    # the engine metric reads YY back from batch.incorrect (the "YY" token) and unembeds the final residual
    bridge = SimpleNamespace(W_U=torch.eye(103))
    batch = SimpleNamespace(incorrect=digits[yy], correct=digits[yy + 1])
    assert torch.allclose(greater_than_metric(digits)(bridge, logits.expand(3, -1), batch), expected, atol=1e-6)
