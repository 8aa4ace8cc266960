"""The browsers' only way out: a SOCKS5 proxy run by the daemon, one listener per browser.

Each local browser lives in a private network namespace (:mod:`browserd.netns`) that has
nothing but loopback. Chromium is started with ``--proxy-server=socks5://127.0.0.1:PORT``
and ``--proxy-bypass-list=<-loopback>`` (so loopback URLs go through the proxy too),
where PORT is a socket listening *inside* its namespace that this proxy accepts on from
outside. Every TCP connection the browser makes (navigations, redirects, subresources,
workers, WebSockets) is therefore a SOCKS5 ``CONNECT`` here; the proxy resolves the name
itself, asks the destination policy (:mod:`browserd.netpolicy`) about the resolved address, and connects to the
address it checked (so a DNS answer that changes between check and connect cannot get
through). A refused destination is answered with SOCKS5 reply 0x02, "connection not
allowed by ruleset" (RFC 1928 section 6); Chromium reports it as a failed load.

Because each browser has its own listener, the proxy knows which browser a connection
comes from, hence which job: the hook for per-job policy and upstream proxies.

SOCKS5 needs no HTTP parsing: the protocol work here is the RFC 1928 greeting and
``CONNECT`` request (no authentication: only the browser's own namespace can reach the
listener). It runs on one asyncio event loop thread; tunnels copy bytes with asyncio
streams.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import threading

from python_socks import ProxyConnectionError, ProxyError, ProxyTimeoutError, ProxyType
from python_socks.async_.asyncio import Proxy as AsyncProxy

from .socks5 import (
    CHUNK, REP_FAILURE, REP_HOST_UNREACHABLE, REP_NOT_ALLOWED, REP_OK, REP_REFUSED, SocksError, pipe,
    read_connect, reply, tls_or_plain,
)

logger = logging.getLogger(__name__)

_PROXY_TYPES = {"http": ProxyType.HTTP, "socks4": ProxyType.SOCKS4, "socks5": ProxyType.SOCKS5}

# RFC 1928 reply codes
CONNECT_TIMEOUT = 30.0   # seconds to resolve and connect one destination
HANDSHAKE_TIMEOUT = 10.0  # seconds a browser has to send its SOCKS request
FAILURES_KEPT = 32  # per browser: recent failed CONNECTs, to name a failed load's cause
CONTACTS_KEPT = 4096  # per browser and job: distinct (host, port) asked for

#: Chromium reports every failed SOCKS5 CONNECT as net::ERR_SOCKS_CONNECTION_FAILED, whatever
#: the reply code; the proxy knows the real cause and names it with Chromium's own error
#: names (net/base/net_error_list.h).
NET_ERRORS = {
    "refused": "ERR_CONNECTION_REFUSED",
    "name": "ERR_NAME_NOT_RESOLVED",
    "timeout": "ERR_CONNECTION_TIMED_OUT",
    "unreachable": "ERR_ADDRESS_UNREACHABLE",
    "policy": "ERR_ACCESS_DENIED",
    "proxy": "ERR_PROXY_CONNECTION_FAILED",
}


class EgressProxy:
    """SOCKS5 proxy for the pool's browsers.

    Life: :meth:`add` a browser's listener (the proxy owns it from then on),
    :meth:`start` the loop thread, :meth:`suspend` it before the daemon forks (threads
    do not survive ``fork``; the listeners stay open and are kept across it, see
    :meth:`listener_fds`), :meth:`start` again after, :meth:`remove` a browser (its
    listener and open tunnels are closed), :meth:`stop`. Thread-safe. Refused
    destinations are counted as ``egress_refused`` in ``stats``.

    The proxy must serve while browsers start: Chromium's first navigation waits for its
    start-up connections (the default search engine's preconnect), which would hang for
    30 s on a listener nobody accepts on.
    """

    def __init__(self, policy, stats=None, resolve=None):
        self.policy = policy
        self.stats = stats
        # async (host, port) -> [(family, sockaddr)]: the system resolver unless a test
        # gives another; it is asked once per connection, and only its answer is used.
        self._resolve = resolve or _system_resolve
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._listeners: dict[str, socket.socket] = {}
        self._servers: dict[str, asyncio.AbstractServer] = {}
        self._tunnels: dict[str, set[asyncio.Task]] = {}  # connection handlers, by browser
        self._failures: dict[str, dict[tuple, tuple[str, str]]] = {}  # browser -> (host, port) -> why
        self._refused: dict[str, list[str]] = {}  # browser -> "host:port" refused by the policy, this job
        self._upstreams: dict = {}  # browser -> the Upstream its current job goes through
        # browser -> {(host, port): schemes its tunnels showed} asked for since begin_job
        self._contacted: dict[str, dict[tuple[str, int], set]] = {}
        self._overflowed: set[str] = set()  # browsers whose job asked for more than CONTACTS_KEPT
        self._lock = threading.Lock()

    # -- life ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start serving every listener added so far (and later ones) on a new thread."""
        loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="egress", daemon=True)
        self._thread.start()
        with self._lock:
            self._loop = loop
            listeners = dict(self._listeners)
        for browser_id, sock in listeners.items():
            self._call(loop, self._serve(browser_id, sock))

    def suspend(self) -> None:
        """Stop the loop thread and close every tunnel; keep the listeners open."""
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._close_all(), loop).result(10)
        asyncio.run_coroutine_threadsafe(loop.shutdown_default_executor(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(5)
        loop.close()
        self._thread = None

    def stop(self) -> None:
        """Suspend, and close every listener (the browsers lose their way out)."""
        self.suspend()
        with self._lock:
            for sock in self._listeners.values():
                sock.close()
            self._listeners.clear()

    def add(self, browser_id: str, listener: socket.socket) -> None:
        """Accept ``browser_id``'s connections on ``listener`` (we own it from now on)."""
        listener.setblocking(False)
        with self._lock:
            self._listeners[browser_id] = listener
            loop = self._loop
        if loop is not None:
            self._call(loop, self._serve(browser_id, listener))

    def remove(self, browser_id: str) -> None:
        """Stop accepting for ``browser_id``, close its listener and tunnels. Idempotent."""
        with self._lock:
            sock = self._listeners.pop(browser_id, None)
            self._overflowed.discard(browser_id)
            for per_browser in (self._failures, self._refused, self._upstreams, self._contacted):
                per_browser.pop(browser_id, None)
            loop = self._loop
        if loop is not None:
            self._call(loop, self._unserve(browser_id))
        if sock is not None:
            sock.close()

    def listener_fds(self) -> list[int]:
        """Descriptors to keep across the daemon's fork."""
        with self._lock:
            return [s.fileno() for s in self._listeners.values()]

    def begin_job(self, browser_id: str, upstream=None) -> None:
        """A new job starts on ``browser_id``: forget the last job's failures and refusals,
        and route its connections through ``upstream`` (an :class:`~browserd.proxies.Upstream`,
        or None: direct). When the route changes, the browser's open tunnels are closed, so
        no keep-alive connection of the last job carries this one's traffic."""
        with self._lock:
            self._failures.pop(browser_id, None)
            self._refused.pop(browser_id, None)
            self._contacted.pop(browser_id, None)
            self._overflowed.discard(browser_id)
            changed = self._upstreams.get(browser_id) != upstream
            if upstream is None:
                self._upstreams.pop(browser_id, None)
            else:
                self._upstreams[browser_id] = upstream
            loop = self._loop
        if changed and loop is not None:
            self._call(loop, self._drop_tunnels(browser_id))

    def contacted(self, browser_id: str) -> list[tuple[str, int, str | None]]:
        """Every ``(host, port, scheme)`` the browser asked to connect to since
        :meth:`begin_job` (allowed or not), whichever window, frame or worker asked: the
        origins a job's documents may have stored data for, seen from the network side.
        ``scheme`` is "http" or "https" as the tunnel's first bytes showed (a TLS record or
        an HTTP request line; :func:`~browserd.socks5.tls_or_plain`), a pair for each when
        both were seen, None when no tunnel showed either (refused, nothing sent yet)."""
        with self._lock:
            found = []
            for (host, port), schemes in self._contacted.get(browser_id, {}).items():
                found += [(host, port, scheme) for scheme in sorted(schemes)] or [(host, port, None)]
            return sorted(found, key=lambda c: (c[0], c[1], c[2] or ""))

    def contacts_complete(self, browser_id: str) -> bool:
        """False when the browser's job asked for more than ``CONTACTS_KEPT`` distinct
        host:ports since :meth:`begin_job`: :meth:`contacted` does not hold them all, so
        the storage of every origin it touched cannot be cleared by name."""
        with self._lock:
            return browser_id not in self._overflowed

    def refused(self, browser_id: str) -> list[str]:
        """``host:port`` destinations refused by the policy since :meth:`begin_job`."""
        with self._lock:
            return list(self._refused.get(browser_id, ()))

    def failure(self, browser_id: str, host: str | None = None, port: int | None = None):
        """Why a recent CONNECT of ``browser_id`` failed: ``(net_error, detail)`` for
        ``host:port``, else for the latest failure, else None. ``net_error`` is one of
        :data:`NET_ERRORS`' values."""
        with self._lock:
            failures = self._failures.get(browser_id) or {}
            if (host, port) in failures:
                return failures[(host, port)]
            return next(reversed(failures.values()), None) if failures else None

    def _failed(self, browser_id: str, host: str, port: int, kind: str, detail: str) -> None:
        with self._lock:
            failures = self._failures.setdefault(browser_id, {})
            failures.pop((host, port), None)
            failures[(host, port)] = (NET_ERRORS[kind], detail)
            while len(failures) > FAILURES_KEPT:
                failures.pop(next(iter(failures)))

    def tunnel_count(self, browser_id: str | None = None) -> int:
        """Connections from the browser being served, of one browser or all."""
        if browser_id is not None:
            return len(self._tunnels.get(browser_id, ()))
        return sum(len(t) for t in self._tunnels.values())

    @staticmethod
    def _call(loop, coro, timeout: float = 10.0):
        """Run ``coro`` on the proxy's loop from another thread; wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    async def _serve(self, browser_id: str, sock: socket.socket) -> None:
        # asyncio closes the socket it serves on when the server closes: give it a
        # duplicate, so that suspend() keeps the listener itself open across the fork.
        server = await asyncio.start_server(
            lambda r, w: self._handle(browser_id, r, w), sock=sock.dup(), limit=CHUNK)
        self._servers[browser_id] = server
        self._tunnels.setdefault(browser_id, set())

    async def _unserve(self, browser_id: str) -> None:
        server = self._servers.pop(browser_id, None)
        if server is not None:
            server.close()
        tasks = self._tunnels.pop(browser_id, set())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _drop_tunnels(self, browser_id: str) -> None:
        tasks = set(self._tunnels.get(browser_id, ()))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _close_all(self) -> None:
        for browser_id in list(self._servers):
            await self._unserve(browser_id)

    # -- one connection --------------------------------------------------------------------

    async def _handle(self, browser_id: str, reader, writer) -> None:
        task = asyncio.current_task()
        tunnels = self._tunnels.setdefault(browser_id, set())
        tunnels.add(task)
        upstream = None
        try:
            host, port = await asyncio.wait_for(read_connect(reader, writer), HANDSHAKE_TIMEOUT)
            scheme, first, recorded_in = None, True, self._record(browser_id, host, port, None)

            def seen(data: bytes) -> None:
                # The scheme of the origin the tunnel serves, from its first bytes; recorded
                # again in the contacted list of each later job the tunnel carries a request
                # of (a keep-alive connection outlives the reset: without this, a job that
                # reuses it contacts the host:port without the reset knowing).
                nonlocal scheme, first, recorded_in
                if first:
                    scheme, first = tls_or_plain(data), False
                elif recorded_in is self._contacted.get(browser_id):
                    return  # recorded for this job already
                recorded_in = self._record(browser_id, host, port, scheme)

            rep, upstream = await self._connect(browser_id, host, port)
            writer.write(reply(rep))
            await writer.drain()
            if upstream is not None:
                await asyncio.gather(pipe(reader, upstream[1], seen), pipe(upstream[0], writer))
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, SocksError, ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            # Cancelled on purpose (a route change, the browser removed): end quietly.
            # Re-raising would make asyncio's stream callback log it as an error (3.11).
            pass
        finally:
            tunnels.discard(task)
            writer.transport.abort()
            if upstream is not None:
                upstream[1].transport.abort()

    def _record(self, browser_id: str, host: str, port: int, scheme: str | None):
        """Note ``(host, port)`` (and ``scheme``, when known) as contacted by the browser's
        current job; returns that job's contacted dict (any thread)."""
        with self._lock:
            contacted = self._contacted.setdefault(browser_id, {})
            schemes = contacted.get((host, port))
            if schemes is None and len(contacted) < CONTACTS_KEPT:
                schemes = contacted[(host, port)] = set()
            elif schemes is None:
                self._overflowed.add(browser_id)
            if scheme and schemes is not None:
                schemes.add(scheme)
            return contacted

    async def _connect(self, browser_id: str, host: str, port: int):
        """Open the tunnel's far end: straight to a checked address of ``host``, or
        through the job's upstream proxy. Returns (SOCKS reply code, streams or None)."""
        upstream = self._upstreams.get(browser_id)
        if upstream is not None:
            return await self._connect_via(browser_id, upstream, host, port)
        allowed = await self._checked(browser_id, host, port)
        if allowed is None:
            return REP_NOT_ALLOWED, None
        if not allowed:
            return REP_HOST_UNREACHABLE, None
        rep, kind, detail = REP_HOST_UNREACHABLE, "unreachable", "no address"
        for family, sockaddr in allowed:
            try:
                streams = await asyncio.wait_for(
                    asyncio.open_connection(sockaddr[0], sockaddr[1], family=family, limit=CHUNK),
                    CONNECT_TIMEOUT)
                _nodelay(streams[1])
                return REP_OK, streams
            except ConnectionRefusedError:
                rep, kind, detail = REP_REFUSED, "refused", f"{sockaddr[0]} port {port} refused the connection"
            except asyncio.TimeoutError:
                rep, kind, detail = REP_HOST_UNREACHABLE, "timeout", f"{sockaddr[0]} port {port} did not answer"
            except OSError as exc:
                rep, kind, detail = REP_HOST_UNREACHABLE, "unreachable", f"{sockaddr[0]} port {port}: {exc.strerror}"
        self._failed(browser_id, host, port, kind, detail)
        return rep, None

    async def _checked(self, browser_id: str, host: str, port: int):
        """Resolve ``host`` once and judge every answer: the allowed ``(family, sockaddr)``
        list ([] if it did not resolve), or None when the policy refuses it (recorded).
        One refused answer refuses the name: no fallback games with mixed answers."""
        try:
            infos = await asyncio.wait_for(self._resolve(host, port), CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as exc:
            self._failed(browser_id, host, port, "name", f"{host!r} did not resolve: {exc or 'timeout'}")
            return []
        allowed = []
        for family, sockaddr in infos:
            reason = self.policy.check(sockaddr[0], port, host)
            if reason is not None:
                self._note_refused(browser_id, host, port, reason)
                self._failed(browser_id, host, port, "policy", reason)
                return None
            allowed.append((family, sockaddr))
        return allowed

    async def _connect_via(self, browser_id: str, upstream, host: str, port: int):
        """Chain through ``upstream`` (python-socks does the HTTP CONNECT / SOCKS work).
        The destination is resolved by the upstream; an address given as such is still
        judged by the policy, and so is the upstream's own address (a "proxy" must not be
        a way into the daemon's networks)."""
        if _is_address(host):
            reason = self.policy.check(host, port, None)
            if reason is not None:
                self._note_refused(browser_id, host, port, reason)
                self._failed(browser_id, host, port, "policy", reason)
                return REP_NOT_ALLOWED, None
        allowed = await self._checked(browser_id, upstream.host, upstream.port)
        if allowed is None:
            self._failed(browser_id, host, port, "policy",
                         f"proxy {upstream.redacted()}: its address is refused by the egress policy")
            return REP_NOT_ALLOWED, None
        detail = f"proxy {upstream.redacted()} did not resolve"
        for _family, sockaddr in allowed:
            try:
                proxy = AsyncProxy(_PROXY_TYPES[upstream.scheme], sockaddr[0], sockaddr[1],
                                   upstream.username, upstream.password, rdns=True)
                sock = await proxy.connect(host, port, timeout=CONNECT_TIMEOUT)
                streams = await asyncio.open_connection(sock=sock, limit=CHUNK)
                _nodelay(streams[1])
                return REP_OK, streams
            except (ProxyError, ProxyConnectionError, ProxyTimeoutError, OSError, asyncio.TimeoutError) as exc:
                text = str(exc) or type(exc).__name__
                if upstream.password:
                    text = text.replace(upstream.password, "***")
                detail = f"proxy {upstream.redacted()} failed: {text}"
        self._failed(browser_id, host, port, "proxy", detail)
        return REP_FAILURE, None

    def _note_refused(self, browser_id: str, host: str, port: int, reason: str) -> None:
        with self._lock:
            refused = self._refused.setdefault(browser_id, [])
            if len(refused) < FAILURES_KEPT:
                refused.append(f"{host}:{port}")
        if self.stats is not None:
            self.stats.count("egress_refused")
        logger.info("browser=%s egress refused: %r port %d: %s", browser_id, host, port, reason)


def _nodelay(writer) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


async def _system_resolve(host: str, port: int) -> list[tuple[int, tuple]]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [(family, sockaddr) for family, _type, _proto, _name, sockaddr in infos]


