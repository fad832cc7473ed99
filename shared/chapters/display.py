"""How a chapter shows numbers to a reader: tables that fit the page's content column (or scroll
inside it) with numbers formatted for reading, and counted nouns with the right plural.

:func:`show_table` is the one way chapters display a table: counts as integers (``1,638,400``),
fractions rounded (``0.93``) or as percentages (``93%``), no ``0..N`` index column, missing values as
a dash, long cells wrapped, and the whole table inside a container that scrolls sideways if it is
still wider than the column. In Jupyter or Colab the same object prints as aligned text.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Collection, Mapping, Optional

import numpy as np
import pandas as pd
from IPython.display import display

DASH = "–"
SCROLL_STYLE = "overflow-x: auto; max-width: 100%; margin-bottom: 1em;"
CSS = ("<style>table.book-table { border-collapse: collapse; font-size: 0.9em; } "
       "table.book-table th, table.book-table td { white-space: normal; overflow-wrap: break-word; "
       "max-width: 22em; padding: 0.2em 0.5em; }</style>")


def count(n: int, noun: str, plural: Optional[str] = None) -> str:
    """``n`` and the noun in the right number: ``count(1, "node")`` is ``"1 node"``, ``count(3,
    "node")`` is ``"3 nodes"`` (``plural`` when adding an s is wrong)."""
    n = int(n)
    return f"{n:,} {noun if n == 1 else (plural or noun + 's')}"


def _is_count(column: pd.Series) -> bool:
    """Whole numbers stored as integers, or as floats that are all whole and not all 0/1 (so a column
    of fractions that happen to be 1.0 stays a fraction)."""
    if column.dtype == bool or not pd.api.types.is_numeric_dtype(column):
        return False
    if pd.api.types.is_integer_dtype(column):
        return True
    values = column.dropna().to_numpy(dtype=float)
    if not len(values):
        return False
    whole = bool(np.all(np.isclose(values, np.round(values))))
    return whole and float(np.abs(values).max()) > 1


def _formatter(digits: int, percent: bool, integer: bool) -> Callable[[Any], str]:
    def text(value: Any) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return DASH
        if isinstance(value, (bool, np.bool_)):
            return "yes" if value else ""
        if isinstance(value, (int, float, np.integer, np.floating)):
            if percent:
                return f"{float(value):.{digits}%}"
            if integer:
                return f"{int(round(float(value))):,}"
            text = f"{float(value):.{digits}f}"
            return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.00"
        if isinstance(value, (list, tuple, set)):
            return ", ".join(str(v) for v in value)
        return str(value)

    return text


@dataclass
class Table:
    """A formatted table: ``frame`` holds the cell texts; HTML in the book, aligned text elsewhere."""

    frame: pd.DataFrame
    show_index: bool

    def _repr_html_(self) -> str:
        body = self.frame.to_html(index=self.show_index, escape=True, border=0, classes="book-table",
                                  na_rep=DASH)
        return f'<div class="table-scroll" style="{SCROLL_STYLE}">{CSS}{body}</div>'

    def __repr__(self) -> str:
        return self.frame.to_string(index=self.show_index)


def format_table(frame: pd.DataFrame, digits: "int | Mapping[str, int]" = 2, percent: Collection[str] = (),
                 percent_digits: int = 0, integers: Collection[str] = (), index: Optional[bool] = None) -> Table:
    """``frame`` with every cell written for a reader (see the module docstring).

    ``digits``: decimals of other numbers, one number or per column (columns not named get 2);
    ``percent``: columns of fractions shown as percentages with ``percent_digits`` decimals (``0.934``
    -> ``93%``; a column named in a ``digits`` mapping takes its decimals from there); ``integers``:
    columns forced to whole numbers (others are detected); ``index``: show the index (default: unless
    it is the plain ``0..N`` range)."""
    if isinstance(frame, pd.Series):
        frame = frame.to_frame()
    if index is None:
        index = not (isinstance(frame.index, pd.RangeIndex) and frame.index.name is None)
    out = pd.DataFrame(index=frame.index)
    for i, key in enumerate(frame.columns):
        column = frame.iloc[:, i]
        is_percent = key in percent
        fallback = percent_digits if is_percent else (2 if isinstance(digits, Mapping) else digits)
        places = digits.get(key, fallback) if isinstance(digits, Mapping) else fallback
        shown = _formatter(places, is_percent, key in integers or (not is_percent and _is_count(column)))
        out[i] = [shown(v) for v in column.tolist()]
    out.columns = frame.columns
    return Table(out, bool(index))


def show_table(frame: pd.DataFrame, digits: "int | Mapping[str, int]" = 2, percent: Collection[str] = (),
               percent_digits: int = 0, integers: Collection[str] = (), index: Optional[bool] = None) -> None:
    """Display ``frame`` formatted by :func:`format_table`."""
    display(format_table(frame, digits, percent, percent_digits, integers, index))


__all__ = ["Table", "count", "format_table", "show_table"]
