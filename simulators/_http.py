"""Shared plumbing for the simulators: a threaded HTTP/1.1 server, a tiny router, JSON helpers, fault injection.

The server supports what real networks do to a client and what the simulators must reproduce:

* keep-alive connections (``requests.Session`` reuses them), with per-connection tracking;
* *refusing* connections for a while: the listening socket is closed (new connections get ``ECONNREFUSED``) and
  idle keep-alive connections are shut down, then the port is bound again;
* aborting a connection without a response (optionally with a TCP reset), e.g. "commit then drop".
"""

from __future__ import annotations

import json
import random
import re
import select
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

JSON_TYPE = "application/json"


# --------------------------------------------------------------------------------------------------- requests/responses


@dataclass
class Response:
    status: int
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = JSON_TYPE


class HttpError(Exception):
    """Raise from a handler to answer with ``response`` (an error body in the simulated system's own format)."""

    def __init__(self, response: Response) -> None:
        super().__init__(f"HTTP {response.status}")
        self.response = response


class AbortConnection(Exception):
    """Close the client connection without sending any response. ``reset=True`` sends a TCP RST."""

    def __init__(self, reset: bool = False) -> None:
        super().__init__("abort connection")
        self.reset = reset


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(payload: Any, *, compact: bool = True) -> bytes:
    if compact:
        return json.dumps(payload, separators=(",", ":"), default=_json_default).encode()
    return json.dumps(payload, indent=2, default=_json_default).encode()


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, dumps(payload), dict(headers or {}))


def empty_response(status: int = 204, headers: dict[str, str] | None = None) -> Response:
    return Response(status, None, dict(headers or {}))


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Any  # email.message.Message: case-insensitive .get()
    body: bytes
    server: SimServer
    params: dict[str, str] = field(default_factory=dict)
    route_name: str = ""

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self, error: Callable[[str], Response]) -> Any:
        """The JSON body; on invalid JSON raise ``HttpError(error(message))``."""
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(error(f"Request body is not valid JSON: {exc}")) from exc

    def sleep(self, seconds: float) -> None:
        """Sleep, but wake up early when the server stops."""
        if seconds > 0:
            self.server.stopping.wait(seconds)


# -------------------------------------------------------------------------------------------------------------- router

Handler = Callable[[Request], Response]


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    name: str


class Router:
    """Routes ``METHOD`` + path templates like ``/stores/{hash}/v2/orders/{id:int}`` to handlers."""

    _PARAM = re.compile(r"{(\w+)(?::(int|name|path|any))?}")

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, template: str, handler: Handler, name: str | None = None) -> None:
        def repl(match: re.Match[str]) -> str:
            kind = match.group(2)
            body = {"int": r"\d+", "name": r"\w+", "path": r".+", "any": r"[^/]*"}.get(kind or "", r"[^/]+")
            return f"(?P<{match.group(1)}>{body})"

        regex = ""
        pos = 0
        for match in self._PARAM.finditer(template):
            regex += re.escape(template[pos : match.start()]) + repl(match)
            pos = match.end()
        regex += re.escape(template[pos:])
        self.routes.append(
            Route(method.upper(), re.compile(f"^{regex}/?$"), handler, name or f"{method} {template}")
        )

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], set[str]]:
        allowed: set[str] = set()
        for route in self.routes:
            m = route.pattern.match(path)
            if not m:
                continue
            if route.method == method:
                return route, m.groupdict(), allowed
            allowed.add(route.method)
        return None, {}, allowed


# ------------------------------------------------------------------------------------------------------------- faults

FAULT_DEFAULTS: dict[str, Any] = {
    "latency_ms": 0,  # added to every affected request
    "jitter_ms": 0,  # plus uniform(0, jitter_ms)
    "error_rate": 0.0,  # probability of a random 5xx
    "error_status": 503,
    "fail_next": 0,  # the next N affected requests get fail_status
    "fail_status": 500,
    "reset_next": 0,  # the next N affected requests: connection closed at once with a TCP reset, nothing done
    "timeout_next": 0,  # the next N affected requests sleep timeout_ms first ...
    "timeout_ms": 0,
    "timeout_commits": False,  # ... then either drop the connection (False) or process and answer late (True)
    "drop_after_commit_next": 0,  # the next N successful writes are committed, then the connection is dropped
    "fail_after_commit_next": 0,  # the next N successful writes are committed, then answered with fail_status
    "methods": None,  # None = every method; else e.g. ["POST"]: faults only hit these methods
}


class FaultError(ValueError):
    pass


class Faults:
    """Per-process fault settings, changeable at runtime through ``/_sim/faults``. Thread-safe."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._settings = dict(FAULT_DEFAULTS)
        self.refuse_until = 0.0  # time.monotonic() deadline; handled by the server
        self.counters: dict[str, int] = {}

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            out = dict(self._settings)
        out["refusing_ms_left"] = max(0, int((self.refuse_until - time.monotonic()) * 1000))
        return out

    def update(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Merge ``changes``. ``{"clear": true}`` resets everything first. ``refuse_for_ms`` starts a refusal."""
        changes = dict(changes)
        refuse_ms = changes.pop("refuse_for_ms", None)
        seed = changes.pop("seed", None)
        with self._lock:
            if changes.pop("clear", False):
                self._settings = dict(FAULT_DEFAULTS)
                self.refuse_until = 0.0
            unknown = set(changes) - set(FAULT_DEFAULTS)
            if unknown:
                raise FaultError(f"unknown fault setting(s): {', '.join(sorted(unknown))}")
            for key, value in changes.items():
                default = FAULT_DEFAULTS[key]
                if key == "methods":
                    value = None if value is None else [str(m).upper() for m in value]
                elif isinstance(default, bool):
                    value = bool(value)
                elif isinstance(default, int):
                    value = int(value)
                elif isinstance(default, float):
                    value = float(value)
                    if key == "error_rate" and not 0.0 <= value <= 1.0:
                        raise FaultError("error_rate must be between 0 and 1")
                self._settings[key] = value
            if seed is not None:
                self._rng.seed(seed)
        if refuse_ms is not None:
            self.refuse_until = time.monotonic() + float(refuse_ms) / 1000.0
        return self.snapshot()

    def clear(self) -> None:
        self.update({"clear": True})

    def get(self, key: str) -> Any:
        with self._lock:
            return self._settings[key]

    def applies_to(self, method: str) -> bool:
        methods = self.get("methods")
        return methods is None or method in methods

    def take(self, counter: str) -> bool:
        """Consume one unit of a ``*_next`` counter; True if one was available."""
        with self._lock:
            if self._settings[counter] > 0:
                self._settings[counter] -= 1
                self.counters[counter] = self.counters.get(counter, 0) + 1
                return True
            return False

    def latency_s(self) -> float:
        with self._lock:
            base = self._settings["latency_ms"]
            jitter = self._settings["jitter_ms"]
            extra = self._rng.uniform(0, jitter) if jitter else 0.0
        return (base + extra) / 1000.0

    def random_error(self) -> bool:
        with self._lock:
            rate = self._settings["error_rate"]
            hit = rate > 0 and self._rng.random() < rate
            if hit:
                self.counters["random_errors"] = self.counters.get("random_errors", 0) + 1
            return hit

    def count(self, name: str) -> None:
        with self._lock:
            self.counters[name] = self.counters.get(name, 0) + 1


def apply_pre_faults(req: Request, faults: Faults, error: Callable[[int], Response]) -> Response | None:
    """Faults that happen before the request is processed. Returns an error response, or None to go on.

    ``error(status)`` builds the simulated system's own 5xx body.
    """
    if not faults.applies_to(req.method):
        return None
    if faults.take("reset_next"):
        raise AbortConnection(reset=True)
    req.sleep(faults.latency_s())
    if faults.take("timeout_next"):
        req.sleep(faults.get("timeout_ms") / 1000.0)
        if not faults.get("timeout_commits"):
            raise AbortConnection(reset=False)
    if faults.take("fail_next"):
        return error(faults.get("fail_status"))
    if faults.random_error():
        return error(faults.get("error_status"))
    return None


def apply_post_commit_faults(
    req: Request, faults: Faults, error: Callable[[int], Response]
) -> Response | None:
    """Faults that happen after a write was committed (the entry exists, the client does not learn it)."""
    if not faults.applies_to(req.method):
        return None
    if faults.take("drop_after_commit_next"):
        raise AbortConnection(reset=False)
    if faults.take("fail_after_commit_next"):
        return error(faults.get("fail_status"))
    return None


# ------------------------------------------------------------------------------------------------------------- server


class SimApp:
    """What a simulator implements. ``handle`` may raise :class:`HttpError` or :class:`AbortConnection`."""

    name = "simulator"
    verbose = False
    faults: Faults

    def handle(self, req: Request) -> Response:  # pragma: no cover - interface
        raise NotImplementedError

    def internal_error(self, message: str) -> Response:
        return json_response(500, {"error": message})

    def close(self) -> None:
        """Stop background work (e.g. webhook delivery)."""


class _Conn:
    __slots__ = ("busy", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.busy = False


class SimHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SimServer/1.0"
    sys_version = ""
    timeout = 60  # idle keep-alive connections are closed after this many seconds
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid the 40 ms delayed-ACK stall
    server: SimServer

    def handle(self) -> None:
        conn = self.server.track(self.connection)
        self._conn = conn
        try:
            self.close_connection = True
            self.handle_one_request()
            while not self.close_connection:
                conn.busy = False
                if self.server.refusing:
                    break
                self.handle_one_request()
        except (ConnectionError, OSError):
            self.close_connection = True
        finally:
            self.server.untrack(self.connection)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        self._conn.busy = True
        app = self.server.app
        body = self._read_body()
        parts = urlsplit(self.path)
        req = Request(
            method=self.command,
            path=unquote(parts.path),
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
            server=self.server,
        )
        try:
            if self.server.refusing:
                raise AbortConnection(reset=True)
            response = app.handle(req)
        except HttpError as exc:
            response = exc.response
        except AbortConnection as exc:
            self._abort(exc.reset)
            return
        except Exception as exc:  # a simulator bug must not kill the connection silently
            if app.verbose:
                import traceback

                traceback.print_exc()
            response = app.internal_error(f"{type(exc).__name__}: {exc}")
        self._send(response)

    def _abort(self, reset: bool) -> None:
        self.close_connection = True
        try:
            if reset:  # close with SO_LINGER 0: the client gets a TCP RST ("connection reset by peer")
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            else:  # orderly close: the client sees the connection end without a response
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        # from now on the buffered writer must not try to flush into the dead socket
        self.wfile = _NullWriter()

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        if response.body is not None:
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
        elif response.status not in (204, 304):
            self.send_header("Content-Length", "0")
        for key, value in response.headers.items():
            self.send_header(key, value)
        if self.close_connection or self.server.refusing:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if response.body and self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.app.verbose:
            sys.stderr.write(f"[{self.server.app.name}] {self.address_string()} {format % args}\n")


class _NullWriter:
    closed = False

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class SimServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], app: SimApp) -> None:
        self.app = app
        self.stopping = threading.Event()
        self._loop_done = threading.Event()
        self._loop_done.set()
        self._listening = False
        self._conns: dict[int, _Conn] = {}
        self._conns_lock = threading.Lock()
        super().__init__(address, SimHandler)
        self._listening = True

    # no reverse DNS lookup (HTTPServer.server_bind calls getfqdn, which can take seconds)
    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        if ":" in str(host):
            host = f"[{host}]"
        return f"http://{host}:{port}"

    @property
    def refusing(self) -> bool:
        return self.app.faults.refuse_until > time.monotonic()

    # ---- connection tracking
    def track(self, sock: socket.socket) -> _Conn:
        conn = _Conn(sock)
        with self._conns_lock:
            self._conns[id(sock)] = conn
        return conn

    def untrack(self, sock: socket.socket) -> None:
        with self._conns_lock:
            self._conns.pop(id(sock), None)

    def _drop_idle_connections(self, include_busy: bool = False) -> None:
        with self._conns_lock:
            conns = list(self._conns.values())
        for conn in conns:
            if conn.busy and not include_busy:
                continue
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # ---- serve loop with "refuse connections for a while"
    def serve_forever(self, poll_interval: float = 0.05) -> None:
        self._loop_done.clear()
        try:
            while not self.stopping.is_set():
                if self.refusing:
                    if self._listening:
                        self._listening = False
                        self.socket.close()
                        self._drop_idle_connections()
                    self.stopping.wait(
                        min(poll_interval, max(0.0, self.app.faults.refuse_until - time.monotonic()))
                    )
                    continue
                if not self._listening:
                    self.socket = socket.socket(self.address_family, self.socket_type)
                    self.server_bind()
                    self.server_activate()
                    self._listening = True
                try:
                    ready, _, _ = select.select([self.socket], [], [], poll_interval)
                except (OSError, ValueError):
                    continue
                if ready:
                    self._handle_request_noblock()
                self.service_actions()
        finally:
            self._loop_done.set()

    def shutdown(self) -> None:
        self.stopping.set()
        self._loop_done.wait(5)

    def server_close(self) -> None:
        if self._listening:
            self._listening = False
            super().server_close()
        self._drop_idle_connections(include_busy=True)

    def stop(self) -> None:
        """Stop serving, close every connection and stop the simulator's background work."""
        self.shutdown()
        self.server_close()
        self.app.close()


def start_in_thread(app: SimApp, host: str = "127.0.0.1", port: int = 0) -> tuple[SimServer, str]:
    """Serve ``app`` from a daemon thread. Returns ``(server, base_url)``; call ``server.stop()`` when done."""
    server = SimServer((host, port), app)
    thread = threading.Thread(target=server.serve_forever, name=f"{app.name}-server", daemon=True)
    thread.start()
    return server, server.base_url


def run_forever(app: SimApp, host: str, port: int, banner: Callable[[str], dict[str, Any]]) -> None:
    """Serve in the foreground until SIGINT/SIGTERM. Prints ``banner(base_url)`` as one JSON line on stdout first."""
    server = SimServer((host, port), app)

    def _stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    sys.stdout.write(json.dumps(banner(server.base_url)) + "\n")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        app.close()


# ------------------------------------------------------------------------------------------------------------ helpers


def parse_bool(value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    return value.strip().lower() in ("1", "true", "yes", "on")
