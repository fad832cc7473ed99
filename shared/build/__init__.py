"""The book build (``python -m shared.build``), imported by nothing else in ``shared``:

* ``cli`` — the command line: select chapters, check parameters, execute what changed, render, check;
* ``keys`` — the build key of a chapter (notebook, parameters, imported code, models, config, versions)
  and which executed pages are stale;
* ``twins`` — the committed ``.ipynb`` twin of each ``.py`` source, synced in the edited direction;
* ``execute`` — one chapter through papermill (quiet kernel, progress, timeouts, failures in one sentence);
* ``clean`` — the executed notebook as published (no stderr, labels next to their outputs);
* ``toc`` — ``_toc.yml`` and ``book/models.md``, generated from ``notebooks/chapters.yml``;
* ``html`` — jupyter-book into a staging folder, then one swap; ``sphinx_assets`` — a Sphinx fix-up;
* ``browser`` — the built pages in headless Chromium; ``layout`` — where all of it reads and writes.
"""

__all__: list[str] = []
