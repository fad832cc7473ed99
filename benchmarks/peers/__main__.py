"""``python -m benchmarks.peers``: the book's engine and auto-circuit 1.0.1 on the same models,
prompts, metric and edges; prints the agreement and speed tables (markdown) and saves them as JSON.

    python -m benchmarks.peers --setup          # make .venv-peers (auto-circuit + TransformerLens 2)
    python -m benchmarks.peers                  # the full comparison (the tables of methods_benchmark)
    python -m benchmarks.peers --quick          # seconds: suite-s-s0, 8 IOI prompts, one repetition
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

from benchmarks.peers.client import MALLOC_ENV, PEER_VENV, Peer, PeerError, peer_python

# (model, task, prompts, methods). FULL is what book/methods_benchmark.md reports: sized for this
# project's 2-core machine while two trainings held both cores (the comparison got a few % of one);
# EXTENDED adds the cases that were not run there (more prompts, EAP-IG at the GPT-2-small shape).
FULL = [
    ("suite-s-s0", "ioi", 16, ("patching", "eap", "eap_ig", "acdc")),
    ("suite-s-s0", "numerals", 16, ("patching", "eap", "eap_ig", "acdc")),
    ("suite-l-s0", "ioi", 8, ("patching", "eap", "eap_ig", "acdc")),
    ("gpt2-small-random", "random", 2, ("eap",)),
]
EXTENDED = FULL + [
    ("suite-l-s0", "numerals", 16, ("patching", "eap", "eap_ig", "acdc")),
    ("suite-l-s0", "ioi", 32, ("patching", "eap", "eap_ig")),
    ("gpt2-small-random", "random", 8, ("eap", "eap_ig")),
]
QUICK = [("suite-s-s0", "ioi", 8, ("patching", "eap", "eap_ig", "acdc"))]


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__.split("\n\n")[0])
    p.add_argument("--setup", action="store_true", help="create .venv-peers and stop")
    p.add_argument("--quick", action="store_true", help="one small case, one repetition (the test's run)")
    p.add_argument("--extended", action="store_true", help="also the larger cases (hours of CPU on 2 cores)")
    p.add_argument("--reps", type=int, default=2, help="timed repetitions per side and method (default 2)")
    p.add_argument("--ig-steps", type=int, default=5, help="EAP-IG gradient passes on each side (default 5)")
    p.add_argument("--acdc-threshold", type=float, default=0.02,
                   help="ACDC threshold as a share of KL(clean || all patched), the book's default 0.02; "
                        "auto-circuit gets the same absolute tau")
    p.add_argument("--only", action="append", default=[], metavar="MODEL",
                   help="run only the cases of this model (repeatable)")
    p.add_argument("--method", action="append", default=[], choices=("patching", "eap", "eap_ig", "acdc"),
                   help="run only this method (repeatable)")
    p.add_argument("--json", type=Path, default=None, help="write every figure here as JSON")
    p.add_argument("--tables", nargs="+", type=Path, metavar="JSON",
                   help="print the tables of earlier runs' --json files together (runs nothing)")
    p.add_argument("--no-faithfulness", action="store_true", help="skip the cross-evaluated faithfulness")
    a = p.parse_args(argv)
    for name, value, low in (("--reps", a.reps, 1), ("--ig-steps", a.ig_steps, 2)):
        if value < low:
            p.exit(2, f"{name} must be at least {low}, got {value}.\n")
    if not 0 < a.acdc_threshold < 1:
        p.exit(2, f"--acdc-threshold is a share of the fully patched KL divergence, between 0 and 1; got "
                  f"{a.acdc_threshold}.\n")
    return a


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}"


def print_tables(paths: list[Path]) -> int:
    from benchmarks.peers.report import agreement_table, speed_table

    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        print(f"No results file {missing[0]}; write one with `python -m benchmarks.peers --json FILE`.", file=sys.stderr)
        return 2
    runs = [json.loads(p.read_text()) for p in paths]
    rows = [r for run in runs for r in run["rows"]]
    print("; ".join(sorted({f"{run['machine']}, medians of {run['reps']}" for run in runs})))
    print("\n" + agreement_table(rows) + "\n\n" + speed_table(rows))
    return 0


def main(argv: list[str]) -> int:
    args = parse(argv)
    if args.setup:
        from benchmarks.peers.setup import main as setup_main
        return setup_main()
    if args.tables:
        return print_tables(args.tables)
    if peer_python() is None:
        print(f"There is no peer environment at {PEER_VENV}; run `python -m benchmarks.peers --setup` first.",
              file=sys.stderr)
        return 2
    if any(os.environ.get(k) != v for k, v in MALLOC_ENV.items()):  # the allocator reads them at start
        os.execve(sys.executable, [sys.executable, "-m", "benchmarks.peers", *argv], {**os.environ, **MALLOC_ENV})

    from importlib.metadata import version

    import torch

    from benchmarks.peers.report import agreement_table, speed_table
    from benchmarks.peers.run import Case, run_case

    torch.set_num_threads(1)
    cases = [Case(m, t, n, tuple(x for x in methods if not args.method or x in args.method))
             for m, t, n, methods in (QUICK if args.quick else EXTENDED if args.extended else FULL) if not args.only or m in args.only]
    cases = [c for c in cases if c.methods]
    reps = 1 if args.quick else args.reps
    print(f"machine: {machine()}; torch {torch.__version__}, 1 thread on each side; book: transformer-lens "
          f"{version('transformer-lens')}; peer: auto-circuit 1.0.1 in {PEER_VENV.name}; times are CPU seconds "
          f"of each process for the call alone (start, imports and model loading excluded), medians of {reps}")
    rows = []
    try:
        with Peer() as peer:
            for case in cases:
                rows += run_case(peer, case, reps, args.ig_steps, args.acdc_threshold, faith=not args.no_faithfulness)
    except PeerError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print("\nAgreement (scores over all edges; circuits: top 10% of edges by |score|, ACDC: kept edges; "
          "faithfulness normalised, 1 = the intact model)\n")
    print(agreement_table(rows))
    print("\nSpeed (CPU seconds, one thread each)\n")
    print(speed_table(rows))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "reps": reps, "ig_steps": args.ig_steps,
                                         "acdc_threshold": args.acdc_threshold, "rows": rows}, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
