"""Circuit discovery on a TransformerBridge: imports only torch, transformer_lens and itself."""

__all__: list[str] = []
