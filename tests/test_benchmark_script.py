"""The benchmark script runs end to end (on tiny architectures) and its two knockout loops agree.

No timing is asserted here: speed is measured by ``python tests/benchmark_circuits.py``."""
from __future__ import annotations

import sys
import time

import torch
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchmark_circuits  # noqa: E402


def test_benchmark_script_runs_and_its_knockout_loops_agree(capsys):
    out = benchmark_circuits.main(["--arch", "tiny", "--arch", "tiny-llama", "--prompts", "4", "--tokens", "8",
                                   "--seed-sample", "4", "--ig-steps", "2", "--chunk", "2"])
    printed = capsys.readouterr().out
    assert "speed-up" in printed and "best of 2" in printed and "EAP-IG (2 steps)" in printed
    assert printed.count("architecture") == 2
    assert out["max_difference"] < 1e-4  # the seed-style loop and knockout_sweep give the same metric
    assert out["speedup"] > 0 and out["eap_forward_equivalents"] > 0 and out["eap_ig_forward_equivalents"] > 0


def test_timed_regions_wait_for_the_device(monkeypatch):
    """A device that finishes its work only at synchronisation: ``timed`` must include that wait."""
    monkeypatch.setattr(benchmark_circuits, "CLOCK", time.perf_counter)
    monkeypatch.setattr(benchmark_circuits, "SYNC", lambda: time.sleep(0.05))
    _, t = benchmark_circuits.timed(lambda: None)
    assert t >= 0.05


def test_eap_equals_transformer_lens_attribution_patching_and_another_implementation_is_compared(capsys, tmp_path):
    """The peer row: TransformerLens 4's own edge attribution patching (per prompt and position, gradient
    on the corrupted run) summed over positions equals ``eap`` with clean and corrupted swapped; and
    ``--compare-with`` times another ``eap`` file in the same run and reports the score difference."""
    other = tmp_path / "eap_other.py"
    other.write_text((Path(__file__).resolve().parents[1] / "shared" / "engine" / "eap.py").read_text())
    out = benchmark_circuits.main(["--arch", "tiny", "--prompts", "4", "--tokens", "8", "--no-knockout",
                                   "--ig-steps", "2", "--peer", "2", "--compare-with", str(other)])
    printed = capsys.readouterr().out
    assert "attribution_patch" in printed and "eap_other.py" in printed
    assert out["peer_pearson"] > 0.99999 and out["peer_difference"] < 1e-5
    assert out["eap_difference_vs_other"] < 1e-6 and out["eap_ig_difference_vs_other"] < 1e-6


def test_flop_floor_counts_the_forward_pass_exactly_and_eap_sits_above_its_floor(capsys):
    """``--flops``: one forward pass of the tiny shape (2 layers, d_model 64, 4 heads of 16, MLP 256,
    vocabulary 500; 4 prompts x 8 tokens) is 8,470,528 matrix-product FLOPs by hand — q, k, v, o
    (4 x 64 x 64) and the MLP (2 x 64 x 256) per layer, the unembedding (64 x 500) per token, and the
    two attention products (16 prompt-heads x 8 x 8 x 16) per layer; EAP's edge products are 2 x edges x
    32 positions x 64, and the implementation never counts fewer FLOPs than the floor it is compared with."""
    out = benchmark_circuits.main(["--arch", "tiny", "--prompts", "4", "--tokens", "8", "--no-knockout",
                                   "--ig-steps", "3", "--flops", "--peak-ratio", "2"])
    printed = capsys.readouterr().out
    assert "(f) EAP:" in printed and "(f) EAP-IG (3 steps)" in printed
    per_token = 2 * (2 * (4 * 64 * 64 + 2 * 64 * 256) + 64 * 500)
    attention = 2 * 2 * 2 * (16 * 8 * 8 * 16)
    forward = 32 * per_token + attention
    assert round(out["forward_gflop"] * 1e9) == forward == 8_470_528
    bridge = benchmark_circuits.build(benchmark_circuits.ARCHITECTURES["tiny"], "cpu", torch.float32)
    edges = len(benchmark_circuits.Graph.of(bridge).edges)
    assert abs(out["products_flop_ratio"] - 2 * edges * 32 * 64 / forward) < 1e-9
    for key in ("eap", "eap_ig"):
        assert out[f"{key}_flop_ratio"] >= out[f"{key}_floor"] > out[f"{key}_floor_fast"] > 0
    # three gradient passes instead of one; the forward half of a pass costs what the corrupted run does
    assert abs(out["eap_ig_floor"] - out["eap_floor"] - 2 * out["gradient_pass_flop_ratio"]) < 1e-9
    assert out["gradient_pass_flop_ratio"] > out["corrupt_flop_ratio"] > 0.5
    assert out["eap_op_ratio"] >= out["eap_op_floor"] > 1 and out["eap_ig_op_ratio"] >= out["eap_ig_op_floor"]


def test_a_peak_ratio_below_one_stops_with_one_sentence(capsys):
    import pytest
    with pytest.raises(SystemExit):
        benchmark_circuits.main(["--arch", "tiny", "--flops", "--peak-ratio", "0.5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("at least 1, got 0.5.") and "Traceback" not in "\n".join(err)
