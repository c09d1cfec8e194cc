"""A minimal W3C WebDriver client (standard library only) for Debian's chromium + chromedriver.

Just what the UI check needs: open a page, run JS, read the console, take a screenshot. Speaking the protocol
directly keeps Selenium and its async stack out of the test venv, and nothing is ever downloaded (no driver manager).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

# Loopback only: never route through an http_proxy from the environment.
LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))

CHROMIUM_ARGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
    "--no-proxy-server",
)  # fmt: skip


def browser_tools() -> tuple[str | None, str | None]:
    """Paths of chromium and chromedriver, or None where missing."""
    return shutil.which("chromium"), shutil.which("chromedriver")


class Browser:
    """One headless Chromium session with a fresh profile; use as a context manager."""

    def __init__(self, port: int, timeout: float = 60.0, window: tuple[int, int] = (1400, 900),
                 extra_args: tuple[str, ...] = ()) -> None:
        chromium, driver = browser_tools()
        if not (chromium and driver):
            raise FileNotFoundError("chromium and chromedriver are required (Debian: chromium chromium-driver)")
        self.profile = Path(tempfile.mkdtemp(prefix="joyvasa-chromium-"))
        self.driver_url = f"http://127.0.0.1:{port}"
        self.driver = subprocess.Popen(
            [driver, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        end = time.monotonic() + timeout
        while True:
            try:
                self._call("GET", "/status")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > end or self.driver.poll() is not None:
                    self.close()
                    raise
                time.sleep(0.1)
        options = {"binary": chromium, "args": [*CHROMIUM_ARGS, f"--window-size={window[0]},{window[1]}",
                                        f"--user-data-dir={self.profile}", *extra_args]}
        caps = {"browserName": "chrome", "goog:chromeOptions": options, "goog:loggingPrefs": {"browser": "ALL"}}
        try:
            self.session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})["sessionId"]
        except Exception:
            self.close()
            raise
        self._call("POST", f"/session/{self.session}/timeouts", {"script": int(timeout * 1000)})

    def _call(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        req = urllib.request.Request(self.driver_url + path, data=data, method=method, headers=headers)
        try:
            with LOOPBACK.open(req, timeout=120) as resp:
                return json.loads(resp.read())["value"]
        except urllib.error.HTTPError as err:
            value = json.loads(err.read() or b"{}").get("value", {})
            raise RuntimeError(f"WebDriver {path}: {value.get('error')}: {value.get('message', '')[:2000]}") from None

    def _session(self, method: str, path: str, body: dict | None = None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def open(self, url: str) -> None:
        self._session("POST", "/url", {"url": url})

    def click(self, css: str) -> None:
        """Click an element as a user does (a trusted event: it may start audio or open the microphone)."""
        found = self._session("POST", "/element", {"using": "css selector", "value": css})
        self._session("POST", f"/element/{next(iter(found.values()))}/click", {})

    def choose_file(self, css: str, path: Path) -> None:
        """Pick ``path`` in an ``<input type=file>`` as a user does in the file dialog (its change event fires)."""
        found = self._session("POST", "/element", {"using": "css selector", "value": css})
        self._session("POST", f"/element/{next(iter(found.values()))}/value", {"text": str(path)})

    def js(self, script: str, *args):
        """Run a function body synchronously in the page (``return`` a JSON-able value)."""
        return self._session("POST", "/execute/sync", {"script": script, "args": list(args)})

    def js_async(self, script: str, *args):
        """Run an async function body; its return value (a promise is awaited) comes back."""
        wrapped = f"const done = arguments[arguments.length - 1]; (async () => {{ {script} }})().then(done, " \
                  "e => done({__error__: String(e && e.stack || e)}));"
        value = self._session("POST", "/execute/async", {"script": wrapped, "args": list(args)})
        if isinstance(value, dict) and "__error__" in value:
            raise RuntimeError("page script failed: " + value["__error__"])
        return value

    def wait_for(self, script: str, what: str, timeout: float = 60.0):
        """Poll a JS expression body until it returns something truthy; fails with the console log."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            value = self.js(script)
            if value:
                return value
            time.sleep(0.25)
        raise TimeoutError(f"timed out waiting for {what}; console:\n" + "\n".join(
            f"{m['level']}: {m['message'][:300]}" for m in self.console()))  # fmt: skip

    def console(self) -> list[dict]:
        """Browser console messages since the last call (chromedriver's log endpoint)."""
        return self._session("POST", "/se/log", {"type": "browser"})

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self._session("GET", "/screenshot")))

    def close(self) -> None:
        try:
            if getattr(self, "session", None):
                self._call("DELETE", f"/session/{self.session}")
        except (urllib.error.URLError, RuntimeError, ConnectionError):
            pass
        if self.driver.poll() is None:
            self.driver.terminate()
            try:
                self.driver.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.driver.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def fake_microphone_args(wav: Path) -> tuple[str, ...]:
    """Chromium flags that answer getUserMedia with ``wav`` played once as the microphone, without a prompt."""
    return ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}%noloop", "--autoplay-policy=no-user-gesture-required")


def require_browser(comfyui) -> None:
    """Skip when the UI check is switched off; fail (never skip) when its tools are missing."""
    if os.environ.get("JOYVASA_COMFYUI_BROWSER") == "0":
        pytest.skip("JOYVASA_COMFYUI_BROWSER=0: headless-Chromium UI check disabled")
    missing = [name for name, path in zip(("chromium", "chromedriver"), browser_tools(), strict=True) if not path]
    if not comfyui.frontend:
        missing.append("comfyui-frontend-package")
    if missing:
        pytest.fail(f"UI check needs {missing}: run `bash scripts/setup_comfyui.sh` (or JOYVASA_COMFYUI_BROWSER=0)")
