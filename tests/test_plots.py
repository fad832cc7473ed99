"""Every figure function of shared.plots, drawn on small made-up data, is readable at the page's
content width (7.5 in at 100 dpi, about 750 px): no wider than that once saved, no text under 9 pt,
whole-number ticks on layer and head axes, a legend or colour bar wherever colour carries meaning,
titles that do not overlap, and circuit graphs with only the edge colours their legend names. The
circuitsvis token strips show readable labels, and tables (shared.chapters.display) are formatted for
a reader."""
from __future__ import annotations

import io
import json
import re
import unicodedata
from typing import Any, Callable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.colors import to_hex
from matplotlib.patches import FancyArrowPatch
from matplotlib.text import Text
from PIL import Image

from shared.analysis.lens import LensResult
from shared.analysis.text import token_strings
from shared.analysis.weights import Composition
from shared.chapters.display import count, format_table
from shared.engine.ablation import KnockoutResult
from shared.engine.circuit import Circuit, FaithfulnessCurve
from shared.analysis.ioi_algorithm import ALGORITHM_LINKS, link_name
from shared.plots import circuits, figures, framework, lists, sequences, widgets
from shared.plots import ioi as ioi_plots
from shared.plots.figures import SMALLEST, WIDTH
from shared.zoo.text.bpe import stdlib_tokenizer

RNG = np.random.default_rng(0)
HEADS = [f"a{layer}.h{head}" for layer in range(4) for head in range(4)]
NODES = [n for layer in range(4) for n in [f"a{layer}.h{h}" for h in range(4)] + [f"m{layer}"]]
TASKS = ["numerals", "number_words", "months"]
EDGES = ["input->a0.h2:v", "input->a0.h3:v", "input->a0.h3:k", "a0.h2->m0", "a0.h3->m0", "m0->a1.h3:q",
         "m0->a1.h3:k", "m0->a3.h0:v", "m0->a3.h0:q", "a1.h3->m1", "m1->m2", "m2->a3.h1:q", "a3.h0->logits",
         "a3.h1->logits", "m0->logits", "input->logits"]


def _composition() -> Composition:
    q, k, v = (torch.zeros(2, 4, 2, 4) for _ in range(3))
    for t in (q, k, v):
        t[1, :, 0, :] = torch.rand(4, 4)
    return Composition(q, k, v)


def _knockout(nodes: list[str]) -> KnockoutResult:
    return KnockoutResult(nodes, torch.rand(len(nodes)) * 4, 4.0, "mean")


def _lens() -> dict[str, LensResult]:
    stages = ["embed"] + [f"after L{i}" for i in range(4)]
    ranks = {t: (torch.rand(5, 20) * 1000).long() for t in ("answer", "last member")}
    return {task: LensResult(stages, ranks, {t: torch.rand(5, 20) for t in ranks}) for task in TASKS}


def _role_labels() -> list[str]:
    labels = ["BOS"]
    for j in range(4):
        labels += [f"x{j + 1}", "done", "in", f"M{j + 1}", "."]
    return labels + ["x5", "done", "END in"]


def _node_results() -> dict[str, Any]:
    class Result:
        def __init__(self, size: int) -> None:
            self.size, self.percent, self.heldout_percent = size, 81.0, 79.0
    return {t: Result(s) for t, s in zip(TASKS, (10, 5, 5))}


FIGURES: dict[str, Callable[[], Any]] = {
    "head_heatmap": lambda: figures.head_heatmap({k: torch.rand(4, 4) for k in ("copy", "successor", "other")},
                                                 title="scores", label="score"),
    "head_heatmap_one": lambda: figures.head_heatmap(torch.rand(2, 8), label="score"),
    "head_heatmap_long_label": lambda: figures.head_heatmap({k: torch.rand(2, 4) for k in ("previous", "induction")},
                                                            label="mean attention on the diagonal"),
    "lines": lambda: figures.lines(range(10), {"a": np.arange(10), "b": np.arange(10) ** 0.5}, "x", "y",
                                   integer_x=True),
    "bars": lambda: figures.bars(["a0.h0", "a0.h1", "m0"], [1.0, 2.0, 0.5], "effect",
                                 colors=["tab:blue", "tab:blue", "tab:orange"],
                                 legend={"tab:blue": "head", "tab:orange": "MLP"}),
    "matrix": lambda: figures.matrix(np.eye(3), TASKS, TASKS, "overlap", label="Jaccard"),
    "bigram_fit": lambda: framework.bigram_fit({m: (-RNG.random(400) * 8, -RNG.random(400) * 8, 0.5)
                                                for m in ("attn-only-0l", "attn-only-1l")}),
    "ov_eigenvalues": lambda: framework.ov_eigenvalues({f"a0.h{h}": torch.randn(16, dtype=torch.cfloat)
                                                        for h in range(8)}, list(RNG.random(8) - 0.2)),
    "composition": lambda: framework.composition(_composition(), 0.09),
    "ablation_losses": lambda: framework.ablation_losses(pd.DataFrame(
        {"loss first half": [7.1, 7.2, 7.0, 7.1], "loss repeated half": [0.05, 7.1, 4.9, 0.1]},
        index=["none (clean)", "induction: a1.h0, a1.h1, a1.h3, a1.h2", "previous-token: a0.h3", "control: a0.h2"])),
    "phase_change": lambda: framework.phase_change(np.geomspace(1, 4e6, 12), list(np.linspace(7, 4, 12)),
                                                   list(np.linspace(0, -1.5, 12)), torch.rand(12, 2, 4),
                                                   ["a1.h0", "a1.h1"], (8, 9), "ICL score"),
    "loss_by_position": lambda: framework.loss_by_position(torch.rand(6, 60) + 3, [0, 10, 100, 300, 900, 2000],
                                                           (0, 3, 4, 5)),
    "circuit_graph": lambda: circuits.circuit_graph(Circuit(sorted({n for e in EDGES for n in e.replace(":", "->")
                                                                    .split("->")[:2]} - {"input", "logits"}),
                                                            EDGES, {e: float(i + 1) for i, e in enumerate(EDGES)},
                                                            method="path patching", score=7.4, full=9.3)),
    "circuit_graph_chain": lambda: circuits.circuit_graph(Circuit(["a0.h1", "m0", "a1.h2"],
                                                                  ["input->a0.h1:v", "a0.h1->m0", "m0->a1.h2:v",
                                                                   "a1.h2->logits"], method="ACDC")),
    "circuit_graphs": lambda: circuits.circuit_graphs(
        {"chain": Circuit.from_edges(["input->a0.h1:v", "a0.h1->m0", "m0->a1.h2:v", "a1.h2->logits"]),
         "qk": Circuit.from_edges(["input->a0.h0:q", "input->a0.h0:k", "a0.h0->logits"])},
        labels={"chain": {"m0": "sequence_map"}}),
    "knockout_heatmap": lambda: circuits.knockout_heatmap(_knockout(NODES[:10])),
    "knockout_heatmap_heads_only": lambda: circuits.knockout_heatmap(_knockout(HEADS[:8])),
    "faithfulness_curves": lambda: circuits.faithfulness_curves(
        {"induction": FaithfulnessCurve([0, 1, 2, 5, 10, 100], [0, 0, 4, 4, 4, 4], 4.0, 0.0),
         "copy_first": FaithfulnessCurve([0, 1, 2, 4, 10, 100], [0, 0, 0, 4, 4, 4], 4.0, 0.0)}),
    "training_curves": lambda: lists.training_curves({"loss_curve": [[s, 1 / (s + 1)] for s in range(0, 4000, 20)],
                                                      "test_accuracy_curve": [[s, 0.99] for s in range(0, 4000, 200)]},
                                                     title="median-2l-mlp"),
    "attention_curves": lambda: lists.attention_curves({h: RNG.random(9) for h in HEADS[:8]}, "rank", "attention"),
    "ov_table": lambda: lists.ov_table(RNG.standard_normal((32, 32)), "OV circuit of a1.h2"),
    "components": lambda: lists.components(pd.Series([0.5, 33.0, 0.1], index=["embed", "a0.h0", "biases"]),
                                           _knockout(["a0.h0"]), title="min-1l-attn"),
    "failures": lambda: lists.failures(
        pd.DataFrame({"accuracy": RNG.random(13), "trained": [True] * 9 + [False] * 4}, index=range(2, 15)),
        pd.DataFrame({"accuracy": RNG.random(60)}, index=range(60)),
        pd.DataFrame({"accuracy": [1.0, 1.0, 0.99]}, index=["no repeats", "repeats, answer once", "answer repeated"])),
    "lens_ranks": lambda: sequences.lens_ranks(_lens(), title="ranks"),
    "knockout_bars": lambda: sequences.knockout_bars(pd.DataFrame(RNG.random((20, 3)) * 100, index=NODES, columns=TASKS)),
    "circuit_scores": lambda: sequences.circuit_scores(_node_results(), 0.8, title="kept"),
    "table_matrix": lambda: sequences.table_matrix(pd.DataFrame(RNG.random((5, 3)) * 100, columns=TASKS,
                                                                index=TASKS + ["union", "common to all"]),
                                                   "transfer", fmt="{:.0f}", label="%"),
    "circuit_membership": lambda: sequences.circuit_membership({t: NODES[:4 + 3 * i] for i, t in enumerate(TASKS)},
                                                               NODES, title="membership"),
    "role_attention_maps": lambda: sequences.role_attention_maps(torch.rand(7, 24, 24).tril(), _role_labels(),
                                                                 HEADS[:7], title="seq-lm, numerals"),
    "task_accuracy": lambda: sequences.task_accuracy(pd.DataFrame(
        RNG.random((9, 4)), index=[f"task{i}" for i in range(9)],
        columns=pd.MultiIndex.from_product([["accuracy", "logit_diff"], ["bare", "among_words"]])),
        [f"task{i}" for i in range(9)], title="seq-lm: held-out prompts"),
    "edge_circuit_sizes": lambda: sequences.edge_circuit_sizes(pd.DataFrame(
        [{"model": m, "task": t, "edges kept": k, "edges in model": n, "faithfulness": f}
         for (m, n), t, k, f in [(("suite-m-s0", 172), "numerals", 12, 0.83), (("family-llama-m", 262), "months", 25, 0.8),
                                 (("family-neox-m", 163), "numerals", 3, 1.17), (("family-neox-m", 163), "months", 28, 0.88)]]),
        0.8, title="EAP-IG edge circuits per family and task"),
    "accuracy_by_place_and_length": lambda: sequences.accuracy_by_place_and_length(
        pd.DataFrame(RNG.random((5, 9)), columns=[f"task{i}" for i in range(9)]),
        pd.DataFrame(RNG.random((5, 9)), index=range(2, 7), columns=[f"task{i}" for i in range(9)])),
    "ioi_behaviour": lambda: ioi_plots.behaviour(pd.DataFrame(
        {"mean logit diff (IO − S)": [0.04, -0.07, 2.4], "does IOI": ["no", "no", "yes"]},
        index=["suite-s-s0", "suite-m-s1", "planted-moved (control)"]), 1.0, title="Does each model do IOI?"),
    "ioi_link_effects": lambda: ioi_plots.link_effects(pd.DataFrame(
        RNG.random((3, 4)), index=["planted (control)", "planted-cut (control)", "gpt2-small"],
        columns=[link_name(*link[:3]) for link in ALGORITHM_LINKS]), title="links"),
    "ioi_circuit_overlap": lambda: ioi_plots.circuit_overlap(*[pd.DataFrame(
        RNG.random((4, 4)), index=[f"planted-moved-{i} (control)" for i in range(4)],
        columns=[f"planted-moved-{i} (control)" for i in range(4)])] * 2, title="Jaccard overlap"),
}
# figures whose colours mean something beyond one series: each needs a legend or a colour bar
COLOUR_KEYED = set(FIGURES) - {"lines", "circuit_membership", "components"}  # one colour per panel, or
# (membership) the meaning of its three shades in its title


@pytest.fixture(params=sorted(FIGURES))
def drawn(request):
    fig = FIGURES[request.param]()
    fig.canvas.draw()
    yield request.param, fig
    plt.close(fig)


def _texts(fig) -> list[Text]:
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def _saved_width_px(fig, dpi: int = 100) -> int:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return Image.open(io.BytesIO(buffer.getvalue())).size[0]


def _has_key(fig) -> bool:
    colour_bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    return bool(colour_bars or fig.legends or any(ax.get_legend() for ax in fig.axes))


def test_figure_fits_the_content_column(drawn):
    name, fig = drawn
    assert fig.get_size_inches()[0] <= WIDTH + 1e-6, name
    # saved with a tight bounding box (as the notebook shows it): nothing pushes it past ~750 px
    assert _saved_width_px(fig) <= WIDTH * 100 + 25, name


def test_no_text_smaller_than_nine_points(drawn):
    name, fig = drawn
    small = [(t.get_text(), t.get_fontsize()) for t in _texts(fig) if t.get_fontsize() < SMALLEST - 1e-6]
    assert not small, (name, small[:5])


def test_layer_and_head_axes_have_whole_number_ticks(drawn):
    name, fig = drawn
    for ax in fig.axes:
        for axis, label in ((ax.xaxis, ax.get_xlabel()), (ax.yaxis, ax.get_ylabel())):
            if label in ("layer", "head"):
                shown = [t.get_text() for t in axis.get_ticklabels() if t.get_text()]
                assert shown and all(s.lstrip("−-").isdigit() for s in shown), (name, label, shown)


def test_colours_are_explained(drawn):
    name, fig = drawn
    if name in COLOUR_KEYED:
        assert _has_key(fig), f"{name}: colours carry meaning but there is no legend or colour bar"


def test_titles_do_not_overlap(drawn):
    name, fig = drawn
    renderer = fig.canvas.get_renderer()
    titles = [ax.title for ax in fig.axes if ax.title.get_text()] + [t for t in fig.texts if t.get_text()]
    if fig._suptitle is not None and fig._suptitle not in titles:
        titles.append(fig._suptitle)
    boxes = [t.get_window_extent(renderer) for t in titles] + [lg.get_window_extent(renderer) for lg in fig.legends]
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not boxes[i].overlaps(boxes[j]), (name, i, j)


def test_circuit_graph_uses_only_the_legend_colours_and_little_empty_space():
    fig = FIGURES["circuit_graph"]()
    fig.canvas.draw()
    arrows = [p for p in fig.axes[0].patches if isinstance(p, FancyArrowPatch)]
    used = {to_hex(p.get_edgecolor()) for p in arrows}
    legend = fig.axes[0].get_legend()
    named = {to_hex(h.get_color()) for h in legend.legend_handles}
    assert arrows and used <= named, used - named
    assert all(p.get_alpha() in (None, 1) for p in arrows)
    assert len(named) == 4  # q, k, v and MLP/logits all occur in EDGES
    chain = FIGURES["circuit_graph_chain"]()
    assert chain.get_size_inches()[1] <= 3.0  # a chain of five nodes is one row, not a tall column
    plt.close(fig)
    plt.close(chain)


def test_circuit_graphs_draw_one_panel_per_circuit_with_one_legend():
    fig = FIGURES["circuit_graphs"]()
    fig.canvas.draw()
    assert [ax.get_title() for ax in fig.axes] == ["chain", "qk"]
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "m0\nsequence\nmap" in texts and "a0.h1" in texts  # labels wrap; unlabelled nodes keep their name
    used = {to_hex(p.get_edgecolor()) for ax in fig.axes for p in ax.patches if isinstance(p, FancyArrowPatch)}
    named = {to_hex(h.get_color()) for h in fig.legends[0].legend_handles}
    assert used == named and len(named) == 4  # v and MLP/logits in the chain, q and k in the second
    plt.close(fig)


def test_knockout_panels_have_one_size_with_or_without_mlps():
    with_mlps, heads_only = FIGURES["knockout_heatmap"](), FIGURES["knockout_heatmap_heads_only"]()
    assert tuple(with_mlps.get_size_inches()) == tuple(heads_only.get_size_inches())
    for fig in (with_mlps, heads_only):
        fig.canvas.draw()
    a, b = (f.axes[0].get_position() for f in (with_mlps, heads_only))
    assert a.width == pytest.approx(b.width) and a.height == pytest.approx(b.height)
    plt.close(with_mlps)
    plt.close(heads_only)


def test_heatmap_values_contrast_with_their_cells():
    """Dark cells get white numbers and light cells black ones, on sequential and diverging maps."""
    fig, ax = plt.subplots()
    figures.heatmap_panel(ax, np.array([[-4.0, 0.0, 4.0]]), vmin=-4, vmax=4, cmap="RdBu")
    colours = [t.get_color() for t in ax.texts]
    assert colours == ["white", "black", "white"]
    plt.close(fig)


def test_colour_bar_labels_fit_along_their_bar(drawn):
    name, fig = drawn
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            label = ax.yaxis.label if ax.yaxis.label.get_text() else ax.xaxis.label
            along = label.get_window_extent(renderer).height
            assert along <= fig.bbox.height, (name, label.get_text())


def _strip_tokens(html: str) -> list[str]:
    """The ``tokens`` prop of a circuitsvis view's HTML (see shared.plots.widgets)."""
    start = html.index('"tokens": ') + len('"tokens": ')
    return json.JSONDecoder().raw_decode(html[start:])[0]


def test_token_strips_show_readable_labels():
    """Byte-level BPE tokens that are control characters or parts of a UTF-8 character show as
    ``‹0xNN›`` (never ``\\x1c`` or the replacement character), and list items get a trailing space
    so that neighbours do not run together; ordinary text tokens are left as they are."""
    tok = stdlib_tokenizer()
    ids = [i for i in range(tok.vocab_size) if "\ufffd" in tok.decode([i]) or tok.decode([i]) == "\x1c"][:5]
    assert ids, "the shipped BPE tokenizer has byte tokens to check"
    labels = token_strings(tok, ids, quotes=False)
    assert all(re.fullmatch(r"(‹0x[0-9A-F]{2}›)+", label) for label in labels), labels
    text = token_strings(tok, tok("def f(x):\n    return x")["input_ids"], quotes=False)
    assert "↵   " in text and all(not any(unicodedata.category(c) == "Cc" for c in t) for t in text)
    attention = np.ones((1, 3, 3)) / 3
    shown = _strip_tokens(widgets.attention_patterns(["1", "35", "SEP"], attention).data)
    assert shown == ["1 ", "35 ", "SEP "]
    words = _strip_tokens(widgets.attention_patterns([" Bell", " done", "<|endoftext|>"], attention).data)
    assert words == [" Bell", " done", "‹|endoftext|›"]  # no HTML tag for circuitsvis to swallow
    raw = _strip_tokens(widgets.attention_patterns(["a", "\x1c", "\ufffd"], attention).data)
    assert not any(unicodedata.category(c) == "Cc" or c == "\ufffd" for t in raw for c in t)


def test_tables_are_written_for_a_reader():
    """shared.chapters.display: counts as integers, fractions rounded or as percentages, no 0..N index
    column, a dash for missing values, long lists wrapped, and a sideways-scrolling container."""
    frame = pd.DataFrame({"edges": [43.0, 7.0], "share": [0.927083, 1.0], "auc": [1.0, float("nan")],
                          "nodes": [["a0.h1", "m0"], ["m0"]], "lift": [-0.004, 1.23456]})
    table = format_table(frame, percent=["share"])
    assert table.frame.to_dict("list") == {"edges": ["43", "7"], "share": ["93%", "100%"], "auc": ["1.00", "–"],
                                           "nodes": ["a0.h1, m0", "m0"], "lift": ["0.00", "1.23"]}
    html = table._repr_html_()
    assert "overflow-x: auto" in html and "<th>0</th>" not in html and ">1</th>" not in html
    assert "1,638,400" in repr(format_table(pd.DataFrame({"tokens": [1638400]})))
    named = format_table(frame.set_index(pd.Index(["numerals", "months"], name="task")))
    assert "numerals" in named._repr_html_()
    assert (count(1, "node"), count(3, "node"), count(2, "planted model")) == ("1 node", "3 nodes", "2 planted models")
