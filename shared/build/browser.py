"""The browser check: open built pages in headless Chromium as a reader would, with no network, and
report what a reader would meet. Used by ``python -m shared.build --check`` (the whole book) and the
tests (the fixture chapter and the intro).

Chromium is Debian's ``chromium`` package (``/usr/bin/chromium``, or ``CHROMIUM_PATH``) driven by the
``playwright`` Python package; playwright's own browser downloads are never used. The pages are
served from ``127.0.0.1``. One problem per line, prefixed with the page:

* a console error or an uncaught script error;
* a request to an address other than the local server (it is blocked);
* an image that does not load, and a chapter page (one built from a notebook) with no figure;
* a circuitsvis view still empty :data:`WIDGET_WAIT_S` seconds after the page loaded;
* a formula MathJax did not typeset (left as raw TeX);
* a table or code block wider than the content column with no scroll container around it.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import threading
from pathlib import Path
from typing import Iterator, Optional
from urllib.parse import urlparse

from shared.build.layout import BuildError, one_line

WIDGET_WAIT_S = 10
VIEWPORT = {"width": 1280, "height": 900}  # a laptop screen: the content column is ~750 px
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
SKIPPED_PAGES = ("genindex.html", "search.html")  # Sphinx's own index pages, no content of the book

WIDGETS = '[id^="cv-"], [id^="circuits-vis-"]'
WIDGETS_FILLED = f"""() => [...document.querySelectorAll('{WIDGETS}')]
    .every(el => el.childElementCount > 0 && el.getBoundingClientRect().height > 4)"""
MATHS_READY = """async () => {
    if (!document.querySelector('.math')) return;
    for (let i = 0; i < 100 && !(window.MathJax && MathJax.startup && MathJax.startup.promise); i++)
        await new Promise(r => setTimeout(r, 100));
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
}"""
PAGE_PROBLEMS = f"""([isChapter, waited]) => {{
    const out = [];
    const article = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
    const column = article.getBoundingClientRect();
    const shown = el => el.getClientRects().length > 0;
    const text = el => el.textContent.trim().replace(/\\s+/g, ' ').slice(0, 50);
    const images = [...article.querySelectorAll('img')].filter(shown);
    for (const img of images)
        if (!img.complete || img.naturalWidth === 0) out.push(`image does not load: ${{img.getAttribute('src')}}`);
    const figures = images.filter(img => img.naturalWidth > 0 && !img.closest('.colab-link, a'));
    if (isChapter && figures.length === 0) out.push('chapter page without a figure');
    for (const el of document.querySelectorAll('{WIDGETS}'))
        if (!(el.childElementCount > 0 && el.getBoundingClientRect().height > 4))
            out.push(`circuitsvis view ${{el.id}} still empty after ${{waited}} s`);
    for (const el of article.querySelectorAll('.math'))
        if (!el.querySelector('mjx-container')) out.push(`formula not typeset (raw TeX): ${{text(el)}}`);
    for (const el of article.querySelectorAll('table, pre')) {{
        if (!shown(el)) continue;
        const box = el.getBoundingClientRect();
        if (box.right <= column.right + 1 && el.scrollWidth <= el.clientWidth + 1) continue;
        let scrolls = false;
        for (let node = el; node && node !== article; node = node.parentElement) {{
            const overflow = getComputedStyle(node).overflowX;
            if ((overflow === 'auto' || overflow === 'scroll') && node.getBoundingClientRect().right <= column.right + 1) {{
                scrolls = true;
                break;
            }}
        }}
        if (!scrolls) {{
            const wide = Math.round(Math.max(box.width, el.scrollWidth));
            out.push(`${{el.tagName.toLowerCase()}} wider than the content column (${{wide}} px, column ` +
                     `${{Math.round(column.width)}} px) without a scroll container: "${{text(el)}}"`);
        }}
    }}
    return out;
}}"""


def chromium_path() -> Optional[str]:
    """Debian's Chromium (``CHROMIUM_PATH`` overrides), or ``None`` when it is not installed."""
    if os.environ.get("CHROMIUM_PATH"):
        return os.environ["CHROMIUM_PATH"] if Path(os.environ["CHROMIUM_PATH"]).exists() else None
    found = [p for p in CHROMIUM_CANDIDATES if Path(p).exists()]
    return found[0] if found else shutil.which("chromium")


def missing_browser() -> Optional[str]:
    """A sentence saying what the check lacks (Chromium or playwright), or ``None``."""
    if chromium_path() is None:
        return ("The browser check needs Chromium: install Debian's package (apt-get install -y chromium) or "
                "point CHROMIUM_PATH at a Chromium binary.")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "The browser check needs the playwright package: pip install -e '.[test]' (or pip install playwright)."
    return None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # no access log on stderr
        pass


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 (a free port) for the duration; yields the base address."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def default_pages(html: Path) -> list[str]:
    """Every top-level page of a built book except Sphinx's index pages and redirects (``index.html``)."""
    return [p.name for p in sorted(html.glob("*.html")) if p.name not in SKIPPED_PAGES
            and 'http-equiv="Refresh"' not in p.read_text(errors="replace")[:2000]]


def _check_page(context: object, base: str, page: str, is_chapter: bool, widget_wait_s: float) -> list[str]:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    found: list[str] = []
    blocked: set[str] = set()

    def on_console(msg: object) -> None:
        if msg.type != "error":
            return
        if "Failed to load resource" in msg.text and (msg.location or {}).get("url") in blocked:
            return  # already reported as a blocked request
        found.append(f"console error: {one_line(msg.text)}")

    def route(request_route: object) -> None:
        url = request_route.request.url
        parsed = urlparse(url)
        if parsed.scheme in ("http", "https", "ws", "wss") and parsed.hostname not in LOCAL_HOSTS:
            blocked.add(url)
            found.append(f"request to a non-local address: {url}")
            request_route.abort()
        else:
            request_route.continue_()

    tab = context.new_page()
    tab.on("console", on_console)
    tab.on("pageerror", lambda err: found.append(f"script error: {one_line(err)}"))
    tab.route("**/*", route)
    try:
        tab.goto(base + page, wait_until="load", timeout=30_000)
        tab.evaluate(MATHS_READY)
        with contextlib.suppress(PlaywrightTimeout):
            tab.wait_for_function(WIDGETS_FILLED, timeout=widget_wait_s * 1000)
        found += tab.evaluate(PAGE_PROBLEMS, [is_chapter, widget_wait_s])
    except PlaywrightTimeout as err:
        found.append(f"page did not load: {one_line(err)}")
    finally:
        tab.close()
    return [f"{page}: {problem}" for problem in dict.fromkeys(found)]


def check_pages(html: Path, pages: Optional[list[str]] = None, widget_wait_s: Optional[float] = None) -> list[str]:
    """Open ``pages`` (default: every page) of the built book in ``html`` and return the problems,
    one line each. A page built from a notebook (``_sources/<page>.ipynb``) counts as a chapter;
    circuitsvis views get ``widget_wait_s`` seconds (default :data:`WIDGET_WAIT_S`) to draw."""
    html = Path(html)
    if not (html / "index.html").exists():
        raise BuildError(f"There is no built book in {html}: run python -m shared.build first.")
    missing = missing_browser()
    if missing:
        raise BuildError(missing)
    from playwright.sync_api import sync_playwright

    pages = pages or default_pages(html)
    widget_wait_s = widget_wait_s or WIDGET_WAIT_S
    chapters = {p.stem for p in (html / "_sources").glob("*.ipynb")}
    problems: list[str] = []
    with serve(html) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), headless=True)
        try:
            context = browser.new_context(viewport=VIEWPORT)
            for page in pages:
                problems += _check_page(context, base, page, Path(page).stem in chapters, widget_wait_s)
        finally:
            browser.close()
    return problems


__all__ = ["VIEWPORT", "WIDGET_WAIT_S", "check_pages", "chromium_path", "default_pages", "missing_browser", "serve"]
