"""Renders a page in headless Chromium, as a person's browser would, for tests.

    from harness import render
    page = render("http://127.0.0.1:8080/docs")
    page.dom                 # the DOM after the page's scripts ran, as HTML
    page.console             # what the page logged: errors, CSP refusals, ...
    page.blocked_by_csp()    # the console lines about Content-Security-Policy refusals

Only the standard library and Debian's `chromium` package (or any Chromium or Chrome binary
named by $CHROMIUM). Each call starts a fresh browser with an empty profile, lets the page
run for `budget_ms` of virtual time (network waits do not count against it) and dumps the
DOM. Used by `tests/browser/test_*.py`; `tests/browser/run` starts the API for them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")
CONSOLE_LINE = re.compile(r':CONSOLE(?:\(\d+\))?[:\]]\s*(.*)$')


def chromium() -> str:
    """The browser binary: $CHROMIUM, else the first known name on PATH."""
    named = os.environ.get("CHROMIUM")
    if named:
        return named
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(
        "no Chromium found: install Debian's `chromium` package "
        "(apt-get install chromium) or set CHROMIUM to a Chromium or Chrome binary"
    )


@dataclass
class Page:
    url: str
    dom: str
    console: list[str] = field(default_factory=list)

    def blocked_by_csp(self) -> list[str]:
        return [line for line in self.console if "Content Security Policy" in line]

    def elements(self, tag: str | None = None, css_class: str | None = None) -> list[dict]:
        """Attributes (plus a `text` key) of the elements with that tag and/or class."""
        finder = _Finder(tag, css_class)
        finder.feed(self.dom)
        return finder.found


def render(url: str, budget_ms: int = 15000, timeout_s: int = 90,
           window: str = "1280,1024", screenshot: str | None = None) -> Page:
    """Loads `url` and returns the rendered DOM with the console output."""
    with tempfile.TemporaryDirectory(prefix="cart-browser-") as profile:
        args = [
            chromium(),
            "--headless",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            f"--user-data-dir={profile}",
            f"--window-size={window}",
            "--enable-logging=stderr",
            "--v=0",
            f"--virtual-time-budget={budget_ms}",
        ]
        if os.geteuid() == 0:
            # Chromium's sandbox refuses to run as root (CI runs as root).
            args.append("--no-sandbox")
        if screenshot:
            args.append(f"--screenshot={screenshot}")
        else:
            args.append("--dump-dom")
        done = subprocess.run(args + [url], capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited with {done.returncode}: {done.stderr[-2000:]}")
    console = [m.group(1) for m in map(CONSOLE_LINE.search, done.stderr.splitlines()) if m]
    return Page(url=url, dom=done.stdout, console=console)


class _Finder(HTMLParser):
    def __init__(self, tag: str | None, css_class: str | None):
        super().__init__()
        self.tag, self.css_class = tag, css_class
        self.found: list[dict] = []
        self._open: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        attributes = {name: value or "" for name, value in attrs}
        classes = attributes.get("class", "").split()
        if (self.tag is None or tag == self.tag) and (
                self.css_class is None or self.css_class in classes):
            element = dict(attributes, text="")
            self.found.append(element)
            self._open.append((tag, element))

    def handle_endtag(self, tag):
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index][0] == tag:
                del self._open[index]
                break

    def handle_data(self, data):
        for _, element in self._open:
            element["text"] += data
