"""A minimal headless-Chromium driver for tests: the DevTools protocol over a pipe (``--remote-debugging-pipe``).

Why not a library: the report's test needs five calls (open a page, wait for it, evaluate JavaScript, read the
console and the requests, take a screenshot); the protocol over a pipe is JSON messages separated by NUL bytes, so
the standard library is enough and CI needs only Debian's ``chromium`` package.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The first Chromium-family browser on PATH, or None."""
    for name in NAMES:
        exe = shutil.which(name)
        if exe:
            return exe
    return None


class BrowserError(RuntimeError):
    """The browser answered with an error, closed the pipe, or did not answer in time."""


class Browser:
    """One headless Chromium process; ``open`` loads a page in a new tab and records what happens on it."""

    def __init__(self, exe: str, profile: Path, size: tuple[int, int] = (1280, 1000),
                 start_timeout: float = 90, tries: int = 2) -> None:  # fmt: skip
        # a cold first start on a busy 2-core machine (fresh profile, font cache) once took over 30 s to answer
        # CI's first call; so wait for a first answer longer than for any later one, and start afresh once
        for attempt in range(tries):
            self._start(exe, profile, size)
            try:
                self.call("Browser.getVersion", timeout=start_timeout)
                return
            except BrowserError:
                self._stop(grace=0)
                if attempt == tries - 1:
                    log = (profile / "chromium.log").read_text(errors="replace")[-2000:]
                    raise BrowserError(f"{exe} did not answer within {start_timeout:.0f} s, {tries} starts; "
                                       f"its stderr ends: {log!r}") from None  # fmt: skip

    def _start(self, exe: str, profile: Path, size: tuple[int, int]) -> None:
        profile.mkdir(parents=True, exist_ok=True)
        to_browser_r, self._w = os.pipe()
        self._r, from_browser_w = os.pipe()
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run",
                "--hide-scrollbars", "--mute-audio", f"--user-data-dir={profile}",
                f"--window-size={size[0]},{size[1]}", "about:blank"]  # fmt: skip
        # the protocol wants the browser to read fd 3 and write fd 4; bash puts the pipe ends there (dash cannot
        # redirect from descriptors above 9)
        script = f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}'
        with open(profile / "chromium.log", "ab") as log:
            self.proc = subprocess.Popen(["bash", "-c", script, exe, *args], pass_fds=(to_browser_r, from_browser_w),
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)  # fmt: skip
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except (BrowserError, OSError):
            pass
        self._stop()

    def _stop(self, grace: float = 10) -> None:
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 30) -> dict[str, Any]:  # fmt: skip
        """Send one command and return its result; events that arrive meanwhile are kept in ``events``."""
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            m = self._next(deadline)
            if m.get("id") == self._id:
                if "error" in m:
                    raise BrowserError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method: str, session: str, timeout: float = 30) -> dict[str, Any]:
        """The first event ``method`` of a tab (already received or still to come)."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for m in self.events[seen:]:
                if m.get("method") == method and m.get("sessionId") == session:
                    return m.get("params", {})
            seen = len(self.events)
            self.events.append(self._next(deadline))

    def _next(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                raise BrowserError("no answer from the browser in time")
            data = os.read(self._r, 1 << 20)
            if not data:
                raise BrowserError(f"the browser closed the pipe (exit code {self.proc.poll()})")
            self._buf += data
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def open(self, url: str, timeout: float = 60, phone: tuple[int, int] | None = None) -> str:
        """Load ``url`` in a new tab and wait for its load event; returns the tab's session id. ``phone``: the
        (width, height) of a phone's screen in CSS px, emulated as a mobile device (the page's viewport tag counts)."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=session)
        if phone is not None:
            self.call("Emulation.setDeviceMetricsOverride", {"width": phone[0], "height": phone[1],
                      "deviceScaleFactor": 1, "mobile": True}, session)  # fmt: skip
        self.call("Page.navigate", {"url": url}, session)
        self.wait_event("Page.loadEventFired", session, timeout)
        return session

    def evaluate(self, session: str, expression: str, timeout: float = 30) -> Any:
        """The value of a JavaScript expression in the tab (promises awaited); a thrown exception raises."""
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True},
                      session, timeout)  # fmt: skip
        if "exceptionDetails" in r:
            raise BrowserError(f"JavaScript failed: {r['exceptionDetails']}")
        return r["result"].get("value")

    def console_errors(self, session: str) -> list[str]:
        """Console errors, uncaught exceptions and browser log errors (a resource that failed to load) of a tab."""
        out = []
        for m in self.events:
            if m.get("sessionId") != session:
                continue
            p = m.get("params", {})
            if m.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(" ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
            elif m.get("method") == "Runtime.exceptionThrown":
                out.append(str(p.get("exceptionDetails", {}).get("text")))
            elif m.get("method") == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(f"{p['entry'].get('text')} ({p['entry'].get('url')})")
        return out

    def requests(self, session: str) -> list[str]:
        """Every URL the tab asked for (the page itself, images, media)."""
        return [m["params"]["request"]["url"] for m in self.events
                if m.get("sessionId") == session and m.get("method") == "Network.requestWillBeSent"]  # fmt: skip

    def screenshot(self, session: str, path: Path) -> None:
        """The whole page (beyond the window) as a PNG."""
        size = self.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        r = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip},
                      session, timeout=60)  # fmt: skip
        path.write_bytes(base64.b64decode(r["data"]))
