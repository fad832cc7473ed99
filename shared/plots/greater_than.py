"""Figures of the greater-than chapter: YY x answer-year matrices (the model's probabilities, an MLP's
direct logits: Hanna et al.'s "upper triangle") and the heads' path-patching effects and attention."""
from __future__ import annotations

from typing import Any, Mapping, Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from shared.analysis.ov import head_grid
from shared.plots.figures import WIDTH, finish, head_heatmap

NO_DATA = "#d9d9d9"


def year_matrices(panels: Mapping[str, np.ndarray], label: str, title: str = "", diverging: bool = False,
                  name: Optional[str] = None) -> Any:
    """One YY (rows) x answer year (columns) matrix per entry of ``panels`` [100, 100], side by side on
    one colour scale (symmetric around 0 and red/blue when ``diverging``), with the line answer = YY:
    an upper triangle above it means later years are favoured. Rows without prompts are grey."""
    grids = {k: np.asarray(v, dtype=float) for k, v in panels.items()}
    finite = np.concatenate([g[np.isfinite(g)] for g in grids.values()])
    hi = float(np.abs(finite).max()) if diverging else float(finite.max())
    lo = -hi if diverging else float(finite.min())
    n = len(grids)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    side = min(3.0, (WIDTH - 1.2) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(min(WIDTH, side * cols + 1.4), side * rows + 1.4), squeeze=False,
                             sharey=True, layout="constrained")
    cmap = plt.get_cmap("RdBu_r" if diverging else "viridis").copy()
    cmap.set_bad(NO_DATA)
    image = None
    for ax, (key, grid) in zip(axes.flat, grids.items()):
        image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=lo, vmax=hi, origin="lower",
                          extent=(-0.5, grid.shape[1] - 0.5, -0.5, grid.shape[0] - 0.5), aspect="auto",
                          interpolation="nearest")
        ax.plot([-0.5, grid.shape[1] - 0.5], [-0.5, grid.shape[0] - 0.5], ls="--", lw=0.9, color="black")
        ax.set_xticks(range(0, 100, 20))
        ax.set_yticks(range(0, 100, 20))
        ax.set_xlabel("answer year")
        if ax in axes[:, 0]:
            ax.set_ylabel("YY (start year)")
        ax.set_title(key)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.colorbar(image, ax=list(axes.flat)[:n], label=label, fraction=0.046 if n == 1 else 0.03)
    handles = [Line2D([0], [0], ls="--", color="black", label="answer = YY")]
    if any(np.isnan(g).all(1).any() for g in grids.values()):
        handles.append(Patch(color=NO_DATA, label="no prompt with this YY"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    if title:
        fig.suptitle(title)
    return finish(fig, name)


def head_effects(scores: pd.DataFrame, n_layers: int, n_heads: int, title: str = "",
                 name: Optional[str] = None) -> Any:
    """Per head (layer x head grids): its path-patching effect through the selected MLPs and its direct
    effect on the logits, both as a share of the "01" corruption's whole effect, on one scale."""
    panels = {"through the selected MLPs": head_grid(scores["relative via MLPs"].to_dict(), n_layers, n_heads),
              "directly on the logits": head_grid(scores["relative direct"].to_dict(), n_layers, n_heads)}
    top = float(np.nanmax(np.abs(np.concatenate([p.numpy().ravel() for p in panels.values()])))) or 1.0
    return head_heatmap(panels, title=title, vmin=-top, vmax=top, cmap="RdBu_r", columns=2,
                        label="effect / whole corruption effect", xlabel="head", ylabel="layer", name=name)


def yy_attention_map(attention: pd.Series, n_layers: int, n_heads: int, title: str = "",
                     name: Optional[str] = None) -> Any:
    """Mean attention from the last token to the ``YY`` token, per head."""
    return head_heatmap(head_grid(attention.to_dict(), n_layers, n_heads), title=title, vmin=0, vmax=1,
                        label="attention END → YY", xlabel="head", ylabel="layer", name=name)


__all__ = ["head_effects", "year_matrices", "yy_attention_map"]
