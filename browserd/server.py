"""The listener: accept loop, connection threads, requests, and the client-gone watcher.

Why not ``multiprocessing.connection.Listener`` itself: its ``accept()`` runs the authkey
handshake on the accepting thread with no timeout (one silent client blocks everyone),
its default backlog is 1 (bursts are refused), it cannot be woken to stop, and its
``Connection`` has no timeouts. We keep its wire format and its handshake code
(:mod:`browserd_client.protocol`), so stdlib clients still work, and fix the rest:
a real backlog, handshake in the connection's own thread under a deadline, timeouts on
every read and write, and a bounded number of connections.

Connections that have not authenticated yet do not count against ``max_connections``:
they have a small budget of their own (:mod:`browserd.admission`), so a flood of silent
or garbage connections cannot keep real clients out. Their failures are logged as one
line per second with counts, and every client-supplied value is escaped before it is
logged (:func:`browserd.logsafe.safe`).
"""

from __future__ import annotations

import base64
import errno
import logging
import os
import select
import selectors
import socket
import stat
import struct
import threading
import time

from browserd_client import protocol
from browserd_client.errors import (
    BadRequest, BrowserdError, Busy, FrameTooLarge, Internal, ShuttingDown, UnknownOp,
)
from multiprocessing.connection import AuthenticationError

from . import __version__
from .admission import FailureTally, PendingBudget
from .config import is_loopback
from .jobs import parse_fetch
from .logsafe import safe

logger = logging.getLogger(__name__)


class _ClientGone(Exception):
    """The client left while its job ran: there is nobody to answer."""


class BindError(OSError):
    """The configured address cannot be listened on (one-line message)."""


def bind(config) -> tuple[socket.socket, dict]:
    """Create the listening socket from the config; return it and its published address."""
    if config.socket:
        path = config.socket
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)  # stale: only called while we hold the pidfile lock
        except FileNotFoundError:
            pass
        os.makedirs(os.path.dirname(path), exist_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            sock.listen(config.backlog)
        except OSError as exc:
            sock.close()
            raise BindError(f"cannot listen on unix:{path}: {exc.strerror}") from None
        address = {"family": "AF_UNIX", "path": path}
    else:
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        try:
            sock = socket.create_server((config.host, config.port), family=family, backlog=config.backlog)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise BindError(f"port {config.port} on {config.host} is already in use") from None
            raise BindError(f"cannot listen on {config.host}:{config.port}: {exc.strerror}") from None
        host, port = sock.getsockname()[:2]
        address = {"family": "AF_INET", "host": host, "port": port}
        if config.insecure_listen_any and not is_loopback(host):
            logger.warning("listening on %s port %d beyond loopback because insecure_listen_any is set: "
                           "after the handshake, requests and pages cross the network unencrypted", host, port)
    sock.set_inheritable(False)
    return sock, address


def _peer_identity(sock: socket.socket, peer) -> tuple[str, str]:
    """(name for the log, key of the pre-authentication budget) of an accepted socket:
    a Unix socket peer is its uid (SO_PEERCRED), a TCP peer its remote address."""
    if sock.family == socket.AF_UNIX:
        try:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            pid, uid, _ = struct.unpack("3i", creds)
            return f"unix(pid={pid},uid={uid})", f"uid:{uid}"
        except OSError:
            return "unix", "uid:?"
    return safe(f"{peer[0]}:{peer[1]}"), safe(peer[0])


def _has_unread(sock: socket.socket) -> bool:
    """Whether the peer sent bytes not read yet (or closed). Never blocks: a zero-timeout
    poll, not ``recv(MSG_DONTWAIT)``, which Python turns into a wait when the socket
    has a timeout (the handshake thread sets one)."""
    poller = select.poll()
    try:
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return False


class ClientWatch:
    """Notices a client that closes its connection while its job runs (epoll RDHUP),
    and aborts that job so no work continues for a client that left."""

    def __init__(self, stats):
        self.stats = stats
        self._epoll = select.epoll()
        self._lock = threading.Lock()
        self._jobs: dict[int, tuple] = {}
        self._wake_r, self._wake_w = os.pipe()
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="client-watch", daemon=True)

    def start(self):
        self._thread.start()

    def watch(self, sock: socket.socket, job) -> None:
        with self._lock:
            self._jobs[sock.fileno()] = (sock, job)
            self._epoll.register(sock.fileno(), select.EPOLLRDHUP | select.EPOLLIN)

    def unwatch(self, sock: socket.socket) -> None:
        """Must be called before the socket is closed (no stale fd numbers here)."""
        with self._lock:
            if self._jobs.pop(sock.fileno(), None) is not None:
                self._epoll.unregister(sock.fileno())

    def stop(self):
        self._stopped = True
        os.write(self._wake_w, b"x")
        self._thread.join(5)
        self._epoll.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _run(self):
        while not self._stopped:
            for fd, events in self._epoll.poll():
                if fd == self._wake_r:
                    continue
                with self._lock:
                    entry = self._jobs.get(fd)
                    if entry is None:
                        continue
                    sock, job = entry
                    gone = bool(events & (select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR))
                    if not gone:
                        try:
                            gone = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
                        except BlockingIOError:
                            gone = False
                        except OSError:
                            gone = True
                    # Gone or pipelining: either way stop watching this fd.
                    self._jobs.pop(fd, None)
                    self._epoll.unregister(fd)
                if gone and job.abort("client_gone"):
                    self.stats.count("client_gone")
                    logger.warning("job=%s client went away mid-job; cancelled", job.id)


class Server:
    def __init__(self, config, listener: socket.socket, address: dict, authkey: bytes,
                 pool, registry, stats, status_provider):
        self.config = config
        self.listener = listener
        self.address = address
        self.authkey = authkey
        self.pool = pool
        self.registry = registry
        #: ``[proxies.NAME]`` pools (name -> ProxyPool), set by the Arbiter.
        self.proxy_pools: dict = {}
        self.stats = stats
        self.status_provider = status_provider
        #: The Prometheus text of /metrics (set by the Arbiter).
        self.metrics_provider = lambda: ""
        self.draining = False
        self._conn_lock = threading.Lock()
        self._conns: set[socket.socket] = set()  # authenticated connections only
        self.pending = PendingBudget(config.max_pending_handshakes, config.max_pending_per_peer)
        self.rejections = FailureTally(lambda line: logger.warning("%s", line))
        self._stopping = False
        self._wake_r, self._wake_w = os.pipe()
        self._reserve_fd: int | None = None
        self.watch = ClientWatch(stats)
        self._accept_thread = threading.Thread(target=self._accept_loop, name="accept", daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._reserve_fd = os.open(os.devnull, os.O_RDONLY)
        self.watch.start()
        self._accept_thread.start()

    def begin_drain(self) -> None:
        """New fetches get ``shutting_down``; connections stay open to be told so."""
        self.draining = True

    def close(self) -> None:
        """Stop accepting, end every connection, and remove a Unix socket file."""
        self._stopping = True
        os.write(self._wake_w, b"x")
        self._accept_thread.join(5)
        self.listener.close()
        with self._conn_lock:
            conns = list(self._conns) + self.pending.tokens()
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.watch.stop()
        if self.address.get("family") == "AF_UNIX":
            try:
                os.unlink(self.address["path"])
            except FileNotFoundError:
                pass
        for fd in (self._wake_r, self._wake_w, self._reserve_fd):
            if fd is not None:
                os.close(fd)
        self._reserve_fd = None

    def accepting(self) -> bool:
        """Whether the accept loop runs."""
        return self._accept_thread.is_alive() and not self._stopping

    def connection_count(self) -> int:
        with self._conn_lock:
            return len(self._conns)

    # -- accepting ---------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        self.listener.setblocking(False)
        try:
            while not self._stopping:
                for key, _ in sel.select(timeout=self.rejections.interval):
                    if key.fileobj is self.listener:
                        self._accept_ready()
                self.rejections.flush()  # the last counts of a burst, within a second
        finally:
            sel.close()
            self.rejections.flush(force=True)

    def _accept_ready(self) -> None:
        while not self._stopping:
            try:
                sock, peer = self.listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    self._shed_one(exc)
                    return
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EINTR):
                    continue
                logger.error("accept failed: %s", exc)
                return
            sock.setblocking(True)
            if sock.family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            who, peer_key = _peer_identity(sock, peer)
            if self.connection_count() >= self.config.max_connections:
                self._refuse_busy(sock, who)
                continue
            # Its handshake counts against the pending budget, not max_connections; a full
            # budget drops its oldest silent handshake (shut down here, closed by its thread).
            for _ in self.pending.admit(sock, peer_key, _has_unread, drop=self._drop_pending):
                self.stats.count("dropped_handshakes")
                self.rejections.record("dropped for a newer handshake", who)
            self.stats.count("connections")
            try:
                threading.Thread(target=self._serve, args=(sock, who), name="conn", daemon=True).start()
            except RuntimeError:  # out of threads: this one goes, the accept loop stays
                self.pending.release(sock)
                sock.close()
                self.rejections.record("no thread", who)

    @staticmethod
    def _drop_pending(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _busy_error(self) -> Busy:
        return Busy(f"connection limit of {self.config.max_connections} reached", retry_after=1.0)

    def _refuse_busy(self, sock: socket.socket, who: str) -> None:
        """Over max_connections: one ``busy`` frame instead of a challenge, then close."""
        self.stats.count("rejected_busy")
        try:
            sock.settimeout(0)
            protocol.FrameSocket(sock).send_bytes(protocol.encode_error(0, self._busy_error()))
        except OSError:
            pass
        finally:
            sock.close()
        self.rejections.record("busy", who)

    def _shed_one(self, exc: OSError) -> None:
        """Out of file descriptors: free the reserve fd, accept and close one connection so
        the listener is not left readable forever (a busy loop), then re-arm the reserve."""
        logger.error("accept failed: %s; shedding one connection", exc.strerror)
        self.stats.count("rejected_fd_limit")
        if self._reserve_fd is not None:
            os.close(self._reserve_fd)
            self._reserve_fd = None
        try:
            sock, _ = self.listener.accept()
            sock.close()
        except OSError:
            pass
        try:
            self._reserve_fd = os.open(os.devnull, os.O_RDONLY)
        except OSError:
            self._reserve_fd = None

    # -- one connection ----------------------------------------------------------------------

    def _serve(self, sock: socket.socket, who: str) -> None:
        conn = protocol.FrameSocket(sock)
        authenticated = False
        try:
            authenticated = self._handshake(conn, sock, who)
            if authenticated:
                self._request_loop(conn, sock, who)
        except Exception:
            logger.exception("connection %s: unexpected error", who)
        finally:
            if authenticated:
                with self._conn_lock:
                    self._conns.discard(sock)
            else:
                self.pending.release(sock)  # before close: a drop must never hit a reused fd
            conn.close()

    def _handshake(self, conn, sock, who) -> bool:
        """Authenticate under ``handshake_timeout``; on success move the connection from
        the pending budget to the authenticated ones. Failures are tallied, not logged
        one by one: an unauthenticated peer cannot make the log grow faster than a line
        a second."""
        try:
            with conn.deadline_in(self.config.handshake_timeout):
                protocol.server_handshake(conn, self.authkey, lambda: self.pending.answered(sock))
        except AuthenticationError:
            reason = "wrong authkey" if self.pending.release(sock) else None
            self._handshake_failed(reason, "rejected_auth", who)
            return False
        except (TimeoutError, socket.timeout):
            reason = "handshake timeout" if self.pending.release(sock) else None
            self._handshake_failed(reason, "handshake_timeouts", who)
            return False
        except (EOFError, OSError, BrowserdError):
            reason = "bad handshake" if self.pending.release(sock) else None
            self._handshake_failed(reason, "rejected_handshake", who)
            return False
        if not self.pending.release(sock):
            return False  # dropped just as it finished: its client retries
        with self._conn_lock:
            full = len(self._conns) >= self.config.max_connections
            if not full:
                self._conns.add(sock)
        if full:  # others authenticated first: its first request is answered busy
            self.stats.count("rejected_busy")
            self.rejections.record("busy", who)
            self._answer_busy(conn, who)
            return False
        return True

    def _handshake_failed(self, reason: str | None, event: str, who: str) -> None:
        """``reason`` None: the handshake was dropped for a newer one (already tallied)."""
        if reason is not None:
            self.stats.count(event)
            self.rejections.record(reason, who)

    def _answer_busy(self, conn, who) -> None:
        try:
            with conn.deadline_in(self.config.handshake_timeout):
                data = conn.recv_bytes(self.config.max_request_bytes)
        except (EOFError, OSError, TimeoutError, BrowserdError):
            return
        self._send(conn, protocol.encode_error(protocol.request_id_of(data), self._busy_error()), who)

    def _request_loop(self, conn, sock, who) -> None:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        while not self._stopping:
            if not poller.poll(self.config.idle_timeout * 1000):
                logger.info("connection %s closed: idle for %.0fs", who, self.config.idle_timeout)
                return
            try:
                with conn.deadline_in(self.config.handshake_timeout):
                    data = conn.recv_bytes(self.config.max_request_bytes)
            except EOFError:
                return
            except FrameTooLarge as exc:
                self.stats.count("bad_frames")
                logger.warning("connection %s: %s; closing", who, safe(exc))
                self._send(conn, protocol.encode_error(0, exc), who)
                return
            except (TimeoutError, socket.timeout):
                self.stats.count("stalled_frames")
                logger.warning("connection %s closed: frame not completed within %.1fs", who,
                               self.config.handshake_timeout)
                return
            except (OSError, BrowserdError) as exc:
                logger.info("connection %s closed while reading: %s", who, safe(exc))
                return
            reply = self._handle(data, sock, who)
            if reply is None or not self._send(conn, reply, who):
                return

    def _send(self, conn, data: bytes, who) -> bool:
        try:
            with conn.deadline_in(max(self.config.handshake_timeout, 30.0)):
                conn.send_bytes(data)
            return True
        except (OSError, TimeoutError) as exc:
            logger.info("connection %s: reply not delivered: %s", who, safe(exc))
            return False

    def _handle(self, data: bytes, sock, who) -> bytes | None:
        try:
            req = protocol.decode_request(data)
        except BadRequest as exc:
            self.stats.count("bad_frames")
            logger.warning("connection %s: bad request: %s", who, safe(exc))
            return protocol.encode_error(protocol.request_id_of(data), exc)
        try:
            if req.op == "fetch":
                return protocol.encode_result(req.id, self._fetch(req.args, sock, who))
            if req.op == "ping":
                return protocol.encode_result(req.id, {
                    "pong": True, "version": __version__, "protocol": protocol.PROTOCOL_VERSION,
                    "pid": os.getpid(), "draining": self.draining})
            if req.op == "status":
                return protocol.encode_result(req.id, self.status_provider())
            if req.op == "metrics":  # what /metrics serves, for machines without the HTTP port
                return protocol.encode_result(req.id, {"text": self.metrics_provider()})
            if req.op == "sites":  # with {"problems": true}: the load's problems too
                registry = self.registry
                if req.args.get("problems"):
                    return protocol.encode_result(req.id, {"sites": registry.describe(),
                                                           "problems": list(registry.problems)})
                return protocol.encode_result(req.id, registry.describe())
            raise UnknownOp(f"unknown op {req.op!r} (known: {', '.join(protocol.OPS)})")
        except _ClientGone:
            return None
        except BrowserdError as exc:
            return protocol.encode_error(req.id, exc)
        except Exception as exc:
            logger.exception("connection %s: op %s failed", who, safe(req.op, 64))
            return protocol.encode_error(req.id, Internal(f"{type(exc).__name__}: {exc}"))

    def _fetch(self, args: dict, sock, who) -> dict:
        t0 = time.monotonic()
        job = None
        outcome, queue_wait, browser = "internal", None, "-"
        try:
            if self.draining:
                raise ShuttingDown("browserd is shutting down")
            registry = self.registry  # one registry for the whole job, even across a reload
            job = parse_fetch(args, self.config, registry.sites, self.proxy_pools)
            site = registry.get(job.site)
            site.check_params(job.params)
            self.watch.watch(sock, job)
            try:
                page, info = self.pool.run(job, site)
            finally:
                self.watch.unwatch(sock)
            outcome, queue_wait, browser = "ok", info["queue_wait"], info["browser"]
            total = time.monotonic() - t0
            result = {"source": page.source, "url": page.url, "title": page.title, "site": job.site,
                      "status": page.status, "headers": page.headers, "mime_type": page.mime_type,
                      "redirects": page.redirects, "charset": page.charset,
                      "browser": info["browser"], "attempts": info["attempts"], "notes": job.notes,
                    "timing": {"queue_wait": round(queue_wait, 4), "fetch": round(total - queue_wait, 4),
                               "total": round(total, 4)}}
            result.update(job.outputs)  # job options' outputs (browserd.joboptions), when asked for
            if page.body is not None:  # not an HTML document: its bytes, base64 on the wire
                result["body"] = base64.b64encode(page.body).decode("ascii")
            return result
        except BrowserdError as exc:
            if job is not None and job.aborted == "client_gone":
                outcome = "client_gone"
                raise _ClientGone() from None
            outcome = exc.code
            raise
        finally:
            total = time.monotonic() - t0
            self.stats.job_done(outcome, total if outcome == "ok" else None, queue_wait,
                                site=job.site if job else "-")
            logger.info("job=%s client=%s site=%s url=%s outcome=%s browser=%s queue_wait=%s total=%.3fs",
                        job.id if job else "-", who, safe(job.site if job else args.get("site", "-"), 100),
                        safe(job.url if job else args.get("url"), 200), outcome, safe(browser, 100),
                        f"{queue_wait:.3f}s" if queue_wait is not None else "-", total)
