"""A small, fair HTTP/1.1 load generator: asyncio, standard library only, raw sockets, precomputed requests.

Why not ``requests`` or a thread pool: on a 2-core machine the client competes with the server for CPU, so it must
be as cheap per request as possible and identical for every target. Requests are fully rendered bytes before the
clock starts; the client only writes them and parses the status line and ``Content-Length``. Connections are kept
alive when the server allows it (gunicorn's sync workers answer ``Connection: close``, so each request then opens a
new connection — the same for the connector and the baseline).

* :func:`closed_loop` — N connections, each sends its next request as soon as the previous answer arrived: the
  maximum throughput.
* :func:`open_loop` — requests start on a fixed schedule (``rate`` per second) whatever the server does; latency is
  measured from the *scheduled* start, so a stalled server cannot hide its queueing (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from .common import percentile


@dataclass
class RunStats:
    mode: str
    seconds: float = 0.0
    ok: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    late_starts: int = 0  # open loop: requests that started > 5 ms after their slot (client saturated)
    client_cpu_s: float = 0.0

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def summary(self) -> dict:
        lat = self.latencies_ms
        return {
            "mode": self.mode,
            "seconds": round(self.seconds, 2),
            "ok": self.ok,
            "errors": self.errors,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "rps": round(self.rps, 1),
            "p50_ms": _r(percentile(lat, 50)),
            "p90_ms": _r(percentile(lat, 90)),
            "p99_ms": _r(percentile(lat, 99)),
            "max_ms": _r(max(lat) if lat else None),
            "late_starts": self.late_starts,
            "client_cpu_ms_per_request": round(self.client_cpu_s * 1000 / max(1, self.ok + self.errors), 3),
        }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def render(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class _Conn:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, payload: bytes, timeout: float) -> int:
        """Send one rendered request, read the whole answer; return its status. Reconnects as needed."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(payload)
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        status = int(head[9:12])
        length = 0
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            lname = name.strip().lower()
            if lname == b"content-length":
                length = int(value.strip())
            elif lname == b"connection" and value.strip().lower() == b"close":
                close = True
        if length:
            await asyncio.wait_for(self.reader.readexactly(length), timeout)
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _closed(
    host: str, port: int, requests: Iterator[bytes], conns: int, seconds: float, timeout: float
):
    stats = RunStats(mode=f"closed loop, {conns} connections")
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        conn = _Conn(host, port)
        while time.perf_counter() < deadline:
            try:
                payload = next(requests)
            except StopIteration:
                return
            started = time.perf_counter()
            try:
                status = await conn.request(payload, timeout)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                stats.errors += 1
                conn.close()
                continue
            stats.latencies_ms.append((time.perf_counter() - started) * 1000)
            stats.statuses[status] = stats.statuses.get(status, 0) + 1
            if 200 <= status < 300:
                stats.ok += 1
            else:
                stats.errors += 1
        conn.close()

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(client() for _ in range(conns)))
    stats.seconds = time.perf_counter() - t0
    stats.client_cpu_s = time.process_time() - cpu0
    return stats


async def _open(host: str, port: int, requests: Sequence[bytes], rate: float, timeout: float):
    stats = RunStats(mode=f"open loop, {rate:g} requests/s")
    idle: list[_Conn] = []
    interval = 1.0 / rate

    async def one(payload: bytes, scheduled: float) -> None:
        conn = idle.pop() if idle else _Conn(host, port)
        try:
            status = await conn.request(payload, timeout)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            stats.errors += 1
            conn.close()
            return
        stats.latencies_ms.append((time.perf_counter() - scheduled) * 1000)
        stats.statuses[status] = stats.statuses.get(status, 0) + 1
        if 200 <= status < 300:
            stats.ok += 1
        else:
            stats.errors += 1
        if conn.writer is not None:
            idle.append(conn)

    tasks = []
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for i, payload in enumerate(requests):
        scheduled = t0 + i * interval
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif -delay > 0.005:
            stats.late_starts += 1
        tasks.append(asyncio.ensure_future(one(payload, scheduled)))
    await asyncio.gather(*tasks)
    stats.seconds = len(requests) * interval
    stats.client_cpu_s = time.process_time() - cpu0
    return stats


def closed_loop(
    host: str, port: int, requests: Iterator[bytes], *, conns: int, seconds: float, timeout: float = 30
) -> RunStats:
    return asyncio.run(_closed(host, port, requests, conns, seconds, timeout))


def open_loop(
    host: str, port: int, requests: Sequence[bytes], *, rate: float, timeout: float = 30
) -> RunStats:
    return asyncio.run(_open(host, port, requests, rate, timeout))
