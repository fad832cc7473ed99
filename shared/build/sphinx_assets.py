"""A small Sphinx extension of the book (``_config.yml``: ``sphinx.extra_extensions``).

jupyter-book 1.x ends up with sphinx-thebe's and sphinx-togglebutton's inline configuration scripts
twice in every page's head; the second ``const THEBE_JS_URL = ...`` is a console error
(``Identifier 'THEBE_JS_URL' has already been declared``). This extension keeps the first copy of
each script on every page.
"""
from __future__ import annotations

from typing import Any

__all__ = ["dedupe_scripts", "setup"]


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


def setup(app: Any) -> dict[str, Any]:
    app.connect("html-page-context", dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
