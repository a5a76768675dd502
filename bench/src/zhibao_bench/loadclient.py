"""A minimal keep-alive HTTP/1.1 load client, cheap enough not to measure itself.

Raw asyncio streams, pre-encoded requests, several connections. It runs in
its own process (see :func:`run_in_process`) and reports its own CPU share.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlparse


@dataclass
class LoadResult:
    """What a load run measured (latencies in milliseconds)."""

    sent: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    cpu_s: float = 0.0
    #: Wall-clock time (time.time()) each request was due (open loop) or queued (closed loop).
    send_times: list[float] = field(default_factory=list)
    #: Latest a request went out after it was due (open loop: the client fell behind).
    max_lag_ms: float = 0.0
    #: Requests that went out more than a second after they were due (open loop).
    late_over_1s: int = 0

    @property
    def wall_s(self) -> float:
        """Wall-clock duration of the run."""
        return self.finished - self.started

    @property
    def cpu_share(self) -> float:
        """The client's CPU time as a share of one core over the run."""
        return self.cpu_s / self.wall_s if self.wall_s else 0.0


def encode_post(url: str, path: str, body: bytes, token: str, content_type: str) -> bytes:
    """One pre-encoded HTTP/1.1 POST request."""
    host = urlparse(url).netloc
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def _connection(
    url: str, requests: asyncio.Queue[tuple[bytes, float] | None], result: LoadResult
) -> None:
    parsed = urlparse(url)
    reader, writer = await asyncio.open_connection(parsed.hostname, parsed.port)
    try:
        while (item := await requests.get()) is not None:
            request, due = item
            now = time.perf_counter()
            if due:
                result.max_lag_ms = max(result.max_lag_ms, (now - due) * 1000)
                result.late_over_1s += now - due > 1.0
            start = max(now, due)
            writer.write(request)
            status = await _read_response(reader)
            result.latencies_ms.append((time.perf_counter() - start) * 1000)
            result.statuses[status] = result.statuses.get(status, 0) + 1
            result.sent += 1
    finally:
        writer.close()


async def _feed(
    queue: asyncio.Queue[tuple[bytes, float] | None],
    requests: Sequence[bytes],
    rate: float | None,
    connections: int,
    result: LoadResult,
) -> None:
    start = time.perf_counter()
    wall = time.time()
    for i, request in enumerate(requests):
        due = start + i / rate if rate else 0.0
        if rate:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            result.send_times.append(wall + (due - start))
        else:
            result.send_times.append(time.time())
        await queue.put((request, due))
    for _ in range(connections):
        await queue.put(None)


async def run_load(
    url: str, requests: Sequence[bytes], *, connections: int, rate: float | None = None
) -> LoadResult:
    """Send pre-encoded requests over ``connections`` keep-alive connections.

    Closed loop when ``rate`` is None (as fast as the server answers), else
    open loop at ``rate`` requests per second (latency counted from when each
    request was due, so queueing in the client is not hidden).
    """
    result = LoadResult()
    queue: asyncio.Queue[tuple[bytes, float] | None] = asyncio.Queue(maxsize=connections * 4)
    cpu_before = time.process_time()
    result.started = time.perf_counter()
    workers = [asyncio.create_task(_connection(url, queue, result)) for _ in range(connections)]
    await _feed(queue, requests, rate, connections, result)
    await asyncio.gather(*workers)
    result.finished = time.perf_counter()
    result.cpu_s = time.process_time() - cpu_before
    return result


def _child(
    url: str,
    requests: Sequence[bytes],
    connections: int,
    rate: float | None,
    pipe: multiprocessing.connection.Connection,
) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    load = run_load(url, requests, connections=connections, rate=rate)
    try:  # a cheaper event loop keeps the client's own cost small
        import uvloop
    except ImportError:
        pipe.send(asyncio.run(load))
    else:
        pipe.send(uvloop.run(load))
    pipe.close()


def run_in_process(
    url: str, requests: Sequence[bytes], *, connections: int, rate: float | None = None
) -> LoadResult:
    """Run :func:`run_load` in a separate process and return its result."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(url, requests, connections, rate, sender))
    child.start()
    sender.close()  # so a crashed child shows as EOFError here, not a hang
    try:
        result: LoadResult = receiver.recv()
    except EOFError:
        child.join()
        raise RuntimeError(f"the load client died (exit code {child.exitcode})") from None
    child.join()
    return result


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered)) - 1))
    return ordered[rank]


def encode_get(url: str, path: str, token: str) -> bytes:
    """One pre-encoded HTTP/1.1 GET request."""
    host = urlparse(url).netloc
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
