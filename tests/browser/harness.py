"""Headless Chromium for tests, used as a person's browser would be.

    from harness import render
    page = render("http://127.0.0.1:8080/docs")
    page.dom                 # the DOM after the page's scripts ran, as HTML
    page.console             # what the page logged: errors, CSP refusals, ...
    page.blocked_by_csp()    # the console lines about Content-Security-Policy refusals

`render` starts a fresh browser with an empty profile for one page, lets it run for
`budget_ms` of virtual time (network waits do not count against it) and dumps the DOM.

For a visit of several pages (signing in, filling forms, clicking buttons, with the cookies
a browser keeps), `Browser` drives one Chromium over the DevTools protocol on a pipe
(`--remote-debugging-pipe`, so no port and no WebSocket library):

    with Browser() as browser:
        tab = browser.open("http://127.0.0.1:9191/board")
        tab.status                       # the HTTP status of the document shown
        tab.type_into("#token", "...")   # focuses the field and types, as a keyboard would
        tab.click("button[type=submit]") # a real mouse click at the element; waits for the page
        tab.text("h1"), tab.dom, tab.console, tab.blocked_by_csp(), tab.cookies()
        tab.screenshot("board.png")

Only the standard library and Debian's `chromium` package (or any Chromium or Chrome binary
named by $CHROMIUM). Used by `tests/browser/test_*.py`; `tests/browser/run` starts the API
and a worker for them.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
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
        args = _browser_args(profile, window) + [
            "--enable-logging=stderr",
            "--v=0",
            f"--virtual-time-budget={budget_ms}",
        ]
        if screenshot:
            args.append(f"--screenshot={screenshot}")
        else:
            args.append("--dump-dom")
        done = subprocess.run(args + [url], capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited with {done.returncode}: {done.stderr[-2000:]}")
    console = [m.group(1) for m in map(CONSOLE_LINE.search, done.stderr.splitlines()) if m]
    return Page(url=url, dom=done.stdout, console=console)


def _browser_args(profile: str, window: str) -> list[str]:
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
    ]
    if os.geteuid() == 0:
        # Chromium's sandbox refuses to run as root (CI runs as root).
        args.append("--no-sandbox")
    return args


class BrowserError(RuntimeError):
    pass


class Browser:
    """One headless Chromium with an empty profile, driven over the DevTools protocol."""

    def __init__(self, window: str = "1280,1024", timeout_s: float = 30):
        self.timeout_s = timeout_s
        self._profile = tempfile.TemporaryDirectory(prefix="cart-browser-")
        commands_read, self._commands = os.pipe()
        self._answers, answers_write = os.pipe()

        def on_fds_3_and_4():
            # The pipe protocol: Chromium reads commands on fd 3 and writes answers on fd 4.
            # Copied above 10 first, so neither lands on the other's target.
            read_end = fcntl.fcntl(commands_read, fcntl.F_DUPFD, 10)
            write_end = fcntl.fcntl(answers_write, fcntl.F_DUPFD, 10)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        args = _browser_args(self._profile.name, window) + ["--remote-debugging-pipe", "about:blank"]
        self._process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(3, 4),
            preexec_fn=on_fds_3_and_4,
        )
        os.close(commands_read)
        os.close(answers_write)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict] = []

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *_):
        self.close()

    def close(self):
        try:
            self.send("Browser.close")
        except (BrowserError, OSError):
            pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        for fd in (self._commands, self._answers):
            try:
                os.close(fd)
            except OSError:
                pass
        self._profile.cleanup()

    def open(self, url: str) -> "Tab":
        """A new tab showing `url`."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        tab = Tab(self, session)
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=session)
        tab.goto(url)
        return tab

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Sends one command and waits for its answer; events meanwhile are kept."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout_s
        while True:
            answer = self._read(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise BrowserError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            if "method" in answer:
                self._events.append(answer)

    def wait_for_event(self, method: str, session: str, since: int, timeout_s: float | None = None) -> dict:
        """The first event `method` of `session` at or after index `since` of the events."""
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            for event in self._events[since:]:
                if event["method"] == method and event.get("sessionId") == session:
                    return event
            since = len(self._events)
            self._events.append(self._read(deadline))

    def events_mark(self) -> int:
        return len(self._events)

    def events(self, session: str) -> list[dict]:
        return [e for e in self._events if e.get("sessionId") == session]

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("Chromium did not answer in time")
            ready, _, _ = select.select([self._answers], [], [], left)
            if ready:
                chunk = os.read(self._answers, 1 << 20)
                if not chunk:
                    raise BrowserError("Chromium closed the DevTools pipe")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)


class Tab:
    """One page of a `Browser`: where it is, what it shows, and a person's hands on it."""

    def __init__(self, browser: Browser, session: str):
        self.browser = browser
        self.session = session
        self.status: int | None = None
        self.url = "about:blank"

    def _send(self, method: str, params: dict | None = None) -> dict:
        return self.browser.send(method, params, session=self.session)

    def _until_loaded(self, mark: int):
        self.browser.wait_for_event("Page.loadEventFired", self.session, mark)
        documents = [
            e["params"]["response"]
            for e in self.browser.events(self.session)[0:]
            if e["method"] == "Network.responseReceived" and e["params"].get("type") == "Document"
        ]
        if documents:
            self.status = documents[-1]["status"]
            self.url = documents[-1]["url"]

    def goto(self, url: str) -> "Tab":
        mark = self.browser.events_mark()
        self._send("Page.navigate", {"url": url})
        self._until_loaded(mark)
        return self

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (DevTools, not the page's own code)."""
        result = self._send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def exists(self, selector: str) -> bool:
        return bool(self.evaluate(f"document.querySelector({json.dumps(selector)}) !== null"))

    def text(self, selector: str = "body") -> str:
        value = self.evaluate(f"(document.querySelector({json.dumps(selector)}) || {{}}).innerText || ''")
        return value or ""

    def texts(self, selector: str) -> list[str]:
        return self.evaluate(
            f"Array.from(document.querySelectorAll({json.dumps(selector)}), e => e.innerText)"
        ) or []

    def attribute(self, selector: str, name: str) -> str | None:
        return self.evaluate(
            f"(e => e && e.getAttribute({json.dumps(name)}))(document.querySelector({json.dumps(selector)}))"
        )

    @property
    def dom(self) -> str:
        return self.evaluate("document.documentElement.outerHTML") or ""

    def type_into(self, selector: str, text: str):
        """Focuses the field and types `text` as keyboard input."""
        if not self.evaluate(
            f"(e => {{ if (!e) return false; e.scrollIntoView(); e.focus(); return true; }})"
            f"(document.querySelector({json.dumps(selector)}))"
        ):
            raise BrowserError(f"no field {selector}")
        self._send("Input.insertText", {"text": text})

    def click(self, selector: str, wait_for_page: bool = True):
        """A left click at the middle of the element, as a mouse would; by default waits for
        the page it leads to."""
        box = self.evaluate(
            f"(e => {{ if (!e) return null; e.scrollIntoView({{block: 'center'}}); "
            f"const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})"
            f"(document.querySelector({json.dumps(selector)}))"
        )
        if not box:
            raise BrowserError(f"nothing to click at {selector}")
        x, y = box
        mark = self.browser.events_mark()
        self._send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})
        for kind in ("mousePressed", "mouseReleased"):
            self._send("Input.dispatchMouseEvent",
                       {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})
        if wait_for_page:
            self._until_loaded(mark)

    def cookies(self) -> list[dict]:
        return self._send("Network.getCookies").get("cookies", [])

    @property
    def console(self) -> list[str]:
        lines = []
        for event in self.browser.events(self.session):
            if event["method"] == "Log.entryAdded":
                lines.append(event["params"]["entry"].get("text", ""))
            elif event["method"] == "Runtime.consoleAPICalled":
                lines.append(" ".join(str(a.get("value", "")) for a in event["params"].get("args", [])))
            elif event["method"] == "Runtime.exceptionThrown":
                lines.append(event["params"]["exceptionDetails"].get("text", "exception"))
        return lines

    def blocked_by_csp(self) -> list[str]:
        return [line for line in self.console if "Content Security Policy" in line]

    def screenshot(self, path: str):
        data = self._send("Page.captureScreenshot", {"format": "png"})["data"]
        with open(path, "wb") as out:
            out.write(base64.b64decode(data))


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
