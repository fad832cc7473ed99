"""Every registered chapter executes end to end with its smoke parameters, through the build's papermill path."""
from __future__ import annotations

import json

import pytest

from shared.build import cli as build

CHAPTERS = build.load_registry()


@pytest.mark.parametrize("name", sorted(CHAPTERS) or [pytest.param("none", marks=pytest.mark.skip("no chapters"))])
def test_chapter_runs_with_smoke_parameters(name, tmp_path):
    chapter = CHAPTERS[name]
    params = chapter.parameters("local", chapter.smoke)
    output = tmp_path / f"{name}.ipynb"
    build.execute(chapter, params, output)
    cells = json.loads(output.read_text())["cells"]
    text = "\n".join(
        "".join(out.get("text", "")) + json.dumps(out.get("data", {}))
        for cell in cells if cell["cell_type"] == "code" for out in cell.get("outputs", [])
    )
    assert "Model: " in text, "the notebook must print which model it ran on"
    assert not any(out.get("output_type") == "error" for c in cells for out in c.get("outputs", []))
