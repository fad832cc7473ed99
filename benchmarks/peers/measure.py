"""How long a call takes and how much memory it adds, measured inside the process that makes it
(process start and imports excluded). Standard library only: both environments use it.

Time: CPU seconds of this process (``time.process_time``, all its threads), which a second job on
the machine does not inflate, and wall seconds. Memory: the resident set size of this process
sampled every 2 ms from ``/proc/self/statm`` while the call runs; the peak minus the size just
before the call is what the call added (a sampler costs a little CPU, so memory is measured on a
separate, untimed call)."""
from __future__ import annotations

import ctypes
import os
import threading
import time
from typing import Any, Callable

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    """Resident set size of this process now (0 where /proc is not available)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        return 0


def release_free_memory() -> None:
    """Hand the C allocator's free pages back to the system (glibc ``malloc_trim``), so that the size
    before a call is not padded by pages an earlier call freed. With ``MALLOC_MMAP_THRESHOLD_`` set
    (the benchmark sets it for both processes) every tensor buffer is its own mapping and leaves the
    resident set when freed."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``(result, cpu_seconds, wall_seconds)`` of ``fn()``."""
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - c0, time.perf_counter() - w0


def peak_added_rss(fn: Callable[[], Any], every: float = 0.002) -> tuple[Any, int]:
    """``(result, bytes)``: the largest resident set size seen during ``fn()`` minus the size before."""
    release_free_memory()
    before = rss_bytes()
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(every)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        out = fn()
    finally:
        done.set()
        thread.join()
    peak[0] = max(peak[0], rss_bytes())
    return out, peak[0] - before


__all__ = ["peak_added_rss", "release_free_memory", "rss_bytes", "timed"]
