"""Cleaning an executed chapter before it is published: the notebook a reader downloads from the book
(``_sources/<chapter>.ipynb``) and the page rendered from it show what the chapter printed and drew,
in order, and nothing of the machinery that ran it.

* stderr streams are dropped (warnings such as tqdm's ``IProgress not found`` and progress bars:
  the book hides stderr anyway, and they carry absolute paths of this machine);
* carriage-return progress fragments in stdout collapse to their final state, and adjacent stdout
  streams are merged, so a label printed before a table stays next to that table (the book itself
  must not merge streams across other outputs: ``nb_merge_streams: false`` in ``_config.yml``);
* the checkout's absolute path is removed from printed text;
* papermill's injected ``# Parameters`` cell is hidden; when it changed a default, a short note
  after the parameters cell says which values this page ran with;
* papermill's temporary input and output paths are dropped from the notebook metadata.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat

INJECTED = "injected-parameters"
NOTE_TAG = "parameters-note"


def _final_text(text: str) -> str:
    """``text`` with each line reduced to what a terminal would last show after carriage returns."""
    lines = text.split("\n")
    out = []
    for line in lines:
        parts = [p for p in line.split("\r") if p]
        out.append(parts[-1] if parts else "")
    return "\n".join(out)


def clean_outputs(outputs: list[Any], root: Path) -> list[Any]:
    """One cell's outputs: no stderr, adjacent stdout merged, progress collapsed, no absolute root."""
    prefix = str(root).rstrip("/") + "/"
    cleaned: list[Any] = []
    for out in outputs:
        if out.get("output_type") == "stream":
            if out.get("name") != "stdout":
                continue
            if cleaned and cleaned[-1].get("output_type") == "stream":
                cleaned[-1]["text"] += out["text"]
                continue
            out = nbformat.from_dict(dict(out))  # a copy: merging must not edit the input
        cleaned.append(out)
    for out in cleaned:
        if out.get("output_type") == "stream":
            out["text"] = _final_text(out["text"]).replace(prefix, "")
            if not out["text"].strip():
                out["text"] = ""
        elif isinstance(out.get("data", {}).get("text/plain"), str):
            out["data"]["text/plain"] = out["data"]["text/plain"].replace(prefix, "")
    return [out for out in cleaned if out.get("output_type") != "stream" or out["text"]]


def label_parameters(nb: Any, defaults: dict[str, Any]) -> None:
    """Hide papermill's injected parameters cell; note the values that differ from ``defaults``."""
    for i, cell in enumerate(nb.cells):
        tags = cell.metadata.get("tags", [])
        if INJECTED not in tags:
            continue
        if "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
        params = (nb.metadata.get("papermill") or {}).get("parameters") or {}
        changed = {k: v for k, v in params.items() if k not in defaults or defaults[k] != v}
        if changed:
            values = ", ".join(f"`{k} = {v!r}`" for k, v in changed.items())
            note = nbformat.v4.new_markdown_cell(f"*This page was built with {values} in place of the "
                                                 f"default{'s' if len(changed) > 1 else ''} above.*")
            note.metadata["tags"] = [NOTE_TAG]
            nb.cells.insert(i + 1, note)
        return


def clean_notebook(nb: Any, defaults: dict[str, Any], root: Path) -> Any:
    """``nb`` (an executed chapter) cleaned in place as described in the module docstring."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = clean_outputs(cell.get("outputs", []), root)
    label_parameters(nb, defaults)
    papermill = nb.metadata.get("papermill") or {}
    for key in ("input_path", "output_path"):
        papermill.pop(key, None)
    return nb


__all__ = ["INJECTED", "NOTE_TAG", "clean_notebook", "clean_outputs", "label_parameters"]
