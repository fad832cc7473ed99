"""Prompt sets: clean/corrupted pairs with their answers and token positions, and task data."""

__all__: list[str] = []
