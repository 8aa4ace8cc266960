"""Fetching through the daemon: ``fetch`` (one URL, or a list with ``-i``) and ``demo``.

The argparse setup of ``fetch`` is all in :func:`add_fetch_arguments`.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys

from browserd_client import SITE_TIMEOUT, Client
from browserd_client.errors import BrowserdError

from .. import demo
from ..daemon.errors import ExitCode
from . import options
from .batch import fetch_batch
from .common import client, client_failure, die, load_config
from .pagefiles import as_utf8_html

FETCH_EPILOG = """\
with -i FILE -o DIR: each page is saved as DIR/<sha1 prefix>-<host_path>.html; every
outcome is appended to DIR/index.jsonl ({"url", "ok", "file", "code", "message", ...},
the last line of a URL wins), so a second run fetches only what is not saved yet.
Progress goes to stderr (a bar on a terminal, one line per URL otherwise), the
summary to stdout.

Saved pages are UTF-8 and declare it (<meta charset="utf-8">, the page's own charset
goes to index.jsonl as "charset"); a document that is not HTML (JSON, CSV, PDF, an
attachment) is saved as its bytes, with a fitting extension. index.jsonl records also
carry "status", "mime_type" and "redirects".

exit codes: 0 every URL fetched (or already saved); 1 a fetch failed (with -i: any
URL failed); 2 bad command line; 3 browserd is not running; 5 (a single URL) the
page's HTTP status is 400 or above, unless --allow-status."""


def _params(pairs) -> dict:
    """``--param KEY=VALUE`` pairs as a dict (a VALUE that is JSON is decoded). Raises
    ValueError for a pair without ``=``."""
    params = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--param {pair!r} is not KEY=VALUE")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def fetch_timeouts(c: Client, args, config) -> tuple:
    """(the ``timeout`` to send with each fetch, the seconds the client should wait for a
    reply, before its grace). Without ``--timeout`` none is sent: the daemon gives each job
    the site's own timeout, else ``job_timeout`` (this configuration's, which the CLI takes
    to be the daemon's, as ``stop`` does with ``drain_timeout``)."""
    if args.timeout is not None:
        return args.timeout, args.timeout
    for site in c.sites():
        if site.get("name") == args.site and site.get("timeout"):
            return SITE_TIMEOUT, float(site["timeout"])
    return SITE_TIMEOUT, config.job_timeout


def cmd_fetch(args) -> ExitCode:
    """Fetch one URL and print (or ``-o`` save) its rendered source, its bytes, or with
    ``--json`` the whole result; with ``-i`` fetch a list (:mod:`.batch`). Exit codes:
    see :data:`FETCH_EPILOG`."""
    if (args.url is None) == (args.input is None):
        return die("fetch needs either a URL or -i FILE", ExitCode.USAGE)
    config = load_config(args)
    try:
        params = _params(args.param)
        job = options.job_options_from_args(args)  # job option flags, as client keyword arguments
    except (ValueError, TypeError) as exc:
        return die(str(exc), ExitCode.USAGE)
    except OSError as exc:
        return die(f"{exc.filename}: {exc.strerror}", ExitCode.FAILURE)
    if args.wait_for:
        params["wait_for"] = args.wait_for
    if args.input is not None:
        return fetch_batch(args, config, {"params": params, **job}, fetch_timeouts)
    try:
        with client(config) as c:
            timeout, c.timeout = fetch_timeouts(c, args, config)
            result = c.fetch(args.url, site=args.site, timeout=timeout, params=params, **job)
        extra = options.save_outputs(args, result)  # screenshot, PDF, ... files; --json fields
    except BrowserdError as exc:
        return client_failure(exc, "fetch")
    except OSError as exc:
        return die(f"{exc.filename}: {exc.strerror}", ExitCode.FAILURE)
    _write(args, result, _output(args, result, extra))
    if result.status is not None and result.status >= 400 and not args.allow_status:
        print(f"fetch: {result.url} answered HTTP {result.status} (exit {ExitCode.HTTP_ERROR}; --allow-status "
              f"to exit 0)", file=sys.stderr)
        return ExitCode.HTTP_ERROR
    return ExitCode.OK


def _output(args, result, extra: dict) -> bytes:
    """What ``fetch`` writes: the JSON record (``--json``, with the job's outputs
    ``extra``), the JSON value of ``--eval`` (no ``-o``), the body of a document that is
    not HTML, or the rendered source as UTF-8 HTML."""
    if args.json:
        record = {"url": result.url, "requested_url": result.requested_url, "title": result.title,
                  "site": result.site, "browser": result.browser, "timing": result.timing,
                  "notes": result.notes, "status": result.status, "headers": result.headers,
                  "mime_type": result.mime_type, "redirects": result.redirects, "charset": result.charset,
                  "source": result.source, **extra}
        if result.body is not None:
            record["body"] = base64.b64encode(result.body).decode("ascii")
        return json.dumps(record, ensure_ascii=False).encode("utf-8")
    if options.value_replaces_page(args):
        return json.dumps(result.value, ensure_ascii=False).encode("utf-8")
    if result.body is not None:
        return result.body
    return as_utf8_html(result.source).encode("utf-8")


def _write(args, result, out: bytes) -> None:
    if args.output and args.output != "-":
        with open(args.output, "wb") as f:
            f.write(out)
        print(f"{result.url}: {result.status or '-'} {len(out)} bytes in {result.timing.get('total', 0):.3f}s "
              f"-> {args.output}", file=sys.stderr)
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(out if out.endswith(b"\n") else out + b"\n")
        sys.stdout.flush()


def cmd_demo(args) -> ExitCode:
    """Fetch the daemon's own demo page (served by the daemon on 127.0.0.1, content built
    by JavaScript after 300 ms) through it, and print the rendered source. Exit 0 when
    the rendered page holds the marker only JavaScript adds, else 1; 3 not running."""
    config = load_config(args)
    try:
        with client(config) as c:
            url = c.status().get("demo_url")
            if not url:
                return die("this daemon serves no demo page (its browsers are on a Grid)", ExitCode.FAILURE)
            result = c.fetch(url, wait_for="#built")
    except BrowserdError as exc:
        return client_failure(exc, "demo fetch", " (start it first: browserd start)")
    print(f"# {result.url} rendered by browser {result.browser} in {result.timing['total']:.3f}s "
          f"(title {result.title!r}):")
    print(result.source)
    return ExitCode.OK if demo.MARKER in result.source else ExitCode.FAILURE


def add_fetch_arguments(p: argparse.ArgumentParser) -> None:
    """Every argument of ``browserd fetch``, the job option flags included."""
    p.add_argument("url", nargs="?", help="the URL to fetch (or -i FILE)")
    p.add_argument("-i", "--input", metavar="FILE",
                   help="fetch every URL listed in FILE (one a line; blank lines and # comments skipped; - reads "
                        "stdin) into the directory -o, skipping those an earlier run saved")
    p.add_argument("-j", "--jobs", type=int, default=4, metavar="K", help="with -i: fetches at once (default 4)")
    p.add_argument("--site", default="generic", help="site class (default generic)")
    p.add_argument("--wait-for", metavar="CSS", help="wait for this CSS selector")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="site parameter (repeatable)")
    p.add_argument("--timeout", type=float, help="job timeout in seconds (default and maximum: the site's "
                   "timeout, else job_timeout)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the page here instead of stdout; with -i: the "
                   "directory for the pages and index.jsonl")
    p.add_argument("--json", action="store_true", help="print URL, status, headers, MIME type, redirects, title, "
                   "timing, notes and source (or base64 body) as JSON (with -i: the summary)")
    p.add_argument("--allow-status", action="store_true", help="exit 0 even when the page's HTTP status is 400 "
                   "or above (default: exit 5)")
    options.add_job_option_flags(p)


def add_parsers(sub, common) -> None:
    """The subparsers of ``fetch`` and ``demo``."""
    p = sub.add_parser("fetch", parents=[common], help="fetch a URL's rendered page source, or a list of URLs (-i)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=FETCH_EPILOG + "\n\n" + options.FLAGS_EPILOG)
    add_fetch_arguments(p)
    p.set_defaults(func=cmd_fetch)
    p = sub.add_parser("demo", parents=[common], help="fetch a bundled JavaScript page and print it")
    p.set_defaults(func=cmd_demo)
