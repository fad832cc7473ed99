"""A small Sphinx extension of the book (``_config.yml``: ``sphinx.extra_extensions``).

* jupyter-book 1.x ends up with sphinx-thebe's and sphinx-togglebutton's inline configuration scripts
  twice in every page's head; the second ``const THEBE_JS_URL = ...`` is a console error
  (``Identifier 'THEBE_JS_URL' has already been declared``). This extension keeps the first copy of
  each script on every page.
* The header's launch buttons (Colab) open ``<path_to_book>/<page>.ipynb`` in the repository. The
  page of a chapter's run, ``<chapter>--<run>`` (see :mod:`shared.build.runs`), has no notebook of
  its own there: its buttons are pointed at the chapter's notebook, ``<path_to_book>/<chapter>.ipynb``.
"""
from __future__ import annotations

from typing import Any

from shared.build.runs import RUN_SEP

__all__ = ["dedupe_scripts", "launch_chapter_notebook", "setup"]


def _script_key(script: Any) -> tuple:
    attributes = getattr(script, "attributes", {}) or {}
    # an inline script is added once with filename None and once with "" (hence the repeats)
    return getattr(script, "filename", str(script)) or "", tuple(sorted((k, str(v)) for k, v in attributes.items()
                                                                   if k != "priority"))


def dedupe_scripts(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """``html-page-context`` handler: the page's scripts without repeats, in their order."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple] = set()
    kept = []
    for script in scripts:
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def _retarget(buttons: list, old: str, new: str, inside: bool = False) -> None:
    """Rewrite ``old`` to ``new`` in the URLs of the launch group (not the download of the page)."""
    for button in buttons:
        if not isinstance(button, dict):
            continue
        launch = inside or button.get("label") == "launch-buttons"
        url = button.get("url")
        if launch and isinstance(url, str) and url.startswith("http") and url.endswith(old):
            button["url"] = url[: -len(old)] + new
        _retarget(button.get("buttons") or [], old, new, launch)


def launch_chapter_notebook(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """``html-page-context`` handler, after sphinx-book-theme's launch buttons: on a run page
    ``<chapter>--<run>``, every header button that opens ``.../<chapter>--<run>.ipynb`` opens
    ``.../<chapter>.ipynb`` instead (the run's page is not a file of the repository)."""
    if RUN_SEP not in pagename:
        return
    folder, _, page = pagename.rpartition("/")
    chapter = page.split(RUN_SEP, 1)[0]
    prefix = f"{folder}/" if folder else ""
    _retarget(context.get("header_buttons") or [], f"/{prefix}{page}.ipynb", f"/{prefix}{chapter}.ipynb")


def setup(app: Any) -> dict[str, Any]:
    app.connect("html-page-context", dedupe_scripts, priority=900)
    app.connect("html-page-context", launch_chapter_notebook, priority=900)  # sphinx-book-theme's run at 501
    return {"parallel_read_safe": True, "parallel_write_safe": True}
