"""``python -m shared.zoo.pilots``: the pilot table — what each short training run reached, and when.

Pilots are variants of suite models trained by ``python -m shared.zoo.train_suite --pilot NAME --set ...``;
their ``progress.json`` (held-out probes every ``probe_every`` steps, losses, settings) is kept in the
local cache while they run and copied into ``shared/zoo/pilot_records/`` by ``--save`` so the book can
show them. The suite's own runs (``shared/checkpoints/training/``) are listed beside them.

An ability *emerges* at the first probe from which it stays above its threshold (``THRESHOLDS``):
induction top-1 >= 0.5; IOI: both orders (ABBA, BABA) preferring IO in >= 70% of prompts; the
repeated-name phase: the first probe where either order prefers S in >= 65% of prompts (copying
without S-inhibition).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import pandas as pd

from shared.paths import PACKAGE_DIR, local_cache_dir, shipped_cache_dir

RECORDS = PACKAGE_DIR / "zoo" / "pilot_records"
THRESHOLDS = {"induction_top1": 0.5, "ioi_both": 0.7, "ioi_s_preferred": 0.65}


def _ioi_both(row: dict[str, Any]) -> float:
    return min(row["ioi_abba_share"], row["ioi_baba_share"])


def lasting_from(probes: list[dict[str, Any]], ability: str, threshold: Optional[float] = None) -> Optional[int]:
    """Tokens at the first probe from which ``ability`` stays at or above its threshold (``THRESHOLDS``
    unless given), or None."""
    value = {"induction_top1": lambda r: r["induction_top1"], "ioi_both": _ioi_both}[ability]
    threshold = THRESHOLDS[ability] if threshold is None else threshold
    ok = [value(r) >= threshold for r in probes]
    for i in range(len(ok)):
        if all(ok[i:]):
            return probes[i]["tokens"]
    return None


def s_preferred_phase(probes: list[dict[str, Any]]) -> Optional[tuple[int, int]]:
    """Tokens at the first and last probe where one order prefers the repeated name S (share of prompts
    preferring IO <= 1 - threshold), or None if no probe does."""
    low = 1 - THRESHOLDS["ioi_s_preferred"]
    hits = [r["tokens"] for r in probes if min(r["ioi_abba_share"], r["ioi_baba_share"]) <= low]
    return (hits[0], hits[-1]) if hits else None


def progress_files() -> list[Path]:
    """The committed ``progress.json`` of the suite's runs (``shared/checkpoints/training/*/``)."""
    folder = shipped_cache_dir() / "training"
    return sorted(folder.glob("*/progress.json")) if folder.exists() else []


def records(include_local: bool = True) -> dict[str, dict[str, Any]]:
    """Every pilot and suite run's progress record by its label (committed records, then local ones)."""
    local = local_cache_dir() / "pilots"
    paths = sorted(RECORDS.glob("*.json")) if RECORDS.exists() else []
    paths += (sorted(local.glob("*/progress.json")) if include_local and local.exists() else []) + progress_files()
    out: dict[str, dict[str, Any]] = {}
    for path in paths:
        record = json.loads(path.read_text())
        out[record.get("pilot") or record["model"]] = record
    return out


def _differences(record: dict[str, Any], reference: dict[str, Any]) -> str:
    recipe, config = record["key"]["recipe"], record["key"]["config"]
    changed = [f"{k}={v}" for k, v in {**config, **recipe}.items()
               if {**reference["config"], **reference["recipe"]}.get(k) != v and k not in ("seed", "lr")]
    return ", ".join(changed) or "-"


def pilot_table(recs: Optional[dict[str, dict[str, Any]]] = None, ioi_share: Optional[float] = None) -> pd.DataFrame:
    """One row per run: shape, tokens, data, last probe, emergence of induction and IOI, the S-preferred phase."""
    recs = records() if recs is None else recs
    rows = []
    for label, rec in recs.items():
        if not rec.get("probes"):
            continue
        cfg, recipe, last = rec["key"]["config"], rec["key"]["recipe"], rec["probes"][-1]
        best = max(rec["probes"], key=_ioi_both)
        phase = s_preferred_phase(rec["probes"])
        mix = recipe["mix"]
        rows.append(dict(
            run=label, layers=cfg["n_layers"], d_model=cfg["d_model"],
            tokens_M=round(last["tokens"] / 1e6, 1), of_M=round(recipe["steps"] * recipe["batch_size"] * cfg["n_ctx"] / 1e6, 1),
            ioi_docs=mix.get("ioi", 0), stories=mix.get("story", 0), repeats=round(mix.get("repeat", 0) + recipe["random_share"], 2),
            schedule=recipe.get("schedule", "cosine"), val_loss=rec["log"][-1]["val_loss"],
            induction=last["induction_top1"], abba=last["ioi_abba_share"], abba_ld=last["ioi_abba_ld"],
            baba=last["ioi_baba_share"], baba_ld=last["ioi_baba_ld"], best_ioi_M=round(best["tokens"] / 1e6, 1),
            gt=last["gt_prob_diff"], seq=last["seq_heldout"],
            induction_at_M=_millions(lasting_from(rec["probes"], "induction_top1")),
            ioi_at_M=_millions(lasting_from(rec["probes"], "ioi_both", ioi_share)),
            s_preferred_M=None if phase is None else f"{phase[0] / 1e6:.1f}-{phase[1] / 1e6:.1f}"))
    return pd.DataFrame(rows).set_index("run") if rows else pd.DataFrame()


def _millions(tokens: Optional[int]) -> Optional[float]:
    return None if tokens is None else round(tokens / 1e6, 1)


def save_records() -> list[Path]:
    """Copy every local pilot's progress record into ``shared/zoo/pilot_records/`` (committed)."""
    RECORDS.mkdir(exist_ok=True)
    saved = []
    for path in sorted((local_cache_dir() / "pilots").glob("*/progress.json")):
        record = json.loads(path.read_text())
        target = RECORDS / f"{record['pilot']}.json"
        shutil.copyfile(path, target)
        saved.append(target)
    return saved


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.zoo.pilots", description=__doc__.split("\n")[0])
    parser.add_argument("--save", action="store_true", help="copy local pilot records into shared/zoo/pilot_records")
    args = parser.parse_args(argv)
    if args.save:
        for path in save_records():
            print(f"saved {path}")
    table = pilot_table()
    if table.empty:
        print("No pilot or suite run has a probe yet.", file=sys.stderr)
        return 2
    with pd.option_context("display.width", 250, "display.max_columns", 40):
        print(table.round(2).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["RECORDS", "THRESHOLDS", "lasting_from", "main", "pilot_table", "progress_files", "records", "s_preferred_phase",
           "save_records"]
