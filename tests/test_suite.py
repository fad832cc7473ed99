"""The local model suite: held-out forms never in training, shipped checkpoints, reproducible start, Pythia map."""
from __future__ import annotations

import json
import subprocess

import huggingface_hub.constants
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from shared.errors import ModelUnavailableError, ParameterError
from shared.paths import shipped_cache_dir
from shared.tasks import heldout
from shared.tasks.greater_than import gt_items
from shared.tasks.ioi import ioi_items
from shared.tasks.tokens import encode_text
from shared.zoo import suite, suite_report
from shared.zoo.registry import (PYTHIA_STEPS, SUITE_PRETRAINED, Checkpoints, boot_native, checkpoint_steps,
                                 load_model, local_models, model_metrics, pythia_revision)
from shared.zoo.text import suite_corpus


@pytest.fixture(scope="module")
def tokenizer():
    return suite_corpus.suite_tokenizer()


def stream_hits(tokenizer, recipe, n_ctx, stride=1):
    """Held-out phrases in the documents of every ``stride``-th training step (all of the first 256) and
    of every validation batch, and in the decoded rows of repeated random tokens. Documents are joined
    as the model reads them, with the BOS token between them: a phrase is not held out across a document
    boundary ("... 47 sold" then "<|endoftext|>The heavy strike ...")."""
    hits = []
    phrases = list(heldout.distinctive_phrases())
    rows = recipe["batch_size"]
    steps = [s for s in range(recipe["steps"]) if s < 256 or s % stride == 0]
    steps += [suite.VALIDATION_OFFSET + i for i in range(recipe["val_batches"])]
    for step in steps:
        repeated = suite_corpus.repeated_rows(step, rows, recipe["data_seed"], recipe["random_share"])
        docs, _ = suite_corpus.step_documents(tokenizer, step, (rows - len(repeated)) * n_ctx, recipe["data_seed"],
                                              recipe["mix"])
        if repeated:
            batch = suite_corpus.step_batch(tokenizer, step, rows, n_ctx, recipe["data_seed"], recipe["mix"],
                                            recipe["random_share"])
            docs += [tokenizer.decode(batch[r]) for r in repeated]
        text = f" {suite_corpus.SPECIAL} ".join(docs)
        if heldout.contains_heldout(text, phrases):  # one pass over the text; the per-phrase report only on a hit
            hits += [(step, *hit) for hit in heldout.find_heldout([text])]
    return hits


# ------------------------------------------------------------------------------ held-out forms
def test_enough_heldout_forms_and_each_phrase_is_in_its_prompts():
    assert len(heldout.SEQ_FORMS) >= 8 and len(heldout.IOI_TEMPLATES) >= 10 and len(heldout.GT_TEMPLATES) >= 5
    for phrase, owner in heldout.distinctive_phrases().items():
        family, name = owner.split("/")
        texts = {"seq": lambda: [p.text for p in heldout.seq_form_prompts(name, "letters", 4, 5)],
                 "ioi": lambda: [p.text for p in ioi_items(name, 5)],
                 "gt": lambda: [p.text for p in gt_items(name, 5)],
                 "book": lambda: [" Van done in 1. Hat done in"]}[family]()
        assert all(phrase in heldout.normalise(t) for t in texts), (phrase, texts[0])


def test_heldout_prompts_are_single_token_answers_with_right_spans(tokenizer):
    for form in heldout.SEQ_FORMS:
        for p in heldout.seq_form_prompts(form, "months", 4, 3):
            assert [p.text[a:b] for a, b in p.member_spans] == list(p.members)
    for words, spaced in [(heldout.IOI_NAMES, True), ([f"{i:02d}" for i in range(100)], False)]:
        assert all(len(encode_text(tokenizer, (" " if spaced else "") + w)[0]) == 1 for w in words)
    prompt = gt_items("dragged", 1)[0]
    ids, _ = encode_text(tokenizer, prompt.text)
    assert tokenizer.convert_ids_to_tokens(ids[-1:]) == ["\u0120" + str(prompt.century)]


def test_training_stream_never_contains_a_heldout_phrase(tokenizer):
    spec = local_models()["suite-s-s0"]
    assert all(local_models()[n].recipe["data_seed"] == spec.recipe["data_seed"] for n in suite.suite_names())
    assert stream_hits(tokenizer, spec.recipe, spec.config["n_ctx"]) == []


def test_next_suite_stream_never_contains_a_heldout_phrase(tokenizer):
    """The stream of the suite trained for hours (version 3, with the dense IOI scenes): every step of the
    first 256 and every 24th after that (about 580 of 8000 steps; the generator's own filter covers all)."""
    spec = suite.suite_spec("suite-s-s0", 3)
    assert spec.recipe["mix"]["ioi"] > 0
    assert stream_hits(tokenizer, spec.recipe, spec.config["n_ctx"], stride=24) == []


def test_scan_finds_a_planted_phrase(tokenizer, monkeypatch):
    """With the generator's filter off and a maker that plants a held-out phrase, the scan reports it."""
    assert heldout.find_heldout(["Tom and Ana. Ticket 4 WAS\npunched today."])[0][:2] == ("was punched", "seq/ticket")
    monkeypatch.setattr(suite_corpus, "_HELDOUT", ())
    monkeypatch.setitem(suite_corpus._MAKERS, "prose", lambda rng: "Later that evening the door opened.")
    recipe = dict(local_models()["suite-s-s0"].recipe, steps=3, val_batches=0)
    hits = stream_hits(tokenizer, recipe, 128)
    planted = [h for h in hits if h[1] == "later that evening"]  # (other phrases leak too with the filter off)
    assert {h[0] for h in planted} == {0, 1, 2}


# ----------------------------------------------------------------------------- shipped models
@pytest.mark.parametrize("name", suite.suite_names())
def test_shipped_model_loads_at_every_checkpoint(name):
    folder = suite.trained_folder(name)
    assert folder is not None, f"{name} must ship trained in shared/checkpoints (tests never train it)"
    spec = local_models()[name]
    steps = checkpoint_steps(name)
    assert steps == suite.checkpoint_schedule(spec.recipe["steps"], spec.recipe["linear_every"])
    assert len(steps) >= 16 and steps[:4] == [0, 2, 4, 8] and steps[-1] == spec.recipe["steps"]
    assert not (folder / "steps" / f"step_{steps[-1]:07d}.safetensors").exists()  # the final weights, stored once
    log = model_metrics(name)["checkpoints"]
    assert [row["step"] for row in log] == steps
    assert all(row["tokens"] == row["step"] * spec.recipe["batch_size"] * spec.config["n_ctx"] for row in log)
    assert log[-1]["val_loss"] < log[0]["val_loss"] - 2 and all(row["train_loss"] for row in log[1:])
    tokens = torch.tensor([[0, 5, 9, 30, 7]])
    previous = None
    for step in steps:
        path = folder / "steps" / f"step_{step:07d}.safetensors"
        stored = load_file(str(path if step != steps[-1] else folder / "model.safetensors"))
        assert all(t.dtype == torch.float16 for t in stored.values())
        with torch.no_grad():
            logits = load_model(name, step=step)(tokens)
        assert torch.isfinite(logits).all() and (previous is None or not torch.equal(logits, previous))
        previous = logits


def _tracked_files():
    """The files git tracks under shared/checkpoints, or None outside a git checkout."""
    root = shipped_cache_dir()
    try:
        out = subprocess.run(["git", "ls-files", "-z", "."], cwd=root, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return {(root / name).resolve() for name in out.decode().split("\0") if name}


def test_shipped_checkpoints_fit_the_size_budget():
    """Everything shipped in shared/checkpoints (every model and tokenizer, not the local result cache)
    stays within the budget of 150 MB (decimal); the suite alone is most of it."""
    folders = [suite.trained_folder(n) for n in suite.suite_names()]
    assert None not in folders
    tracked = _tracked_files()  # what ships is what is committed (a model still training here is not)
    size = lambda root: sum(p.stat().st_size for p in Path(root).rglob("*")
                            if p.is_file() and (tracked is None or p.resolve() in tracked))
    suite_total = sum(size(f) for f in folders)
    assert suite_total <= 150e6, f"suite: {suite_total / 1e6:.1f} MB"
    shipped = shipped_cache_dir()
    total = sum(size(shipped / kind) for kind in ("models", "tokenizers"))
    assert total <= 150e6, f"everything shipped: {total / 1e6:.1f} MB"
    small, large = (suite_report.non_embedding_params(load_model(n)) for n in ("suite-s-s0", "suite-l-s0"))
    assert large >= 4 * small


def test_missing_step_lists_the_saved_steps():
    with pytest.raises(ParameterError, match=r"no checkpoint at step 3; saved steps are \[0, 2, 4, 8, 16"):
        load_model("suite-s-s0", step=3)


def test_short_retrain_reproduces_the_first_checkpoints(tmp_path):
    """Eight steps of suite-s-s0 from its recipe give the shipped checkpoints 0, 2, 4 and 8: equal after rounding to
    float16 up to one float16 step (|difference| <= 2e-3 * max(1, |w|)); bit-identical on the machine
    and thread count that trained it."""
    name = "suite-s-s0"
    spec = local_models()[name]
    torch.manual_seed(spec.recipe["seed"])
    bridge = boot_native(spec.config, tokenizer=spec.tokenizer(spec.recipe))
    record = suite.pretrain(bridge, spec.recipe, Checkpoints(tmp_path, bridge, dtype=torch.float16), steps=8)
    assert [row["step"] for row in record["checkpoints"]] == [0, 2, 4, 8]
    shipped_log = model_metrics(name)["checkpoints"]
    shipped = suite.trained_folder(name) / "steps"
    for row, ref in zip(record["checkpoints"], shipped_log):
        assert row["val_loss"] == pytest.approx(ref["val_loss"], abs=1e-3)
        ours = load_file(str(tmp_path / "steps" / f"step_{row['step']:07d}.safetensors"))
        theirs = load_file(str(shipped / f"step_{row['step']:07d}.safetensors"))
        assert ours.keys() == theirs.keys()
        for key in ours:
            a, b = ours[key].float(), theirs[key].float()
            assert ((a - b).abs() <= 2e-3 * b.abs().clamp_min(1)).all(), (row["step"], key)
    with pytest.raises(ParameterError, match="within the warmup"):
        suite.pretrain(bridge, spec.recipe, steps=spec.recipe["warmup"] + 1)


def test_report_prints_every_ability_for_the_smallest_model(capsys):
    assert suite_report.main(["--models", "suite-s-s0", "--n-prompts", "4"]) == 0
    out = capsys.readouterr().out
    for label in suite_report.LABELS.values():
        assert label in out
    for form in heldout.SEQ_FORMS:
        assert f"\n   {form}" in out


# ------------------------------------------------------------------------------- paper profile
def test_suite_maps_to_pythia_by_rank_and_fraction_of_training():
    assert SUITE_PRETRAINED["suite-s-s0"] == "pythia-70m" and SUITE_PRETRAINED["suite-l-s0"] == "pythia-410m"
    total = local_models()["suite-m-s0"].recipe["steps"]
    assert pythia_revision(0, total) == "step0" and pythia_revision(total, total) == f"step{PYTHIA_STEPS[-1]}"
    assert pythia_revision(total // 4, total) == "step36000"  # a quarter of 143000 is 35750
    assert pythia_revision(1, 1600) == "step64"  # 89 steps: nearest saved revision


def test_pythia_counterpart_offline_fails_with_one_sentence(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # the same with a network
    with pytest.raises(ModelUnavailableError, match="cannot be downloaded here") as err:
        load_model(SUITE_PRETRAINED["suite-m-s0"], step=400)
    assert "\n" not in str(err.value)
    with pytest.raises(ParameterError, match="counts the local suite's training steps"):
        load_model("pythia-160m", step=10 ** 6)
    with pytest.raises(ParameterError, match="revision='stepN'"):
        load_model("gpt2-small", step=3)


def test_greater_than_control_is_the_same_threshold_read_on_the_01_prompt():
    """``greater_than_scores``' control: each prompt run again with its start year ending in 01, scored with
    the original ``YY`` threshold; the gain is the clean difference minus it (one prompt at a time here)."""
    from shared.tasks.abilities import ability_summary, greater_than_scores
    from shared.tasks.greater_than import corrupt_gt, prob_diff_from_logits, two_digit_ids
    from shared.tasks.tokens import tokenize
    model = load_model("suite-s-s0")
    template = next(iter(heldout.GT_TEMPLATES))
    scores = greater_than_scores(model, templates=[template], n_prompts=3, seed=7)
    items = gt_items(template, 3, 7)
    assert scores["yy"].tolist() == [it.yy for it in items]
    digits = two_digit_ids(model)
    for i, (item, twin) in enumerate(zip(items, corrupt_gt(items))):
        assert twin.text != item.text and twin.text.replace(f"{twin.century}01", "") == item.text.replace(
            f"{item.century}{item.yy:02d}", "")
        with torch.no_grad():
            logits = torch.cat([model(torch.tensor([tokenize(model, t.text)[0]]))[:, -1] for t in (item, twin)])
        clean, control = prob_diff_from_logits(logits.float(), torch.tensor([item.yy, item.yy]), digits).tolist()
        assert scores["prob_diff"][i] == pytest.approx(clean, abs=1e-5)
        assert scores["control"][i] == pytest.approx(control, abs=1e-5)
        assert scores["gain"][i] == pytest.approx(clean - control, abs=1e-5)
    summary = ability_summary(model, n_prompts=2)
    assert summary["gt_gain"] == pytest.approx(summary["gt_prob_diff"] - summary["gt_by_template"]["control"].mean(),
                                               abs=1e-9)
