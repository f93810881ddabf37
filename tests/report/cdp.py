"""A tiny Chrome DevTools Protocol client over ``--remote-debugging-pipe`` (standard library only).

Chromium reads commands from fd 3 and writes replies and events to fd 4, NUL-terminated JSON; no websocket,
no driver binary, no browser download. Used by the ``browser`` tests to open a report the way a reader does.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The Chromium executable (``$IMGX_CHROMIUM`` first), or None."""
    env = os.environ.get("IMGX_CHROMIUM")
    if env and Path(env).exists():
        return env
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class CDPError(RuntimeError):
    """A protocol error reply, or the browser went away."""


@dataclass
class PageReport:
    """What loading a page showed: console errors, exceptions, failed or network requests, images."""

    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # every non-data: URL the page asked for
    images: list[dict[str, Any]] = field(default_factory=list)


class Browser:
    """Headless Chromium driven over the DevTools pipe; use as a context manager."""

    def __init__(self, executable: str | None = None, width: int = 1280, height: int = 900, timeout: float = 60.0):
        self.executable = executable or find_chromium()
        if not self.executable:
            raise FileNotFoundError("no chromium executable (apt-get install chromium, or set IMGX_CHROMIUM)")
        self.width, self.height, self.timeout = width, height, timeout
        self._id = 0
        self._buf = b""
        self.events: list[dict[str, Any]] = []

    def __enter__(self) -> Browser:
        self._profile = tempfile.mkdtemp(prefix="imgx-chromium-")
        cmd_r, self._cmd_w = os.pipe()
        self._res_r, res_w = os.pipe()
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-dev-shm-usage", "--disable-sync", "--mute-audio",
                "--hide-scrollbars", f"--user-data-dir={self._profile}", f"--window-size={self.width},{self.height}",
                "about:blank"]
        # bash (not dash: it refuses fd numbers above 9) moves our pipe ends to fds 3 and 4, where Chromium reads
        # and writes the protocol.
        self._log = open(Path(self._profile) / "chromium.log", "wb")  # noqa: SIM115 - closed in __exit__
        self.proc = subprocess.Popen(["bash", "-c", f'exec "$0" "$@" 3<&{cmd_r} 4>&{res_w}', self.executable, *args],
                                     pass_fds=(cmd_r, res_w), stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        os.close(cmd_r)
        os.close(res_w)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except Exception:  # noqa: BLE001 - closing is best effort; the process is killed below
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._cmd_w, self._res_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self._log.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def log_tail(self, lines: int = 15) -> str:
        """The last lines Chromium wrote to stdout/stderr (for error messages)."""
        try:
            text = (Path(self._profile) / "chromium.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # ----------------------------------------------------------------------------------- protocol
    def _read_message(self, deadline: float) -> dict[str, Any] | None:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self._res_r], [], [], left)
            if not ready:
                return None
            chunk = os.read(self._res_r, 1 << 20)
            if not chunk:
                raise CDPError(f"chromium closed the DevTools pipe (did it crash?); its log:\n{self.log_tail()}")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float | None = None) -> dict[str, Any]:
        """Send a command and wait for its reply, keeping the events that arrive meanwhile."""
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            reply = self._read_message(deadline)
            if reply is None:
                raise CDPError(f"{method}: no reply within {timeout or self.timeout} s")
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise CDPError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float | None = None) -> dict[str, Any]:
        """Wait for an event (already received or still to come)."""
        for i, ev in enumerate(self.events):
            if ev.get("method") == method:
                return self.events.pop(i)
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            ev = self._read_message(deadline)
            if ev is None:
                raise CDPError(f"no {method} event within {timeout or self.timeout} s")
            if ev.get("method") == method:
                return ev
            self.events.append(ev)

    # --------------------------------------------------------------------------------------- pages
    def open(self, url: str) -> str:
        """Open ``url`` in a new tab, with console, log and network events on; returns the session id."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=session)
        self.call("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                                                         "deviceScaleFactor": 1, "mobile": False}, session=session)
        self.events.clear()
        self.call("Page.navigate", {"url": url}, session=session)
        self.wait_for("Page.loadEventFired")
        return session

    def evaluate(self, session: str, expression: str) -> Any:
        """Evaluate JavaScript in the page and return its (JSON) value; exceptions raise."""
        res = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True},
                        session=session)
        if "exceptionDetails" in res:
            raise CDPError(f"page exception: {res['exceptionDetails'].get('exception', {}).get('description')}")
        return res.get("result", {}).get("value")

    def screenshot(self, session: str, path: Path, max_height: int = 12000) -> Path:
        """A PNG of the whole page (up to ``max_height`` CSS pixels tall)."""
        metrics = self.call("Page.getLayoutMetrics", session=session)
        size = metrics.get("cssContentSize") or metrics.get("contentSize") or {}
        height = int(min(max_height, max(self.height, size.get("height", self.height))))
        self.call("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": height,
                                                         "deviceScaleFactor": 1, "mobile": False}, session=session)
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                         session=session)["data"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def report(self, session: str) -> PageReport:
        """Errors and requests seen so far, and every image's load state."""
        self.call("Runtime.evaluate", {"expression": "1"}, session=session)  # drain queued events
        rep = PageReport()
        for ev in self.events:
            method, p = ev.get("method"), ev.get("params", {})
            if method == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                rep.errors.append(f"exception: {d.get('exception', {}).get('description') or d.get('text')}")
            elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                rep.errors.append("console: " + " ".join(str(a.get("value", a.get("description")))
                                                         for a in p.get("args", [])))
            elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                rep.errors.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
            elif method == "Network.loadingFailed":
                rep.errors.append(f"network: {p.get('errorText')}")
            elif method == "Network.requestWillBeSent":
                url = p.get("request", {}).get("url", "")
                if not url.startswith("data:"):
                    rep.requests.append(url)
        rep.images = self.evaluate(session, "Array.from(document.images).map(i => ({src: i.src.slice(0, 30), "
                                            "complete: i.complete, width: i.naturalWidth, alt: i.alt}))")
        return rep
