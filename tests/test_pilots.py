"""The pilot table's definitions, on hand-made probe records."""
from __future__ import annotations

import json

import pytest

from shared.build import keys
from shared.chapters.training import pilot_runs
from shared.errors import ParameterError
from shared.zoo import pilots


def probe(tokens, abba, baba, induction):
    return dict(step=tokens // 4096, tokens=tokens, ioi_abba_share=abba, ioi_baba_share=baba, induction_top1=induction,
                ioi_abba_ld=0.0, ioi_baba_ld=0.0, gt_prob_diff=0.0, seq_heldout=0.0)


PROBES = [probe(1_000_000, 0.5, 0.5, 0.0), probe(2_000_000, 0.2, 0.6, 0.6), probe(3_000_000, 0.75, 0.8, 0.4),
          probe(4_000_000, 0.72, 0.9, 0.7), probe(5_000_000, 0.9, 0.95, 0.8)]


def test_lasting_from_is_the_first_probe_after_which_the_ability_never_drops():
    assert pilots.lasting_from(PROBES, "induction_top1") == 4_000_000        # 0.6 at 2 M did not last
    assert pilots.lasting_from(PROBES, "ioi_both") == 3_000_000               # min(ABBA, BABA) >= 0.7 from 3 M
    assert pilots.lasting_from(PROBES, "ioi_both", threshold=0.8) == 5_000_000
    assert pilots.lasting_from(PROBES[:2], "ioi_both") is None
    assert pilots.s_preferred_phase(PROBES) == (2_000_000, 2_000_000)         # ABBA 0.2 <= 1 - 0.65
    assert pilots.s_preferred_phase(PROBES[2:]) is None


def test_table_reads_settings_and_emergence_from_a_record():
    config = dict(n_layers=2, d_model=64, n_ctx=128, seed=0)
    recipe = dict(steps=2000, batch_size=32, mix={"ioi": 0.3, "story": 0.1, "repeat": 0.1}, random_share=0.15,
                  schedule="wsd")
    record = dict(model="suite-s-s0", pilot="p", key=dict(config=config, recipe=recipe, version=3),
                  log=[dict(step=1220, val_loss=2.5)], probes=PROBES)
    row = pilots.pilot_table({"p": record}).loc["p"]
    assert (row.layers, row.tokens_M, row.of_M, row.repeats) == (2, 5.0, 8.2, 0.25)
    assert (row.induction_at_M, row.ioi_at_M, row.s_preferred_M) == (4.0, 3.0, "2.0-2.0")


def test_chapter_runs_are_checked_and_records_join_the_build_key(tmp_path, monkeypatch):
    with pytest.raises(ParameterError, match="No training record named 'nope'"):
        pilot_runs(["nope"])
    monkeypatch.setattr(keys, "RECORDS", tmp_path)
    monkeypatch.setattr(keys, "progress_files", lambda: [])
    reader = [pilots.__file__]
    assert keys.records_digest(["shared/zoo/suite.py"]) == {}
    (tmp_path / "a.json").write_text(json.dumps({"probes": []}))
    first = keys.records_digest(reader)
    (tmp_path / "a.json").write_text(json.dumps({"probes": [1]}))
    assert keys.records_digest(reader) != first
