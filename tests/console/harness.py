"""A `veltrix serve` for the console's browser tests, the `veltrix` CLI
beside it, and a headless Chromium that reports what went wrong in a page.

The broker listens on 127.0.0.1 port 0 (both listeners) and the addresses
it bound are read from its log; it is stopped by the process id it was
started with. Chromium and its driver are Debian's, at fixed paths: nothing
is downloaded.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

# How long a debug broker may take to bind its listeners, and to exit after
# SIGTERM; the margins are for CI machines under load.
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0
# How long a page may take to show what it is waited for.
PAGE_TIMEOUT_S = 20.0
CLI_TIMEOUT_S = 60.0

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_HTTP_READY = re.compile(r"http listener ready addr=(127\.0\.0\.1:\d+)")
_KAFKA_READY = re.compile(r"kafka listener ready addr=(127\.0\.0\.1:\d+)")


class BrokerError(Exception):
    """The broker did not start, died, or did not stop cleanly."""


def veltrix_binary() -> Path:
    """$VELTRIX_BIN (scripts/test-console sets it), else target/debug/veltrix."""
    explicit = os.environ.get("VELTRIX_BIN")
    if explicit:
        return Path(explicit)
    target = os.environ.get("CARGO_TARGET_DIR")
    return ((REPO / target) if target else REPO / "target") / "debug" / "veltrix"


def wait_until(what: str, predicate, timeout_s: float, interval_s: float = 0.1):
    """Calls `predicate` until it returns something true, at most `timeout_s`;
    returns that value, or raises naming `what`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout_s} s")
        time.sleep(interval_s)


def _die_with_parent() -> None:
    """The broker gets SIGKILL if the test process dies without its teardown."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


class Broker:
    """One `veltrix serve` process on ephemeral ports, with its own data."""

    def __init__(self, workdir: Path, config: Path | None = None):
        self.binary = veltrix_binary()
        self.data_dir = workdir / "data"
        self.log_path = workdir / "veltrix.stderr.log"
        self.config = config
        self.proc: subprocess.Popen | None = None
        self.bootstrap = ""
        self.http = ""

    def log_text(self) -> str:
        try:
            return _ANSI.sub("", self.log_path.read_text(errors="replace"))
        except FileNotFoundError:
            return ""

    def start(self) -> None:
        """Starts the broker; returns once the log names both bound addresses."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [str(self.binary), "serve", "--data-dir", str(self.data_dir)]
        args += ["--kafka-listener", "127.0.0.1:0", "--http-listener", "127.0.0.1:0"]
        if self.config is not None:
            args += ["--config", str(self.config)]
        env = dict(os.environ, NO_COLOR="1")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, preexec_fn=_die_with_parent
            )

        def bound():
            if self.proc.poll() is not None:
                raise BrokerError(f"veltrix exited with {self.proc.returncode}:\n{self.log_text()}")
            text = self.log_text()
            http, kafka = _HTTP_READY.search(text), _KAFKA_READY.search(text)
            return (http.group(1), kafka.group(1)) if http and kafka else None

        self.http, self.bootstrap = wait_until("the broker's listeners", bound, READY_TIMEOUT_S, 0.05)

    def stop(self) -> list[str]:
        """SIGTERM to the process started above (SIGKILL if it hangs); the
        problems seen: an early exit, a failed exit, a panic."""
        if self.proc is None:
            return []
        problems = []
        if self.proc.poll() is not None:
            problems.append(f"veltrix exited during the tests with status {self.proc.returncode}")
        else:
            self.proc.send_signal(signal.SIGTERM)
            try:
                if self.proc.wait(timeout=STOP_TIMEOUT_S) != 0:
                    problems.append(f"veltrix exited with status {self.proc.returncode} after SIGTERM")
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
                problems.append(f"veltrix did not exit within {STOP_TIMEOUT_S} s of SIGTERM")
        if "panicked at" in self.log_text():
            problems.append("veltrix logged a panic")
        return problems

    def url(self, path: str) -> str:
        return f"http://{self.http}{path}"

    def api(self, path: str):
        """GET a path of the broker's HTTP API as JSON; None on a 404."""
        try:
            with urllib.request.urlopen(self.url(path), timeout=10) as answer:
                return json.load(answer)
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise

    def cli(self, *args: str, stdin: str | None = None) -> str:
        """Runs `veltrix ARGS --bootstrap <this broker>`; its stdout."""
        command = [str(self.binary), *args, "--bootstrap", self.bootstrap]
        done = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
        if done.returncode != 0:
            raise BrokerError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
        return done.stdout


def chromium() -> webdriver.Chrome:
    """Headless Debian Chromium, keeping the console's log and the network
    events so that errors and failed requests can be asked for."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [
        "--headless=new",
        # Root (as in CI) needs it; the pages served are the broker's own.
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
        "--no-first-run",
        "--disable-extensions",
        "--disable-sync",
        "--disable-background-networking",
        "--disable-component-update",
        "--force-color-profile=srgb",
        "--lang=en-US",
    ]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


class Page:
    """The browser on one broker: open a page, wait, report its problems."""

    def __init__(self, driver: webdriver.Chrome, broker: Broker):
        self.driver = driver
        self.broker = broker

    def open(self, path: str) -> None:
        """Leaves the current page, forgets its logs, and opens `path`."""
        self.driver.get("about:blank")
        self.problems()
        self.driver.get(self.broker.url(path))

    def wait(self, what: str, condition, timeout_s: float = PAGE_TIMEOUT_S):
        """`condition(driver)` until it is true, at most `timeout_s`. Polled
        pages redraw their tables: an element gone stale is asked again."""
        wait = WebDriverWait(
            self.driver, timeout_s, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
        )
        return wait.until(condition, message=what)

    def wait_rendered(self) -> None:
        """Until nothing in the page says it is loading."""
        self.wait(
            "the page rendered",
            lambda d: d.execute_script(
                "const m = document.querySelector('main');"
                "return m !== null && !m.textContent.includes('Loading…') && !m.textContent.includes('Searching…');"
            ),
        )

    def problems(self) -> list[str]:
        """Console errors, failed requests and the page's banner since the
        last call (reading the browser's logs empties them)."""
        found = [f"console: {e['message']}" for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]
        for entry in self.driver.get_log("performance"):
            event = json.loads(entry["message"])["message"]
            params = event.get("params", {})
            if event.get("method") == "Network.responseReceived":
                response = params.get("response", {})
                if response.get("status", 0) >= 400:
                    found.append(f"request: {response.get('status')} {response.get('url')}")
            elif event.get("method") == "Network.loadingFailed" and not params.get("canceled"):
                found.append(f"request failed: {params.get('errorText')} ({params.get('requestId')})")
        if self.driver.current_url.startswith("http"):
            banner = self.driver.execute_script(
                "const b = document.getElementById('problems'); return b && !b.hidden ? b.textContent : '';"
            )
            if banner:
                found.append(f"banner: {banner}")
        return found

    def screenshot(self, name: str) -> None:
        """Saves the whole page as NAME.png under $VELTRIX_SCREENSHOTS, if set."""
        where = os.environ.get("VELTRIX_SCREENSHOTS")
        if not where:
            return
        directory = Path(where) if Path(where).is_absolute() else REPO / where
        directory.mkdir(parents=True, exist_ok=True)
        self.driver.execute_script("window.scrollTo(0, 0);")
        height = self.driver.execute_script("return document.documentElement.scrollHeight;")
        self.driver.set_window_size(1280, max(700, min(int(height) + 120, 1600)))
        try:
            self.driver.save_screenshot(str(directory / f"{name}.png"))
        finally:
            self.driver.set_window_size(1280, 900)

    def screenshot_of(self, name: str, css: str) -> None:
        """Saves one element (a section of a long page) as NAME.png under
        $VELTRIX_SCREENSHOTS, if set."""
        where = os.environ.get("VELTRIX_SCREENSHOTS")
        if not where:
            return
        directory = Path(where) if Path(where).is_absolute() else REPO / where
        directory.mkdir(parents=True, exist_ok=True)
        element = self.driver.find_element("css selector", css)
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", element)
        element.screenshot(str(directory / f"{name}.png"))
