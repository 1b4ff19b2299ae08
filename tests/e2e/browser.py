"""Debian's chromium through Playwright, offline, for the pages Rally writes (root).

Headless, with a fresh profile and no network: every request that is not a file://
URL is blocked, except the report's CDN links, which get Rally's own copies (see
CDN_COPIES). Pages are judged once they have finished drawing, and Rally's own
known JavaScript defects are told apart from ours by the code that threw.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import re
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import rally
from playwright.sync_api import Error, Page, Route, sync_playwright

CHROMIUM = "/usr/bin/chromium"           # Debian's package (tools/bootstrap.sh)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 # belt and braces: no host name resolves, should a request slip by
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost"]

# `rally task report --out report.html` (Rally 5.1) loads AngularJS, D3 and NVD3 from
# these CDNs; this machine has no internet. The browser gets Rally's own copies of
# the same versions instead: the files `rally task report --html-static` inlines.
RALLY_LIBS = Path(rally.__file__).parent / "ui" / "templates" / "libs"
CDN_COPIES = {
    "https://ajax.googleapis.com/ajax/libs/angularjs/1.3.3/angular.min.js":
        "angular.1.3.3.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/d3/3.4.13/d3.min.js": "d3.3.4.13.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/nvd3/1.1.15-beta/nv.d3.min.js":
        "nv.d3.1.1.15-beta.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/nvd3/1.1.15-beta/nv.d3.min.css":
        "nv.d3.1.1.15-beta.min.css",
}

@dataclasses.dataclass(frozen=True)
class RallyDefect:
    """A fault of the code Rally's report ships, told apart from ours by its cause:
    the code that threw, found through the error's stack in the very file the
    browser ran (Rally's library copies, or the report with them inlined)."""

    why: str
    message: str     # in the error's message
    code: str        # the source text at one of the stack's frames


RALLY_DEFECTS = (
    RallyDefect(
        why="Rally 5.1's directive_widget.js sets window.onresize to changeFrameHeight(), "
            "which sizes an EmbedChart's iframe and throws when the page has none, as in "
            "any report without an EmbedChart, ours or not: once per resize, and "
            "full-page screenshots resize. NVD3 chains its charts' redraws after that "
            "handler, so they are skipped, but Rally's CSS fixes charts at 890 px wide: "
            "nothing drawn depends on the window.",
        message="Cannot set properties of null (setting 'height')",
        code="ifm.height=document.documentElement.clientHeight"),
    RallyDefect(
        why="NVD3 1.1.15's scatter, under every Lines and StackedArea chart, builds its "
            "hover layer in a timer 300 ms after each draw: a Voronoi diagram of the "
            "points. Two points at the same place (NVD3's random 1e-7 px nudge is below "
            "d3.geom.voronoi's epsilon) get one cell; the other leaves a hole in the "
            "array, NVD3 binds it to a path and reads its .data. The chart is drawn by "
            "then; only hovering that point is lost. Whether a report shows it depends "
            "on its data (a run whose timeline has two coinciding points), and a page "
            "left within 300 ms of its last draw never shows it: on an idle machine the "
            "checks used to move on that fast, on a loaded one they did not.",
        message="Cannot read properties of undefined (reading 'data')",
        code='attr("d",function(e){return e.data.length===0?"M 0 0"'),
    RallyDefect(
        why="The same hover layer, failing one step earlier: d3 3.4's "
            "d3.geom.voronoi itself, given points that nearly coincide, closes a "
            "cell with an edge that has no end and reads its .x. Seen once with two "
            "CPU hogs beside the tests (a timeline with two points that close); "
            "the chart is drawn by then, only hovering is lost.",
        message="Cannot read properties of null (reading 'x')",
        code="d3.geom.voronoi(i).map(function(e,t){return{data:h.clip(e)"),
)
# A stack frame: "    at fn (https://host/lib.js:10:12059)" or "    at file:///r.html:3:5".
_FRAME = re.compile(r"^\s*at (?:.*? \()?(?P<url>(?:https?|file)://[^\s()]+)"
                    r":(?P<line>\d+):(?P<column>\d+)\)?\s*$")


@functools.cache
def _source_lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines()


def source_at(url: str, line: int, column: int, width: int = 80) -> str:
    """The text around line:column of the script the browser ran from `url`: a CDN
    link is served Rally's copy (CDN_COPIES), a file:// URL is the file itself."""
    if url in CDN_COPIES:
        path = RALLY_LIBS / CDN_COPIES[url]
    elif url.startswith("file://"):
        path = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path))
    else:
        return ""
    try:
        text = _source_lines(path)[line - 1]
    except (OSError, IndexError):
        return ""
    return text[max(0, column - 1 - width):column - 1 + width]


def rally_defect(message: str, stack: str) -> RallyDefect | None:
    """The known Rally defect that raised this error, if its stack leads to one."""
    frames = [source_at(m["url"], int(m["line"]), int(m["column"]))
              for m in map(_FRAME.match, stack.splitlines()) if m]
    return next((d for d in RALLY_DEFECTS
                 if d.message in message and any(d.code in f for f in frames)), None)


# Installed in every page before the report's own scripts: counts the work the page
# has queued and not yet run. Timer callbacks: NVD3 draws its queued charts one per
# tick and builds each chart's hover layer 300 ms after drawing it; animation frames:
# D3's transitions. A page with none pending has finished drawing, however slowly
# the machine got there: the checks wait for that instead of for a while.
_DRAWING_TRACKER = """(() => {
  const pending = new Set();
  const track = (start, cancel) => {
    const originalStart = window[start], originalCancel = window[cancel];
    window[start] = function (callback, ...rest) {
      if (typeof callback !== 'function') return originalStart.call(window, callback, ...rest);
      const id = originalStart.call(window, function (...args) {
        pending.delete(start + id);
        return callback.apply(this, args);
      }, ...rest);
      pending.add(start + id);
      return id;
    };
    window[cancel] = function (id) {
      pending.delete(start + id);
      return originalCancel.call(window, id);
    };
  };
  track('setTimeout', 'clearTimeout');
  track('requestAnimationFrame', 'cancelAnimationFrame');
  window.__rmdStillDrawing = () => pending.size + (window.nv && nv.render.active ? 1 : 0);
})();"""
# Generous: on a machine with two CPU hogs a page of charts takes seconds.
DRAW_TIMEOUT = 60.0


# --- the browser -------------------------------------------------------------------

class ReportBrowser:
    """Debian's chromium through Playwright: headless, fresh profile, offline."""

    def __init__(self) -> None:
        self.served: list[str] = []       # CDN links answered with Rally's copies
        self.blocked: list[str] = []      # everything else that tried to leave
        self.errors: list[str] = []       # JavaScript errors, console errors
        self.rally_defects: list[RallyDefect] = []   # errors of Rally's own code

    def __enter__(self) -> ReportBrowser:
        self._stack = contextlib.ExitStack()
        profile = self._stack.enter_context(tempfile.TemporaryDirectory(prefix="rmd-chromium-"))
        playwright = self._stack.enter_context(sync_playwright())
        self.context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900}, service_workers="block")
        self._stack.callback(self.context.close)
        self.context.set_default_timeout(20_000)
        self.context.route("**/*", self._route)
        self.context.add_init_script(_DRAWING_TRACKER)
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def _page_error(self, exc: Error) -> None:
        defect = rally_defect(exc.message, exc.stack or "")
        if defect is not None:
            self.rally_defects.append(defect)
        else:
            self.errors.append(f"page error: {exc.stack or exc.message}")

    def _route(self, route: Route) -> None:
        url = route.request.url
        if url.startswith(("file://", "data:", "blob:")):
            route.continue_()
        elif url in CDN_COPIES:
            self.served.append(url)
            route.fulfill(path=RALLY_LIBS / CDN_COPIES[url],
                          content_type="text/css" if url.endswith(".css")
                          else "application/javascript")
        else:
            self.blocked.append(url)
            route.abort("blockedbyclient")

    @contextlib.contextmanager
    def page(self, html: Path) -> Iterator[Page]:
        """The report's Task overview; on leaving, no error and nothing blocked."""
        self.errors.clear()
        self.blocked.clear()
        page = self.context.new_page()
        page.on("pageerror", self._page_error)
        page.on("console", lambda msg: msg.type == "error" and self.errors.append(
            f"console error: {msg.text}"))
        try:
            page.goto(Path(html).resolve().as_uri())
            page.locator("#content-main table.linked tbody tr").first.wait_for()
            drawn(page)
            yield page
            drawn(page)     # errors are judged once the page has finished drawing
            assert self.errors == [], self.errors
            assert self.blocked == [], f"the report tried to reach {self.blocked}"
        finally:
            page.close()


def drawn(page: Page) -> None:
    """Wait until the page has nothing queued to draw (see _DRAWING_TRACKER)."""
    deadline = time.monotonic() + DRAW_TIMEOUT
    while (pending := page.evaluate("() => window.__rmdStillDrawing()")):
        assert time.monotonic() < deadline, \
            f"the page still had {pending} drawing steps queued after {DRAW_TIMEOUT} s"
        time.sleep(0.02)


def click(page: Page, locator) -> None:
    """Click, then let the page draw what the click showed before the next step:
    a view switched while NVD3 still draws the last one leaves it drawing into
    elements Angular has discarded."""
    locator.click()
    drawn(page)


def choose_iteration(page: Page, number: int) -> None:
    """Per iteration: show iteration `number` (from 0), drawn."""
    page.locator("#content-main select[ng-model=outputIteration]").select_option(str(number))
    drawn(page)
