"""The book side's handle on the auto-circuit worker: start it in ``.venv-peers``, send requests,
read answers, stop it. Standard library only (the tests use it without loading a model)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[2]
PEER_VENV = Path(os.environ.get("PEERS_VENV") or ROOT / ".venv-peers")  # PEERS_VENV: another place
# every tensor buffer of at least 64 KiB is its own mapping, returned to the system when freed, so a
# process's resident size follows what it holds (see benchmarks.peers.measure)
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "65536"}


def peer_python(venv: Path = PEER_VENV) -> Optional[Path]:
    """The peer environment's interpreter, or None when ``.venv-peers`` has not been set up."""
    py = venv / "bin" / "python"
    return py if py.exists() else None


class PeerError(RuntimeError):
    """The worker answered with an error or stopped."""


class Peer:
    """A running worker. ``threads`` torch threads (1 by default, like the book side)."""

    def __init__(self, venv: Path = PEER_VENV, threads: int = 1):
        py = peer_python(venv)
        if py is None:
            raise PeerError(f"There is no peer environment at {venv}; run `python -m benchmarks.peers --setup` first.")
        env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
                   PEERS_THREADS=str(threads), PYTHONHASHSEED="0", **MALLOC_ENV)
        self.proc = subprocess.Popen([str(py), "-u", "-m", "benchmarks.peers.worker"], cwd=ROOT, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
                                     if not os.environ.get("PEERS_VERBOSE") else sys.stderr, text=True)

    def ask(self, op: str, **kw: Any) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError as exc:
            raise PeerError("The auto-circuit worker stopped (set PEERS_VERBOSE=1 to see its output).") from exc
        line = self.proc.stdout.readline()
        if not line:
            raise PeerError("The auto-circuit worker stopped without answering (set PEERS_VERBOSE=1 to see its output).")
        ans = json.loads(line)
        if not ans.get("ok"):
            raise PeerError(f"auto-circuit worker, request {op!r}: {ans.get('error')}")
        return ans

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.ask("quit")
            except PeerError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def __enter__(self) -> "Peer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["MALLOC_ENV", "PEER_VENV", "Peer", "PeerError", "peer_python"]
