"""The book's figure vocabulary: head heatmaps, lines, bars and labelled matrices, sized for the
page's content column (about 750 px) and exported next to the chapter.

Every public figure function returns a matplotlib ``Figure`` and, when called with ``name=``,
shows it in the notebook once and writes it to ``figures/<chapter>/<name>.png`` (line and bar
plots also as ``.svg``), where ``<chapter>`` is set by :func:`export_to` (``open_chapter`` calls
it). Chapter-specific figures live in the sibling modules and are built from these pieces.

Conventions: layers and heads get integer ticks, labels are at least 9 pt at the content width,
and every colour used is named in a legend or a colour bar.
"""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from shared.paths import figures_dir

WIDTH = 7.5  # inches: the content column at 100 dpi
FONT = 10
SMALLEST = 9  # points: no text smaller than this at the content width
_STATE: dict[str, Optional[str]] = {"chapter": None}

plt.rcParams.update({"font.size": FONT, "axes.titlesize": FONT + 1, "axes.labelsize": FONT,
                     "xtick.labelsize": SMALLEST, "ytick.labelsize": SMALLEST, "legend.fontsize": SMALLEST,
                     "legend.title_fontsize": SMALLEST, "figure.titlesize": FONT + 2,
                     "figure.dpi": 100, "savefig.dpi": 150, "savefig.bbox": "tight",
                     "svg.hashsalt": "circuits-book", "svg.fonttype": "none"})


def export_to(chapter: Optional[str]) -> None:
    """Write the figures shown from now on under ``figures/<chapter>/`` (``None``: do not export)."""
    _STATE["chapter"] = chapter


def exported_path(name: str, suffix: str = ".png") -> Optional[Path]:
    """Where a figure called ``name`` is exported in the current chapter (``None`` when not exporting)."""
    chapter = _STATE["chapter"]
    if chapter is None:
        return None
    return figures_dir() / chapter / f"{name}{suffix}"


def finish(fig: Any, name: Optional[str], vector: bool = False, tight: bool = True) -> Any:
    """Lay out ``fig`` (tight layout, unless ``tight`` is false — margins set by hand — or it already
    has a layout engine such as constrained layout); with ``name``, export it (PNG, plus SVG when
    ``vector``) and show it once."""
    if tight and fig.get_layout_engine() is None:
        fig.tight_layout()
    if name is None:
        return fig
    png = exported_path(name)
    if png is not None:
        png.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(png, metadata={"Software": None})
        if vector:
            fig.savefig(png.with_suffix(".svg"), metadata={"Date": None, "Creator": None})
    try:
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is not None:
            display(fig)
    finally:
        plt.close(fig)
    return None


def integer_ticks(ax: Any, x: bool = True, y: bool = True, most: Optional[int] = None) -> None:
    """Only whole numbers on the chosen axes (layers, heads, positions, steps), at most ``most``
    intervals when given (long labels such as training steps)."""
    for on, axis in ((x, ax.xaxis), (y, ax.yaxis)):
        if on:
            axis.set_major_locator(MaxNLocator(integer=True, nbins=most if most else "auto"))


def text_colour(image: Any, value: float) -> str:
    """Black or white, whichever reads better on the colour that ``image`` gives ``value``."""
    r, g, b, _ = image.cmap(image.norm(value))
    return "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "black"


def heatmap_panel(ax: Any, grid: np.ndarray, title: str = "", vmin: Optional[float] = None,
                  vmax: Optional[float] = None, cmap: str = "Blues", fmt: str = "{:.2f}",
                  xlabel: str = "head", ylabel: str = "layer", annotate: Optional[bool] = None,
                  xticklabels: Optional[Sequence[str]] = None, yticklabels: Optional[Sequence[str]] = None) -> Any:
    """One [rows, columns] heatmap on ``ax`` (layers x heads by default) with integer ticks and, for
    small grids, the values written in the cells. Returns the image (for a colour bar)."""
    grid = np.asarray(grid, dtype=float)
    lo = np.nanmin(grid) if vmin is None else vmin
    hi = np.nanmax(grid) if vmax is None else vmax
    image = ax.imshow(grid, vmin=lo, vmax=hi, cmap=cmap, aspect="auto")
    rows, cols = grid.shape
    ax.set_xticks(range(cols), xticklabels if xticklabels is not None else range(cols))
    ax.set_yticks(range(rows), yticklabels if yticklabels is not None else range(rows))
    if xticklabels is not None and max((len(str(t)) for t in xticklabels), default=0) > 3:
        ax.tick_params(axis="x", labelrotation=45)
        for label in ax.get_xticklabels():
            label.set_ha("right")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if annotate if annotate is not None else grid.size <= 96:
        for (i, j), value in np.ndenumerate(grid):
            if np.isfinite(value):
                ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=SMALLEST,
                        color=text_colour(image, value))
    return image


def head_heatmap(panels: "Mapping[str, Any] | Any", title: str = "", vmin: Optional[float] = None,
                 vmax: Optional[float] = None, cmap: str = "Blues", fmt: str = "{:.2f}", label: str = "",
                 columns: int = 3, name: Optional[str] = None, **panel_kw: Any) -> Any:
    """Layer x head score grids, one panel per entry of ``panels`` (a grid alone is one panel),
    sharing one colour scale and one colour bar labelled ``label``."""
    if not isinstance(panels, Mapping):
        panels = {"": panels}
    grids = {k: np.asarray(v.detach().cpu() if hasattr(v, "detach") else v, dtype=float) for k, v in panels.items()}
    lo = min(np.nanmin(g) for g in grids.values()) if vmin is None else vmin
    hi = max(np.nanmax(g) for g in grids.values()) if vmax is None else vmax
    n = len(grids)
    cols = min(columns, n)
    rows = (n + cols - 1) // cols
    shape = next(iter(grids.values())).shape
    panel_h = max(2.0, 0.38 * shape[0] + 1.1)
    fig, axes = plt.subplots(rows, cols, figsize=(WIDTH if n > 1 else min(WIDTH, 1.2 + 0.55 * shape[1] + 1.6),
                                                  panel_h * rows + (0.4 if title else 0)), squeeze=False)
    image = None
    for ax, (key, grid) in zip(axes.flat, grids.items()):
        image = heatmap_panel(ax, grid, key, lo, hi, cmap, fmt, **panel_kw)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    height = fig.get_size_inches()[1]
    fits = max(12, int(0.8 * height * 72 / (0.55 * FONT)))  # characters along the colour bar
    fig.colorbar(image, ax=list(axes.flat)[:n], label=textwrap.fill(label, fits), fraction=0.046 if n == 1 else 0.03)
    if title:
        fig.suptitle(title)
    fig.set_layout_engine("constrained")
    return finish(fig, name)


def lines(x: Sequence[float], series: Mapping[str, Sequence[float]], xlabel: str, ylabel: str, title: str = "",
          log_x: bool = False, log_y: bool = False, integer_x: bool = False, thin: Sequence[str] = (),
          colors: Optional[Mapping[str, str]] = None, markers: bool = True, height: float = 3.2,
          name: Optional[str] = None) -> Any:
    """One line per entry of ``series`` over ``x`` (e.g. a score over checkpoints); names listed in
    ``thin`` are drawn thin and unlabelled (other seeds of the same model, in the same colour)."""
    fig, ax = plt.subplots(figsize=(WIDTH * 0.8, height))
    for key, ys in series.items():
        kw = dict(color=(colors or {}).get(key))
        if key in thin:
            ax.plot(x, ys, lw=0.8, alpha=0.6, **kw)
        else:
            ax.plot(x, ys, marker="o" if markers else None, ms=4, label=key, **kw)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if log_x:
        ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    if integer_x:
        integer_ticks(ax, y=False)
    if title:
        ax.set_title(title)
    if len(series) - len(thin) > 1:
        ax.legend()
    ax.grid(alpha=0.3)
    return finish(fig, name, vector=True)


def bars(labels: Sequence[str], values: "Mapping[str, Sequence[float]] | Sequence[float]", ylabel: str,
         title: str = "", colors: Optional[Sequence[str]] = None, legend: Optional[Mapping[str, str]] = None,
         horizontal: Optional[bool] = None, name: Optional[str] = None) -> Any:
    """Bars of ``values`` per label (several series side by side when ``values`` is a mapping);
    ``legend`` maps a colour to what it means when bars are coloured individually."""
    series = values if isinstance(values, Mapping) else {"": values}
    horizontal = len(labels) > 16 if horizontal is None else horizontal
    n, k = len(labels), len(series)
    width = 0.8 / k
    if horizontal:
        fig, ax = plt.subplots(figsize=(WIDTH * 0.8, max(2.0, 0.22 * n * max(1, k / 2) + 1.0)))
    else:
        fig, ax = plt.subplots(figsize=(min(WIDTH, 2.5 + 0.35 * n * k), 3.2))
    pos = np.arange(n)
    for i, (key, ys) in enumerate(series.items()):
        at = pos + (i - (k - 1) / 2) * width
        kw = dict(label=key or None, color=colors if (colors is not None and k == 1) else None)
        (ax.barh if horizontal else ax.bar)(at, list(ys), width * 0.95, **kw)
    if horizontal:
        ax.set_yticks(pos, [textwrap.fill(str(s), 30) for s in labels])
        ax.invert_yaxis()
        ax.set_xlabel(ylabel)
        ax.axvline(0, color="black", lw=0.6)
    else:
        ax.set_xticks(pos, labels, rotation=45 if max((len(str(s)) for s in labels), default=0) > 4 else 0,
                      ha="right" if max((len(str(s)) for s in labels), default=0) > 4 else "center")
        ax.set_ylabel(ylabel)
        ax.axhline(0, color="black", lw=0.6)
    handles = []
    if legend:
        handles = [Patch(color=c, label=text) for c, text in legend.items()]
    if handles or k > 1:  # beside the bars when they run sideways, so that it hides none of them
        ax.legend(handles=handles or None, **(dict(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
                                              if horizontal else {}))
    if title:
        ax.set_title(title)
    return finish(fig, name, vector=True)


def matrix(values: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], title: str = "",
           xlabel: str = "", ylabel: str = "", label: str = "", fmt: str = "{:.2f}", cmap: str = "viridis",
           vmin: Optional[float] = None, vmax: Optional[float] = None, name: Optional[str] = None) -> Any:
    """A labelled heatmap of a small table (rows x columns) with the values in the cells."""
    values = np.asarray(values, dtype=float)
    fig, ax = plt.subplots(figsize=(min(WIDTH, 1.0 * values.shape[1] + 2.6), 0.6 * values.shape[0] + 1.6))
    image = heatmap_panel(ax, values, title, vmin, vmax, cmap, fmt, xlabel=xlabel, ylabel=ylabel, annotate=True,
                          xticklabels=[str(c) for c in col_labels], yticklabels=[str(r) for r in row_labels])
    fig.colorbar(image, ax=ax, label=label, fraction=0.046)
    return finish(fig, name)


__all__ = ["FONT", "SMALLEST", "WIDTH", "bars", "export_to", "exported_path", "finish", "head_heatmap", "heatmap_panel",
           "integer_ticks", "lines", "matrix", "text_colour"]
