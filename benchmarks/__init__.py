"""Benchmarks that are not part of the book's package: comparisons with other libraries (``peers``).

Nothing in ``shared`` imports this package. Its modules stay free of heavy imports at package level,
because the peer worker runs them in a second virtual environment that has no ``shared``."""

__all__: list[str] = []
