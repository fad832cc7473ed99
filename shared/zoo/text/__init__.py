"""Training text and tokenizers of the self-trained models (nothing is downloaded)."""

__all__: list[str] = []
