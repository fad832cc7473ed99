"""The book's circuit engine side by side with auto-circuit (issue 30).

``python -m benchmarks.peers --setup`` makes ``.venv-peers/`` (auto-circuit 1.0.1 with its own
TransformerLens 2); ``python -m benchmarks.peers`` runs both libraries on the same models, prompts,
metric and edges and prints the agreement and speed tables. The book's side runs in the book's
environment and drives a long-lived worker (:mod:`benchmarks.peers.worker`) in the peer environment;
the two exchange tensors through files. ``edges`` and ``measure`` import only the standard library,
so both environments use them."""

__all__: list[str] = []
