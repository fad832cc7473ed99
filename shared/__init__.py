"""circuits-book's helper package, in layers (each imports only those before it):

* ``engine`` — nodes and edges, prompt batches, metrics, recorded runs, ablation, patching, EAP,
  pruning and the ``Circuit`` type;
* ``analysis`` — reading weights and heads: OV/QK circuits, head detectors, logit lens, attention;
* ``tasks`` — prompt sets with their clean/corrupted pairs and answers;
* ``zoo`` — ``load_model`` and the self-trained models, their corpora and tokenizers;
* ``plots`` — every figure and interactive view;
* ``chapters`` — the glue the notebooks import (``open_chapter``, ``say``, chapter helpers);
* ``build`` — executes the notebooks and renders the book (imported by nothing in ``shared``).

``errors`` and ``paths`` sit below all of them. Importing the package itself loads nothing heavy.
"""

__all__: list[str] = []
