"""``browserd fetch -i FILE -o DIR``: many URLs into a directory, resumable.

Each page is saved as ``DIR/<sha1 prefix>-<host_path>.html`` (or the document's bytes,
with a fitting extension); every outcome is appended to ``DIR/index.jsonl`` (the last
line of a URL wins), so a second run fetches only what is not saved yet; the job's outputs
(screenshot, PDF, captured responses) are saved next to each page. Input lines are URLs or
JSON objects with per-URL options (:func:`.options.read_batch_input`). Built on the
client's ``map``: K fetches at once, results as they come.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections import Counter

from browserd_client import Backoff
from browserd_client.errors import BrowserdError

from ..daemon.errors import ExitCode
from . import options
from .common import client, client_failure, die, duration
from .pagefiles import as_utf8_html, extension, page_file

INDEX_FILE = "index.jsonl"


def fetch_batch(args, config, params: dict, fetch_timeouts) -> ExitCode:
    """Fetch every URL of ``args.input`` not saved yet into ``args.output``, ``args.jobs``
    at once, with the site ``args.site``; ``params`` are the client keyword arguments of
    every fetch (``{"params": site params, **job options}``); ``fetch_timeouts(client,
    args, config)`` gives (timeout sent, seconds to wait). Progress to stderr, the summary
    to stdout (``--json``: one JSON object). Exit 0 all saved, 1 any URL failed, 2 bad
    arguments, 3 not running, 77 no permission."""
    if not args.output or args.output == "-":
        return die("fetch -i needs -o DIR, the directory to save the pages in", ExitCode.USAGE)
    if args.jobs < 1:
        return die("-j must be at least 1", ExitCode.USAGE)
    try:
        urls = options.read_batch_input(args.input)  # URLs, and JSON lines with options
        os.makedirs(args.output, exist_ok=True)
    except OSError as exc:
        return die(f"{exc.filename or args.input}: {exc.strerror}", ExitCode.FAILURE)
    except ValueError as exc:
        return die(str(exc), ExitCode.USAGE)
    index_path = os.path.join(args.output, INDEX_FILE)
    saved, torn = _read_index(index_path)
    todo = [u for u in urls if not _saved(saved.get(options.item_url(u)), args.output)]
    failed = Counter()
    progress = _Progress(len(todo), sys.stderr)
    t0 = time.monotonic()
    try:
        with client(config) as c, open(index_path, "a", encoding="utf-8") as index:
            c.ping()  # not running: say so once, not once per URL
            c.retry = Backoff()  # then ride through a restart like any client (30 s)
            timeout, c.timeout = fetch_timeouts(c, args, config)
            if torn:
                index.write("\n")
            results = c.map(todo, site=args.site, concurrency=args.jobs, timeout=timeout, **params)
            with contextlib.closing(results):
                for r in results:
                    record = _save(r, args.output)
                    if not r.ok:
                        failed[r.code] += 1
                    index.write(json.dumps(record, ensure_ascii=False) + "\n")
                    index.flush()
                    progress.update(r, record)
    except BrowserdError as exc:
        return client_failure(exc, "fetch")
    except OSError as exc:
        return die(f"{exc.filename or args.output}: {exc.strerror}", ExitCode.FAILURE)
    finally:
        progress.close()
    _summary(args, urls, todo, failed, time.monotonic() - t0, index_path)
    return ExitCode.FAILURE if failed else ExitCode.OK


def _save(r, output: str) -> dict:
    """The index record of one result; a page that was fetched is written to its file
    first (through a ``.part`` file, so a saved file is always whole)."""
    record = {"url": r.url, "ok": r.ok, "file": None, "code": r.code, "message": r.message}
    if not r.ok:
        return record
    res = r.result
    record.update(file=page_file(r.url) + extension(res), final_url=res.url,
                  title=res.title, seconds=res.timing.get("total"), status=res.status,
                  mime_type=res.mime_type, charset=res.charset,
                  saved_charset="utf-8" if res.body is None else None,
                  redirects=res.redirects)
    path = os.path.join(output, record["file"])
    with open(path + ".part", "wb") as f:
        f.write(res.body if res.body is not None else as_utf8_html(res.source).encode("utf-8"))
    os.replace(path + ".part", path)
    record.update(options.save_batch_outputs(res, path))
    return record


def _saved(record: dict | None, output: str) -> bool:
    """Whether an index record says its page was saved, and the file is still there."""
    return bool(record and record.get("ok") and os.path.exists(os.path.join(output, record.get("file") or "")))


def _summary(args, urls: list, todo: list, failed: Counter, elapsed: float, index_path: str) -> None:
    summary = {"urls": len(urls), "skipped": len(urls) - len(todo), "saved": len(todo) - sum(failed.values()),
               "failed": dict(failed), "elapsed": round(elapsed, 3), "index": index_path}
    if args.json:
        print(json.dumps(summary))
        return
    print(f"fetched {summary['saved']} of {len(todo)} URLs into {args.output} in {elapsed:.1f}s "
          f"({len(todo) / max(elapsed, 1e-6):.1f}/s); {summary['skipped']} skipped (already saved)")
    codes = ", ".join(f"{code} {n}" for code, n in failed.most_common())
    print(f"failed {sum(failed.values())}" + (f": {codes}" if codes else ""))
    print(f"index: {index_path}")


def _read_index(path: str) -> tuple[dict[str, dict], bool]:
    """The last record of each URL in an index, and whether the index ends mid-line (a run
    killed while writing; that line is skipped)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return {}, False
    records: dict[str, dict] = {}
    for line in text.splitlines():
        try:
            record = json.loads(line)
            records[record["url"]] = record
        except (ValueError, KeyError, TypeError):
            continue
    return records, bool(text) and not text.endswith("\n")


class _Progress:
    """A bar with rate and ETA when ``stream`` is a terminal; one plain line per URL otherwise."""

    def __init__(self, total: int, stream):
        self.total, self.stream, self.tty = total, stream, stream.isatty()
        self.done = self.failed = 0
        self.t0 = time.monotonic()
        self._draw()

    def update(self, result, record: dict) -> None:
        self.done += 1
        self.failed += not result.ok
        outcome = f"ok {result.url} -> {record['file']}" if result.ok else \
            f"failed {result.code} {result.url}: {(result.message or '').removeprefix(result.url + ': ')}"
        if not self.tty:
            print(f"[{self.done}/{self.total}] {outcome}", file=self.stream, flush=True)
        elif not result.ok:  # failures stay on screen above the bar
            self.stream.write(f"\r\x1b[K{outcome}\n")
        self._draw()

    def _draw(self) -> None:
        if not self.tty:
            return
        rate = self.done / max(time.monotonic() - self.t0, 1e-6)
        eta = duration((self.total - self.done) / rate) if rate else "?"
        filled = 30 * self.done // max(self.total, 1)
        self.stream.write(f"\r\x1b[K[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} "
                          f"{rate:.1f}/s ETA {eta}, {self.failed} failed")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
