"""Reading a model's weights and activations: OV/QK circuits, head detectors, logit lens, attention."""

__all__: list[str] = []
