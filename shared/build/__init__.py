"""The book build (``python -m shared.build``); see :mod:`shared.build.cli`."""

__all__: list[str] = []
