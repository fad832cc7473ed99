"""Figures of the book (``figures``: the shared vocabulary; one module per part of the book)."""
from shared.plots import circuits, figures, widgets

__all__ = ["circuits", "figures", "widgets"]
