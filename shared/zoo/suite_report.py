"""``python -m shared.zoo.suite_report``: the ability numbers of every trained suite model.

For each model (default: all of :func:`shared.zoo.suite.suite_names` that are trained; untrained ones
are named and skipped, never trained here) it prints its size and training record, then each ability
against its target (:data:`shared.tasks.abilities.TARGETS`), measured on held-out forms only:
sequence accuracy on the book's templates and on the held-out surface forms (each form reported on
its own row), IOI logit difference per template, greater-than probability difference per template,
and the best induction head. ``--step N`` evaluates a checkpoint instead of the final weights.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Optional, Sequence

import pandas as pd

from shared.errors import BookError
from shared.tasks.abilities import TARGETS, ability_summary, induction_accuracy, ioi_scores, meets_targets
from shared.tasks.heldout import BOOK_TEMPLATES
from shared.zoo.registry import load_model, local_models, model_metrics
from shared.zoo.suite import suite_names, trained_folder

LABELS = {"book_accuracy": "sequences, book templates (top-1)",
          "heldout_accuracy": "sequences, held-out forms (top-1, mean)",
          "ioi_positive": "IOI, share of prompts with logit diff > 0",
          "ioi_mean": "IOI, mean logit diff IO - S (nats)",
          "gt_prob_diff": "greater-than, mean probability difference",
          "gt_gain": "greater-than, mean gain over the \"01\" control",
          "induction": "induction, best head's score"}


def non_embedding_params(bridge: Any) -> int:
    """Parameters outside the token/position embeddings and the unembedding."""
    skip = ("tok_embed", "pos.", "head.")
    return sum(p.numel() for n, p in bridge.original_model.named_parameters() if not n.startswith(skip))


def model_report(name: str, step: Optional[int] = None, n_prompts: int = 40) -> tuple[str, dict[str, Any]]:
    """The printed report of one model and its :func:`ability_summary`."""
    bridge = load_model(name, step=step)
    metrics = model_metrics(name)
    summary = ability_summary(bridge, n_prompts=n_prompts)
    passed = meets_targets(summary)
    cfg = bridge.cfg
    lines = [f"== {name}" + (f" at step {step}" if step is not None else " (final weights)"),
             f"   {cfg.n_layers} layers, d_model {cfg.d_model}, {cfg.n_heads} heads, "
             f"{non_embedding_params(bridge):,} non-embedding parameters; {metrics['tokens_seen']:,} tokens in "
             f"{metrics['steps']} steps, {metrics['train_seconds']:.0f} s on {metrics['threads']} thread(s); "
             f"final validation loss {metrics['final_val_loss']:.3f}"]
    for key, label in LABELS.items():
        value = summary[key]
        extra = f" ({summary['induction_head']})" if key == "induction" else ""
        relation = ">" if key == "induction" else ">="
        judged = (f"target {relation} {TARGETS[key]:<5} {'met' if passed[key] else 'NOT met'}" if key in TARGETS
                  else "(no target)")
        lines.append(f"   {label:<45} {value:7.3f}{extra:<8} {judged}")
    forms = summary["forms"].copy()
    forms.insert(0, "kind", ["book template" if f in BOOK_TEMPLATES else "held-out form" for f in forms.index])
    lines += ["", "   Sequence accuracy per surface form (held_out: never in the training text):",
              _indent(forms.round(2).to_string())]
    ioi = summary["ioi_by_template"].rename(columns={"mean": "mean_logit_diff", "<lambda_0>": "share_positive"})
    lines += ["", "   IOI per held-out template:", _indent(ioi.round(2).to_string()),
              "", "   Greater-than per held-out template (mass: probability on the 100 two-digit tokens):",
              _indent(summary["gt_by_template"].round(3).to_string()), ""]
    return "\n".join(lines), summary


def _indent(text: str) -> str:
    return "\n".join("   " + line for line in text.splitlines())


# The suite's targets (issue 28), all on held-out forms: (column, label, threshold, applies to every model?)
SUITE_TARGETS = (("ioi_share", "IOI: share of prompts preferring IO", 0.90, False),
                 ("ioi_ld", "IOI: mean logit diff (nats)", 2.0, False),
                 ("ioi_abba_share", "IOI ABBA: share preferring IO", 0.80, False),
                 ("ioi_baba_share", "IOI BABA: share preferring IO", 0.80, False),
                 ("induction_top1", "induction: top-1 on repeated random tokens", 0.90, True),
                 ("gt_prob_diff", "greater-than: probability difference", 0.50, False),
                 ("seq_heldout", "sequences: top-1, mean of held-out forms", 0.80, False),
                 ("seq_worst_form", "sequences: top-1, worst held-out form", 0.50, False),
                 ("val_flat", "validation loss fall over the last 10% (nats)", 0.05, False))


def target_numbers(name: str, summary: dict[str, Any], n_prompts: int = 40) -> dict[str, float]:
    """The numbers the suite's targets (``SUITE_TARGETS``) judge, for a loaded model's :func:`ability_summary`."""
    bridge = load_model(name)
    ioi = ioi_scores(bridge, n_prompts=n_prompts)
    held = summary["forms"][~summary["forms"].index.isin(BOOK_TEMPLATES)]["mean"]
    log = [row for row in model_metrics(name)["checkpoints"] if row.get("val_loss") is not None]
    late = min(log, key=lambda row: abs(row["step"] - 0.9 * log[-1]["step"]))
    out = dict(ioi_share=float((ioi.logit_diff > 0).mean()), ioi_ld=float(ioi.logit_diff.mean()),
               induction_top1=induction_accuracy(bridge), gt_prob_diff=summary["gt_prob_diff"],
               gt_gain=summary["gt_gain"], seq_heldout=float(held.mean()), seq_worst_form=float(held.min()),
               val_flat=float(late["val_loss"] - log[-1]["val_loss"]))
    for order, part in ioi.groupby("order"):
        out[f"ioi_{order.lower()}_share"] = float((part.logit_diff > 0).mean())
    return out


def targets_table(numbers: dict[str, dict[str, float]]) -> pd.DataFrame:
    """One row per target, one column per model: the number, and "met" / "NOT met" (targets that apply only
    to the largest model are judged on the last model given)."""
    names = list(numbers)
    rows = {}
    for column, label, threshold, every in SUITE_TARGETS:
        judged = names if every or column.startswith("ioi") else names[-1:]
        cells = {}
        for n in names:
            value = numbers[n][column]
            ok = value <= threshold if column == "val_flat" else value >= threshold
            cells[n] = f"{value:.2f}" + (f" {'met' if ok else 'NOT met'}" if n in judged else "")
        rows[f"{label} ({'<=' if column == 'val_flat' else '>='} {threshold})"] = cells
    return pd.DataFrame(rows).T


def summary_table(summaries: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per model, one column per ability number."""
    return pd.DataFrame({name: {key: s[key] for key in TARGETS} for name, s in summaries.items()}).T


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.zoo.suite_report", description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", default=None, help="suite models (default: all trained ones)")
    parser.add_argument("--step", type=int, default=None, help="evaluate this checkpoint step")
    parser.add_argument("--n-prompts", type=int, default=40, help="prompts per form, task and template")
    args = parser.parse_args(argv)
    names = args.models or suite_names()
    summaries = {}
    try:
        for name in names:
            if name not in local_models():
                raise BookError(f"Unknown model {name!r}; the suite is {', '.join(suite_names())}.")
            if trained_folder(name) is None:
                print(f"== {name}: not trained yet (load_model({name!r}) trains it); skipped.\n")
                continue
            text, summaries[name] = model_report(name, args.step, args.n_prompts)
            print(text, flush=True)
    except BookError as err:
        print(err, file=sys.stderr)
        return 2
    if summaries:
        print("== Summary (targets: " + ", ".join(f"{k} {v}" for k, v in TARGETS.items()) + ")")
        print(summary_table(summaries).round(3).to_string())
        print("\n== The suite's targets on held-out forms (IOI: in at least 3 models, the largest included; "
              "greater-than, sequences and the flat loss: the largest, here the last model listed)")
        numbers = {name: target_numbers(name, s, args.n_prompts) for name, s in summaries.items()}
        with pd.option_context("display.width", 250, "display.max_colwidth", 40):
            print(targets_table(numbers).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["LABELS", "SUITE_TARGETS", "main", "model_report", "non_embedding_params", "summary_table", "target_numbers",
           "targets_table"]
