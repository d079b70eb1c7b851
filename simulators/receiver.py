"""A recording HTTP receiver for webhook tests: stores every request and answers with a scripted status.

receiver = Receiver.start()            # 127.0.0.1, ephemeral port
url = receiver.url("/webhooks/bigcommerce/acme/")
receiver.statuses = [500, 500]         # the next two requests fail, then the default status (200)
receiver.wait_for(3, timeout=5)        # block until 3 requests arrived
receiver.requests[0].headers["webhook-id"]
receiver.stop()
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    at: float

    def json(self) -> Any:
        import json

        return json.loads(self.body)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        owner = self.server.owner
        status = owner._record(
            Received(
                method=self.command,
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                at=time.time(),
            )
        )
        if owner.delay_s:
            time.sleep(owner.delay_s)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_PUT = do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: Receiver


class Receiver:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = _Server((host, port), _Handler)
        self._server.owner = self
        self._cond = threading.Condition()
        self.requests: list[Received] = []
        self.statuses: list[int] = []  # consumed one per request, then default_status
        self.default_status = 200
        self.delay_s = 0.0
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @classmethod
    def start(cls, host: str = "127.0.0.1", port: int = 0) -> Receiver:
        receiver = cls(host, port)
        receiver._thread.start()
        return receiver

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def _record(self, received: Received) -> int:
        with self._cond:
            self.requests.append(received)
            status = self.statuses.pop(0) if self.statuses else self.default_status
            self._cond.notify_all()
            return status

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"expected {count} requests, got {len(self.requests)}")
                self._cond.wait(left)
            return list(self.requests)

    def clear(self) -> None:
        with self._cond:
            self.requests.clear()
            self.statuses.clear()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
