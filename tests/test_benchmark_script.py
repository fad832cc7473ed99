"""The benchmark script runs end to end (on a tiny architecture) and its two loops agree.

No timing is asserted here: speed is measured by ``python tests/benchmark_circuits.py``."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchmark_circuits  # noqa: E402


def test_benchmark_script_runs_and_its_knockout_loops_agree(capsys):
    out = benchmark_circuits.main(["--arch", "tiny", "--prompts", "4", "--tokens", "8", "--seed-sample", "4"])
    printed = capsys.readouterr().out
    assert "speed-up" in printed and "best of 2" in printed
    assert out["max_difference"] < 1e-4  # the seed-style loop and knockout_sweep give the same metric
    assert out["speedup"] > 0 and out["eap_forward_equivalents"] > 0
