"""Models: ``registry.load_model`` for self-trained, local-folder and pretrained models, and the
recipes, corpora and tokenizers of the models trained here."""

__all__: list[str] = []
