"""Resumable suite training: a stopped run continues to the same weights, a kill (even mid-save) keeps the last
complete state, a lost state falls back to the committed float16 checkpoint and says so, schedules are right."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from safetensors.torch import load_file

from shared.errors import CheckpointError, ParameterError
from shared.zoo import train as train_module
from shared.zoo.train import load_state, lr_factor, save_state
from shared.zoo.train_suite import Run, main

# A tiny member of the suite (its tokenizer and corpus, one small layer) so that a whole run takes seconds.
TINY = dict(n_layers=1, d_model=32, n_heads=2, d_head=16, d_mlp=64, n_ctx=64, steps=12, warmup=3,
            linear_every=4, batch_size=4, val_batches=1, probe_every=6)


def tiny_run(root, **extra):
    return Run("suite-s-s0", pilot="tiny", overrides=dict(TINY, **extra), root=root)


def final_weights(run):
    return load_file(str(run.record_dir / "steps" / f"step_{run.recipe['steps']:07d}.safetensors"))


def test_wsd_schedule_is_flat_then_decays_to_the_floor():
    f = [lr_factor(s, 100, 10, "wsd", decay_share=0.2) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == 1.0 and f[10:80] == [1.0] * 70
    assert f[80] < 1.0 and f[99] == pytest.approx(0.1) and all(a > b for a, b in zip(f[80:], f[81:]))
    c = [lr_factor(s, 100, 10, "cosine") for s in range(100)]
    assert c[10] == 1.0 and c[99] == pytest.approx(0.1, abs=1e-3)
    with pytest.raises(ParameterError, match="schedule must be one of"):
        lr_factor(50, 100, 10, "linear")


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    torch.set_num_threads(1)
    whole = tiny_run(tmp_path / "whole")
    assert whole.train() is True
    pieces = tiny_run(tmp_path / "pieces")
    assert pieces.train(stop_after=5) is False          # stops between checkpoints (4 and 8)
    assert load_state(pieces.state_dir)[1]["step"] == 5
    assert tiny_run(tmp_path / "pieces").train(stop_after=2) is False
    assert tiny_run(tmp_path / "pieces").train() is True
    a, b = final_weights(whole), final_weights(pieces)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)   # bit-identical
    log_a, log_b = (json.loads((r.record_dir / "progress.json").read_text()) for r in (whole, pieces))
    assert [r["val_loss"] for r in log_a["log"]] == [r["val_loss"] for r in log_b["log"]]
    assert [r["step"] for r in log_b["probes"]] == [6, 12] and log_b["discontinuities"] == []
    assert [s["from_step"] for s in log_b["sessions"]] == [0, 5, 7]


def test_lost_state_continues_from_the_float16_checkpoint_and_records_it(tmp_path):
    torch.set_num_threads(1)
    run = tiny_run(tmp_path)
    run.train(stop_after=6)
    for path in run.state_dir.glob("state*"):   # a new machine: only the committed record is there
        path.unlink()
    again = tiny_run(tmp_path)
    assert again.train() is True
    progress = json.loads((again.record_dir / "progress.json").read_text())
    assert [d["step"] for d in progress["discontinuities"]] == [4]   # the last checkpoint before step 6
    assert "new AdamW state" in progress["discontinuities"][0]["reason"]
    assert [s["from_step"] for s in progress["sessions"]] == [0, 4]
    whole = tiny_run(tmp_path / "whole")
    whole.train()
    a, b = final_weights(whole), final_weights(again)
    assert any(not torch.equal(a[k], b[k]) for k in a)               # not the same run, and it says so


def test_a_failed_save_keeps_the_last_complete_state(tmp_path, monkeypatch):
    save_state(tmp_path, dict(step=3, model={"w": torch.ones(4)}))
    real = train_module.os.replace

    def dies_before_the_pointer(src, dst):
        if str(dst).endswith("state.json"):
            raise KeyboardInterrupt("killed")
        return real(src, dst)

    monkeypatch.setattr(train_module.os, "replace", dies_before_the_pointer)
    with pytest.raises(KeyboardInterrupt):
        save_state(tmp_path, dict(step=4, model={"w": torch.zeros(4)}))
    monkeypatch.undo()
    state, pointer = load_state(tmp_path)
    assert pointer["step"] == 3 and torch.equal(state["model"]["w"], torch.ones(4))
    (tmp_path / pointer["file"]).write_bytes(b"truncated")
    with pytest.raises(CheckpointError, match="does not match its sha256"):
        load_state(tmp_path)


def test_sigkill_during_saves_leaves_a_loadable_state(tmp_path):
    code = textwrap.dedent(f"""
        import torch
        from shared.zoo.train import save_state
        step = 0
        while True:
            step += 1
            save_state({str(tmp_path)!r}, dict(step=step, model={{"w": torch.full((300_000,), float(step))}}))
    """)
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 60
    while not (tmp_path / "state.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.7)
    proc.kill()
    proc.wait()
    state, pointer = load_state(tmp_path)
    assert pointer["step"] >= 1 and torch.equal(state["model"]["w"], torch.full((300_000,), float(pointer["step"])))


def test_command_stops_on_bad_parameters_with_one_sentence(capsys):
    assert main(["--models", "suite-x-s0"]) == 2
    assert main(["--set", "steps=3"]) == 2
    assert main(["--hours", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["Unknown suite model 'suite-x-s0'; the suite is suite-s-s0, suite-s-s1, suite-m-s0, suite-m-s1, "
                   "suite-l-s0.", "--set changes a pilot only; name it with --pilot.",
                   "--hours, --threads and --save-minutes must be positive."]


def test_suite_run_commits_only_the_shipped_steps_and_finishes_into_a_model_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("CIRCUITS_BOOK_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)
    run = Run("suite-s-s0", overrides=TINY, root=tmp_path)
    assert run.schedule == [0, 2, 4, 8, 12] and run.shipped == {0, 2, 8, 12}
    assert run.train() is True
    assert sorted(p.name for p in (run.record_dir / "steps").iterdir()) == [
        "step_0000000.safetensors", "step_0000002.safetensors", "step_0000008.safetensors", "step_0000012.safetensors"]
    assert sorted(p.name for p in (run.state_dir / "steps").iterdir()) == ["step_0000004.safetensors"]
    folder = run.model_folder()
    assert folder.parent == tmp_path / "cache" / "models" and run.finished()
    assert sorted(p.name for p in (folder / "steps").iterdir()) == [
        "step_0000000.safetensors", "step_0000002.safetensors", "step_0000008.safetensors"]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["steps"] == 12 and [r["step"] for r in metrics["checkpoints"]] == [0, 2, 4, 8, 12]
    final = load_file(str(folder / "model.safetensors"))
    last = load_file(str(run.record_dir / "steps" / "step_0000012.safetensors"))
    assert all(torch.equal(final[k], last[k]) for k in final)


def test_a_complete_record_rebuilds_its_model_folder_without_training(tmp_path, monkeypatch):
    monkeypatch.setenv("CIRCUITS_BOOK_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)
    run = Run("suite-s-s0", overrides=TINY, root=tmp_path)
    run.train()
    before = load_file(str(run.model_folder() / "model.safetensors"))
    shutil.rmtree(run.model_folder())
    shutil.rmtree(run.state_dir)                       # a new machine: only the committed record
    again = Run("suite-s-s0", overrides=TINY, root=tmp_path)
    assert again.train(stop_after=0) is True and again.finished()
    after = load_file(str(again.model_folder() / "model.safetensors"))
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert json.loads((again.record_dir / "progress.json").read_text())["discontinuities"] == []
