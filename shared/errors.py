"""Errors that carry one clear sentence for the reader (the build and notebooks print them as is)."""
from __future__ import annotations


class BookError(Exception):
    """Base class: a user-facing problem (bad parameter, unavailable model, ...), not a bug."""


class UnknownModelError(BookError, KeyError):
    def __str__(self) -> str:  # KeyError would otherwise add quotes
        return str(self.args[0])


class ModelUnavailableError(BookError):
    """A pretrained model cannot be loaded here (no internet, not cached)."""


class CheckpointError(BookError):
    """A cached file (checkpoint, tokenizer) is missing, truncated or does not match its recorded sha256."""


class ParameterError(BookError, ValueError):
    """A notebook or function parameter is invalid."""


__all__ = ["BookError", "CheckpointError", "ModelUnavailableError", "ParameterError", "UnknownModelError"]
