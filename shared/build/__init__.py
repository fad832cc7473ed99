"""The book build (``python -m shared.build``), imported by nothing else in ``shared``:

* ``cli`` — the command line: select chapters, check parameters, execute what changed, render;
* ``keys`` — the build key of a chapter (notebook, parameters, imported code, models, config, versions);
* ``execute`` — one chapter through papermill, its ``.ipynb`` twin and its exported figures;
* ``toc`` — ``_toc.yml`` and ``book/models.md``, generated from ``notebooks/chapters.yml``;
* ``html`` — jupyter-book; ``layout`` — where all of it reads and writes.
"""

__all__: list[str] = []
