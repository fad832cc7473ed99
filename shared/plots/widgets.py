"""Interactive circuitsvis views that render offline in the built book and online in Colab.

circuitsvis inlines its 1.3 MB JavaScript bundle into every view when offline. Here each view is
a small HTML snippet that loads the bundle once per page from the book's ``_static`` folder (the
build copies it there) and falls back to the public CDN when that file is absent (Colab, Jupyter).
"""
from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

from IPython.display import HTML

from shared.analysis.text import widget_labels

BUNDLE_NAME = "circuitsvis.js"


def bundle_path() -> Path:
    import circuitsvis

    return Path(circuitsvis.__file__).parent / "dist" / "cdn" / "iife.js"


def circuitsvis_html(element: str, **props: Any) -> str:
    """HTML for the circuitsvis React ``element`` (e.g. ``"AttentionPatterns"``) with ``props``."""
    import circuitsvis
    from circuitsvis.utils.convert_props import convert_props

    div = "cv-" + uuid.uuid4().hex[:12]
    if "google.colab" in sys.modules:  # Colab has internet: the normal CDN form is small
        from circuitsvis.utils.render import render_cdn

        return render_cdn(element, **props)
    data = convert_props(props)
    cdn = f"https://unpkg.com/circuitsvis@{circuitsvis.__version__}/dist/cdn/iife.js"
    return f"""<div id="{div}" style="margin: 15px 0;"></div>
<script>
(function () {{
  function draw() {{ CircuitsVis.render("{div}", CircuitsVis.{element}, {data}); }}
  if (window.CircuitsVis) {{ draw(); return; }}
  var queue = (window.__cvQueue = window.__cvQueue || []);
  queue.push(draw);
  if (queue.length > 1) return;
  function flush() {{ while (queue.length) queue.shift()(); }}
  function load(src, fallback) {{
    var s = document.createElement("script");
    s.src = src; s.onload = flush;
    if (fallback) s.onerror = function () {{ load(fallback, null); }};
    document.head.appendChild(s);
  }}
  var root = document.documentElement.getAttribute("data-content_root") || "../";
  load(root + "_static/{BUNDLE_NAME}", "{cdn}");
}})();
</script>"""


def show(element: str, **props: Any) -> HTML:
    """Display a circuitsvis view (see :func:`circuitsvis_html`)."""
    return HTML(circuitsvis_html(element, **props))


def attention_patterns(tokens: list[str], attention: Any, head_names: list[str] | None = None,
                       spaced: bool | None = None) -> HTML:
    """Interactive attention patterns: ``attention`` is [heads, dest, src]; ``tokens`` are shown as
    readable labels (:func:`shared.analysis.text.widget_labels`: no control characters, and
    separated by a space when they carry none of their own, as list items do)."""
    props: dict[str, Any] = {"tokens": widget_labels(tokens, spaced), "attention": attention}
    if head_names is not None:
        props["headLabels"] = head_names
    return show("AttentionPatterns", **props)


__all__ = ["BUNDLE_NAME", "attention_patterns", "bundle_path", "circuitsvis_html", "show"]
