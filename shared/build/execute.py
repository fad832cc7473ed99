"""Executing one chapter: read its Jupytext source, run it with papermill (a Colab badge on top, the
build key in its metadata), clean its outputs and note the figures it exported.

The kernel runs with its own log (``_build/logs/<chapter>.kernel.log``: its warnings never reach the
build's stderr) and with tqdm bars switched off. The terminal shows which cell is running
(``cell n of m``, seconds since the chapter started). Every failure -- an exception in a cell, a
cell running longer than the chapter's ``cell_timeout`` (seconds, in ``notebooks/chapters.yml``;
default :data:`DEFAULT_CELL_TIMEOUT`), a kernel that dies -- becomes one sentence naming the chapter
and the cell, and the notebook as far as it ran is kept in ``_build/failed/<chapter>.ipynb``.

A run of a chapter (:mod:`shared.build.runs`) other than its main one is kept apart in the same way:
``<chapter>--<run>`` names its page, log, failed notebook and figure folder (its kernel exports into a
staging folder, moved to ``figures/<chapter>--<run>/`` once the run succeeded).
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Optional

import nbformat
import papermill as pm
import yaml
from jupyter_client import AsyncKernelManager
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from shared.build import layout as places
from shared.build.clean import clean_notebook
from shared.build.layout import BuildError, one_line
from shared.build.runs import Run
from shared.build.twins import read_source, sync_pair
from shared.chapters.registry import ChapterEntry

DEFAULT_CELL_TIMEOUT = 1800  # seconds; training a model on first use takes up to ~20 min on 2 cores
KERNEL_ENV = {"TQDM_DISABLE": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}


class ChapterKernelManager(AsyncKernelManager):
    """A kernel whose own stdout/stderr (start-up warnings, interrupt notices) go to ``log_handle``
    and whose environment adds :data:`KERNEL_ENV` and ``extra_env``."""

    log_handle: Optional[IO[bytes]] = None
    extra_env: dict[str, str] = {}

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        kw["env"] = {**(kw.get("env") or os.environ), **KERNEL_ENV, **self.extra_env}
        if self.log_handle is not None:
            kw["stdout"] = kw["stderr"] = self.log_handle
        await super()._async_launch_kernel(kernel_cmd, **kw)


class CellTracker:
    """nbclient hooks: remembers the notebook and the running cell, and shows progress."""

    def __init__(self, chapter: str, show: bool = True) -> None:
        self.chapter, self.show, self.start = chapter, show, time.time()
        self.nb: Any = None
        self.current = (0, 0, "")  # the running cell: code cell n of m, its first line
        self.tty = show and sys.stdout.isatty()

    def on_notebook_start(self, notebook: Any, **_: Any) -> None:
        self.nb = notebook

    def on_cell_start(self, cell: Any, cell_index: int, **_: Any) -> None:
        if cell.cell_type != "code":
            return
        code = [i for i, c in enumerate(self.nb.cells) if c.cell_type == "code"]
        n, m = code.index(cell_index) + 1, len(code)
        self.current = (n, m, first_line(cell.source))
        if not self.show:
            return
        line = f"  {self.chapter}: cell {n} of {m}, {time.time() - self.start:.0f} s: {self.current[2]}"
        if self.tty:
            sys.stdout.write("\r\x1b[K" + line[:shutil.get_terminal_size().columns - 1])
        else:
            sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def done(self) -> None:
        if self.tty:
            sys.stdout.write("\r\x1b[K")
            sys.stdout.flush()

    def where(self) -> str:
        """``cell n of m (`first line`)`` for the running cell."""
        n, m, line = self.current
        return f"in cell {n} of {m} (`{line}`)" if n else "before its first cell"


def first_line(source: str, width: int = 60) -> str:
    """The first line of code in ``source`` (comments skipped), shortened to ``width``."""
    lines = [ln.strip() for ln in source.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    text = lines[0] if lines else (source.strip().splitlines() or [""])[0]
    return text if len(text) <= width else text[:width - 3] + "..."


def cell_timeout(chapter: ChapterEntry) -> int:
    """The chapter's per-cell timeout in seconds: its ``cell_timeout`` in the registry, or the default."""
    registry = places.LAYOUT.registry
    entries = (yaml.safe_load(registry.read_text()) or {}).get("chapters") or [] if registry.exists() else []
    value = next((e.get("cell_timeout") for e in entries if e.get("name") == chapter.name), None)
    if value is None:
        return DEFAULT_CELL_TIMEOUT
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BuildError(f"cell_timeout of chapter {chapter.name!r} in {places.LAYOUT.relative(registry)} must "
                         f"be a whole number of seconds, got {value!r}.")
    return value


def colab_link(notebook: Path) -> str:
    """The Colab address of ``notebook``'s committed twin, from ``_config.yml``'s repository."""
    layout = places.LAYOUT
    config = yaml.safe_load(layout.config.read_text()) or {}
    repo = config.get("repository", {})
    slug = repo.get("url", "").replace("https://github.com/", "").strip("/")
    rel = layout.relative(notebook.with_suffix(".ipynb"))
    return f"https://colab.research.google.com/github/{slug}/blob/{repo.get('branch', 'main')}/{rel}"


def exported_figures(folder: Path) -> dict[str, str]:
    """The files under a chapter's figure folder with a short content hash each."""
    if not folder.is_dir():
        return {}
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            for path in sorted(folder.rglob("*")) if path.is_file()}


def figures_intact(folder: Path, recorded: Optional[dict[str, str]]) -> bool:
    """Whether every figure recorded at the last execution is still there, unchanged."""
    current = exported_figures(folder)
    return all(current.get(name) == digest for name, digest in (recorded or {}).items())


def _badge(chapter: ChapterEntry) -> Any:
    cell = nbformat.v4.new_markdown_cell(
        f"[Open this chapter in Colab]({colab_link(chapter.notebook)}) · source: "
        f"`{places.LAYOUT.relative(chapter.notebook)}`",
    )
    cell.metadata["tags"] = ["colab-link"]
    return cell


def _failure(run: Run, tracker: CellTracker, err: BaseException, timeout: int, log: Path) -> str:
    """The sentence for a failed execution (the failed notebook and kernel log are already kept)."""
    layout = places.LAYOUT
    failed, kept_log = layout.relative(layout.failed(run.page)), layout.relative(log)
    where, label = tracker.where(), run.label
    if isinstance(err, pm.PapermillExecutionError):
        return (f"Chapter {label} failed {where} ({err.ename}: {one_line(err.evalue)}); "
                f"the failed notebook is {failed}.")
    if isinstance(err, CellTimeoutError):
        return (f"Chapter {label} timed out {where}: no result after {timeout} s (its cell_timeout "
                f"in notebooks/chapters.yml); the notebook as far as it ran is {failed}.")
    if isinstance(err, DeadKernelError):
        return (f"Chapter {label} stopped {where}: its kernel died (a crash in native code, out of "
                f"memory, or os._exit); the notebook as far as it ran is {failed}, the kernel's log {kept_log}.")
    return (f"Chapter {label} could not be executed {where} ({type(err).__name__}: "
            f"{one_line(err)}); the kernel's log is {kept_log}.")


def _run(chapter: ChapterEntry, params: dict[str, Any], source: Path, result: Path, kernel: str,
         timeout: int, tracker: CellTracker, log_path: Path, figures: Path) -> None:
    """papermill with the quiet kernel, the hooks and the timeout; its own log goes to the kernel log."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_bytes(b"")
    with log_path.open("ab") as handle:  # appended to by the kernel and by papermill's logger
        manager = type("ChapterKernel", (ChapterKernelManager,), {
            "log_handle": handle, "extra_env": {"CIRCUITS_BOOK_FIGURES": str(figures)}})
        logger = logging.getLogger("papermill")
        sink = logging.FileHandler(log_path, mode="a")
        logger.addHandler(sink)
        propagate, logger.propagate = logger.propagate, False
        try:
            pm.execute_notebook(
                str(source), str(result), parameters=params, cwd=str(places.LAYOUT.root), kernel_name=kernel,
                progress_bar=False, log_output=False, request_save_on_cell_execute=False,
                execution_timeout=timeout, kernel_manager_class=manager,
                on_notebook_start=tracker.on_notebook_start, on_cell_start=tracker.on_cell_start,
            )
        finally:
            logger.removeHandler(sink)
            sink.close()
            logger.propagate = propagate
            tracker.done()


def execute(chapter: ChapterEntry, params: dict[str, Any], output: Path, key: str = "",
            kernel: str = "python3", parts: Optional[dict[str, str]] = None,
            figures: Optional[Path] = None, timeout: Optional[int] = None, progress: bool = True,
            run: Optional[Run] = None) -> float:
    """Execute ``chapter`` (its ``run``, default the main one) with ``params`` into ``output`` through
    papermill; returns seconds.

    With ``figures`` (the chapter's folder under ``figures/``), that folder is emptied first and
    the figures the run exported are recorded in the notebook's metadata. On failure nothing is
    written at ``output`` (the failed notebook goes to ``_build/failed/<page>.ipynb``) and a
    :class:`BuildError` names the cell. ``timeout`` (seconds per cell) defaults to
    :func:`cell_timeout`; ``progress`` prints the running cell.
    """
    layout = places.LAYOUT
    timeout = timeout or cell_timeout(chapter)
    nb = read_source(chapter.notebook)
    nb.cells.insert(0, _badge(chapter))
    nb.metadata.setdefault("kernelspec", {"name": kernel, "display_name": "Python 3", "language": "python"})
    run = run or Run(chapter.name)
    meta = {"build_key": key, "chapter": chapter.name, "parameters": params}
    if run.name:
        meta["run"] = run.name
    if parts:
        meta["key_parts"] = parts
    nb.metadata["circuits_book"] = meta
    if figures is not None:
        shutil.rmtree(figures, ignore_errors=True)
    # the kernel exports to <its folder>/<chapter>/: a run other than the main one exports into a staging folder
    staging = None if run.main else layout.build_dir / "run-figures" / run.page
    if staging is not None:
        shutil.rmtree(staging, ignore_errors=True)
    failed = layout.failed(run.page)
    log = layout.build_dir / "logs" / f"{run.page}.kernel.log"
    tracker = CellTracker(run.page, show=progress)
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        source, result = Path(tmp) / "in.ipynb", Path(tmp) / "out.ipynb"
        nbformat.write(nb, source)
        try:
            _run(chapter, params, source, result, kernel, timeout, tracker, log, staging or layout.figures)
        except Exception as err:  # noqa: BLE001 -- every failure becomes one sentence
            failed.parent.mkdir(parents=True, exist_ok=True)
            if result.exists():
                shutil.copy(result, failed)
            elif tracker.nb is not None:
                nbformat.write(tracker.nb, failed)
            kept = failed.with_suffix(".kernel.log")
            if log.exists():
                shutil.copy(log, kept)
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
            raise BuildError(_failure(run, tracker, err, timeout, kept)) from None
        done = nbformat.read(result, as_version=4)
        clean_notebook(done, chapter.declared, layout.root)
        if staging is not None:
            if figures is not None and (staging / chapter.name).is_dir():
                figures.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(staging / chapter.name), str(figures))
            shutil.rmtree(staging, ignore_errors=True)
        if figures is not None:
            done.metadata["circuits_book"]["figures"] = exported_figures(figures)
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = output.with_suffix(f".ipynb.{os.getpid()}.tmp")  # two builds at once never share it
        nbformat.write(done, tmp_out)
        tmp_out.replace(output)
    for stale in (failed, failed.with_suffix(".kernel.log")):
        stale.unlink(missing_ok=True)
    return time.time() - start


__all__ = ["DEFAULT_CELL_TIMEOUT", "KERNEL_ENV", "CellTracker", "ChapterKernelManager", "cell_timeout",
           "colab_link", "execute", "exported_figures", "figures_intact", "first_line",
           "read_source", "sync_pair"]
