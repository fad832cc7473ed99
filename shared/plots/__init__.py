"""Figures of the book: ``figures`` is the shared vocabulary (head heatmaps with integer ticks, lines,
bars, matrices); one module per part of the book builds on it; ``widgets`` holds the circuitsvis views."""
from shared.plots import circuits, figures, framework, lists, sequences, widgets

__all__ = ["circuits", "figures", "framework", "lists", "sequences", "widgets"]
