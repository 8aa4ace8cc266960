"""The outputs a job asked for, read from the page its site left (after ``fetch``).

In this order: ``evaluate`` (``Runtime.evaluate`` with ``returnByValue`` and
``awaitPromise``; a script that does not compile as an expression runs as the body of an
async function, so ``return ...`` works), ``capture`` (the job's responses whose URL
matches a pattern, from the performance log's ``Network.responseReceived`` and
``Network.getResponseBody``), ``cookies_out`` (``Network.getAllCookies``), ``screenshot``
(``Page.captureScreenshot``; full page: clipped to the content size, beyond the
viewport) and ``pdf`` (``Page.printToPDF``). Screenshot and PDF bytes stay base64 as
DevTools sends them.

Result keys (only those asked for): ``value``, ``responses`` + ``responses_dropped``,
``cookies``, ``screenshot`` ``{"type", "base64"}``, ``pdf`` ``{"base64"}``.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import logging
import time

from selenium.common.exceptions import WebDriverException

from browserd_client.errors import FrameTooLarge, ScriptError
from browserd_client.protocol import MAX_REPLY_BYTES

from .apply import cdp
from .validate import PAPER

logger = logging.getLogger(__name__)

#: At most this many captured responses per job; more are counted in ``responses_dropped``.
MAX_RESPONSES = 100
#: Bytes of a reply kept for everything but the outputs (the page source has its own check).
REPLY_MARGIN = 1 << 16
#: Seconds before the job's deadline a running ``evaluate`` is stopped (a script error, and
#: the browser serves on; at the deadline it would be killed).
EVALUATE_MARGIN = 1.0
#: A full-page screenshot of more device pixels than this is ``too_large`` before it is
#: taken: Chromium would spend the job's whole time on it (a 10000 x 100000 px page at
#: scale 10) and the browser would be killed at the deadline. 64 Mpx, e.g. 1280 x 50000.
MAX_SCREENSHOT_PIXELS = 64_000_000


def collect(driver, job) -> dict:
    """Every output ``job.options`` asks for, as result keys. Raises ``ScriptError``
    (evaluate threw), ``FrameTooLarge`` (the outputs do not fit in a reply)."""
    options, out = job.options, {}
    if options.evaluate is not None:
        out["value"] = evaluate(driver, options.evaluate, max(0.05, job.remaining() - EVALUATE_MARGIN))
        job.check()
    if options.capture:
        out["responses"], out["responses_dropped"] = capture(driver, job)
        job.check()
    if options.cookies_out:
        out["cookies"] = cookies(driver)
    if options.screenshot:
        out["screenshot"] = screenshot(driver, options.screenshot)
        job.check()
    if options.pdf:
        out["pdf"] = pdf(driver, options.pdf)
    size = sum(len(v["base64"]) for k, v in out.items() if k in ("screenshot", "pdf"))
    size += sum(len(r["body"]) for r in out.get("responses", ()))
    if out.get("value") is not None:
        size += len(json.dumps(out["value"]))
    if size > MAX_REPLY_BYTES - REPLY_MARGIN - len(job.url):
        raise FrameTooLarge(f"{job.url}: the outputs (screenshot, PDF, value, captured bodies) take {size} bytes, past "
                            f"the reply limit of {MAX_REPLY_BYTES} bytes (option 'capture_max_bytes' "
                            f"or a smaller page)")
    return out


#: What the page does with the script's result (``this``): await it, but no longer than
#: ``ms`` (a promise that never settles is a script error, and the browser serves on), and
#: serialize it there, as JSON of at most ``limit`` characters: a value JSON cannot hold
#: (cyclic, too deep, a BigInt) throws in the page, and a huge one never leaves it.
_SETTLE_AND_SERIALIZE = """async function (ms, limit) {
  let timer;
  const late = new Promise((_, reject) => { timer = setTimeout(
      () => reject(new Error(`the script's promise did not settle within ${ms} ms (the job's deadline)`)), ms); });
  let value;
  try { value = await Promise.race([this, late]); } finally { clearTimeout(timer); }
  const text = JSON.stringify(value);
  if (text !== undefined && text.length > limit) return {tooLarge: text.length};
  return {json: text === undefined ? "null" : text};
}"""


def evaluate(driver, script: str, limit: float = 30.0, max_chars: int = MAX_REPLY_BYTES):
    """The JSON value of ``script`` (an expression, or a function body with ``return``),
    promises awaited; its run (and the wait for its promise) is stopped after ``limit``
    seconds. Raises ``ScriptError`` with the exception's text (also for a value JSON
    cannot hold, and a promise still pending at ``limit``), ``FrameTooLarge`` for a value
    whose JSON is over ``max_chars`` characters (it never leaves the page)."""
    compiled = cdp(driver, "Runtime.compileScript", {"expression": script, "sourceURL": "",
                                                     "persistScript": False})
    if compiled.get("exceptionDetails"):  # `return ...`: a function body
        script = f"(async () => {{\n{script}\n}})()"
    t0 = time.monotonic()
    ms = max(1, int(limit * 1000))
    try:
        reply = cdp(driver, "Runtime.evaluate", {"expression": script, "userGesture": True, "timeout": ms,
                                                 "objectGroup": _GROUP})
        _raise_script_error(reply)
        result = reply.get("result") or {}
        if "objectId" not in result:  # a primitive: here by value (NaN, Infinity, -0: null)
            return result.get("value")
        remaining = max(1, ms - int((time.monotonic() - t0) * 1000))
        reply = cdp(driver, "Runtime.callFunctionOn", {
            "functionDeclaration": _SETTLE_AND_SERIALIZE, "objectId": result["objectId"],
            "arguments": [{"value": remaining}, {"value": max_chars}], "returnByValue": True,
            "awaitPromise": True, "userGesture": True, "timeout": remaining})
    except WebDriverException:
        if time.monotonic() - t0 < limit:
            raise
        # Chromium answers a terminated script with a bare "Internal error".
        raise ScriptError(f"the script still ran after {limit:.1f}s and was stopped "
                          f"(the job's deadline)") from None
    finally:
        _release(driver)
    _raise_script_error(reply)
    answer = (reply.get("result") or {}).get("value") or {}
    if "tooLarge" in answer:
        raise FrameTooLarge(f"option 'evaluate': the script's value is {answer['tooLarge']} characters of JSON, "
                            f"past the reply limit of {max_chars}")
    return json.loads(answer["json"])


_GROUP = "browserd-evaluate"


def _raise_script_error(reply: dict) -> None:
    details = reply.get("exceptionDetails")
    if details:
        exception = details.get("exception") or {}
        text = exception.get("description") or exception.get("value") or details.get("text") or "script error"
        raise ScriptError(str(text).strip().splitlines()[0][:2000])


def _release(driver) -> None:
    """Drop the page's references to the script's result (never raises)."""
    try:
        cdp(driver, "Runtime.releaseObjectGroup", {"objectGroup": _GROUP})
    except WebDriverException:
        pass


def capture(driver, job) -> tuple[list, int]:
    """``(responses, dropped)``: the job's responses whose URL matches a pattern of
    ``capture``, each ``{"url", "status", "headers", "mime_type", "body", "body_base64",
    "size", "truncated"}``, bodies cut at ``capture_max_bytes``; at most
    :data:`MAX_RESPONSES` (the rest counted in ``dropped``). Raises ``FrameTooLarge`` as
    soon as the kept bodies pass the reply limit (not after holding all of them)."""
    netlog = driver.netlog
    netlog.pull(driver)
    patterns, limit = job.options.capture, job.options.capture_max_bytes
    found, finished = {}, set()
    for method, p in netlog.events:
        if method == "Network.responseReceived":
            response = p.get("response") or {}
            url = response.get("url", "")
            if any(fnmatch.fnmatchcase(url, pattern) for pattern in patterns):
                found[p.get("requestId")] = response
        elif method == "Network.loadingFinished":
            finished.add(p.get("requestId"))
    chosen = [rid for rid in found if rid in finished]
    responses, kept_bytes, budget = [], 0, MAX_REPLY_BYTES - REPLY_MARGIN - len(job.url)
    for rid in chosen[:MAX_RESPONSES]:
        response = found[rid]
        try:
            reply = cdp(driver, "Network.getResponseBody", {"requestId": rid})
        except WebDriverException:  # the browser no longer holds it (evicted, a redirect)
            reply = {"body": "", "base64Encoded": False}
        raw = base64.b64decode(reply.get("body", "")) if reply.get("base64Encoded") \
            else reply.get("body", "").encode("utf-8", "surrogatepass")
        binary = bool(reply.get("base64Encoded"))
        size, kept = len(raw), raw[:limit]
        del raw
        kept_bytes += len(kept)
        if kept_bytes > budget:  # stop now: the reply could not carry them anyway
            raise FrameTooLarge(f"{job.url}: the captured bodies take over {kept_bytes} bytes, past the reply "
                                f"limit of {MAX_REPLY_BYTES} bytes (option 'capture_max_bytes', or "
                                f"narrower 'capture' patterns)")
        responses.append({
            "url": response.get("url", ""), "status": response.get("status"),
            "headers": {str(k).lower(): v for k, v in (response.get("headers") or {}).items()},
            "mime_type": response.get("mimeType", ""),
            "body": base64.b64encode(kept).decode("ascii") if binary else kept.decode("utf-8", "ignore"),
            "body_base64": binary, "size": size, "truncated": size > limit})
    return responses, max(0, len(chosen) - MAX_RESPONSES)


_COOKIE_KEYS = ("name", "value", "domain", "path", "secure", "httpOnly", "sameSite")


def cookies(driver) -> list:
    """Every cookie the browser holds, with the keys of the ``cookies`` option
    (``expires`` only for a persistent cookie)."""
    held = cdp(driver, "Network.getAllCookies").get("cookies", [])
    out = []
    for c in held:
        cookie = {k: c[k] for k in _COOKIE_KEYS if k in c}
        if not c.get("session") and isinstance(c.get("expires"), (int, float)) and c["expires"] > 0:
            cookie["expires"] = c["expires"]
        out.append(cookie)
    return out


def screenshot(driver, spec: dict) -> dict:
    """``{"type", "base64"}`` of the viewport, or of the whole page (``full_page``)."""
    params = {"format": spec["type"]}
    if spec["quality"] is not None:
        params["quality"] = spec["quality"]
    if spec["full_page"]:
        metrics = cdp(driver, "Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics.get("contentSize") or {}
        # The window's width with its scrollbar (innerWidth): beyond the viewport the page
        # needs no scrollbar, and the image is as wide as the viewport asked for.
        window = cdp(driver, "Runtime.evaluate", {"expression": "[innerWidth, innerHeight, devicePixelRatio]",
                                                  "returnByValue": True}).get("result", {}).get("value") or [0, 0]
        width = max(int(size.get("width", 0)), int(window[0]), 1)
        height = max(int(size.get("height", 0)), int(window[1]), 1)
        scale = float(window[2]) if len(window) > 2 and window[2] else 1.0
        if width * height * scale * scale > MAX_SCREENSHOT_PIXELS:
            raise FrameTooLarge(f"a full-page screenshot of {width} x {height} CSS px at scale {scale:g} is past "
                                f"the limit of {MAX_SCREENSHOT_PIXELS // 1_000_000} Mpx: take the viewport "
                                f"(full_page false) or a smaller viewport")
        params.update(captureBeyondViewport=True,
                      clip={"x": 0, "y": 0, "width": width, "height": height, "scale": 1})
    data = cdp(driver, "Page.captureScreenshot", params)["data"]
    return {"type": spec["type"], "base64": data}


def pdf(driver, spec: dict) -> dict:
    """``{"base64"}`` of the page printed to PDF on ``format`` paper."""
    width, height = PAPER[spec["format"]]
    data = cdp(driver, "Page.printToPDF", {"paperWidth": width, "paperHeight": height,
                                           "landscape": spec["landscape"],
                                           "printBackground": spec["print_background"]})["data"]
    return {"base64": data}
