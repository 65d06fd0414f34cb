"""A lean HTTP/1.1 keep-alive client for the proxy's non-streaming upstream calls.

aiohttp's client spends ~75 us of CPU per request on machinery the proxy does not use (cookie
jars, redirects, signals, per-request timers, payload objects); with the gateway's own server side
that was the larger part of what a proxied request cost (ops/bench/proxy.py). This client writes
the request in one `transport.write`, parses the answer with llhttp (`httptools`, the parser
uvicorn uses), and keeps idle connections per origin. Streams and probes stay on aiohttp.

Errors are `UpstreamError` (an `OSError`, like a refused connection) or `TimeoutError`, so the
proxy fails over on them the same way. A request is never re-sent: a connection the upstream
closed while idle is noticed (its EOF arrives while it waits in the pool) and dropped before use.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from functools import lru_cache
from typing import NamedTuple

import httptools
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

IDLE_MAX_S = 30.0  # below the usual server keep-alive timeouts (60-75 s)
IDLE_PER_ORIGIN = 256


class UpstreamError(OSError):
    """The upstream broke the exchange (closed early, spoke malformed HTTP)."""


class Answer(NamedTuple):
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


class Target(NamedTuple):
    """Where a URL's requests go: the pool key, the request line's path and the Host header."""

    origin: tuple[str, str, int]
    path: str
    host: str


@lru_cache(maxsize=1024)
def target(url: str) -> Target:
    u = URL(url)
    if u.scheme not in ("http", "https") or not u.host:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = u.port or (443 if u.scheme == "https" else 80)
    host = u.host if u.is_default_port() else f"{u.host}:{port}"
    return Target((u.scheme, u.host, port), u.raw_path_qs or "/", host)


class _Connection(asyncio.Protocol):
    def __init__(self, origin: tuple[str, str, int]) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[Answer] | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._headers: CIMultiDict[str] = CIMultiDict()
        self._body: list[bytes] = []
        self._headers_done = False
        self.reusable = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._parser is None:  # bytes nobody asked for: this connection is not trustworthy
            self._close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamError("upstream asked to switch protocols"))
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"malformed HTTP from upstream: {exc}"))

    def eof_received(self) -> bool | None:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._headers_done and self._until_close():
            self._finish(reusable=False)
            return
        waiter.set_exception(UpstreamError(f"upstream closed the connection before the answer was complete"
                                           f"{f': {exc}' if exc else ''}"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.add(name.decode("latin-1"), value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        assert self._parser is not None
        if 100 <= self._parser.get_status_code() < 200:  # interim (100 Continue, 103): the answer follows
            self._headers, self._body, self._headers_done = CIMultiDict(), [], False
            return
        self._finish(reusable=self._parser.should_keep_alive())

    # the exchange
    def send(self, data: bytes) -> asyncio.Future[Answer]:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._parser = httptools.HttpResponseParser(self)
        self._headers, self._body, self._headers_done, self.reusable = CIMultiDict(), [], False, False
        self.transport.write(data)
        return self._waiter

    def _until_close(self) -> bool:
        """A response delimited by the end of the connection (no length, not chunked)."""
        h = self._headers
        return "Content-Length" not in h and "chunked" not in h.get("Transfer-Encoding", "").lower()

    def _finish(self, *, reusable: bool) -> None:
        assert self._parser is not None and self._waiter is not None
        answer = Answer(self._parser.get_status_code(), CIMultiDictProxy(self._headers), b"".join(self._body))
        self.reusable = reusable and not self.closed
        self._parser = None
        if not self._waiter.done():
            self._waiter.set_result(answer)

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        self._close()

    def _close(self) -> None:
        self.closed = True
        self._parser = None
        if self.transport is not None:
            self.transport.close()


class UpstreamPool:
    """Keep-alive connections per origin (scheme, host, port), most recently used first."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = {}
        self._ssl = ssl_context
        self._closed = False

    async def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
        """POST `body` to `url` and read the whole answer within `timeout` seconds."""
        t = target(url)
        head = [f"POST {t.path} HTTP/1.1\r\nHost: {t.host}\r\nContent-Length: {len(body)}\r\n",
                "Accept-Encoding: identity\r\n"]
        for k, v in headers.items():
            if "\r" in v or "\n" in v:
                raise ValueError(f"header {k!r} holds a line break")
            head.append(f"{k}: {v}\r\n")
        head.append("\r\n")
        data = "".join(head).encode("latin-1") + body
        conn: _Connection | None = None
        try:
            async with asyncio.timeout(timeout):
                conn = self._take(t.origin) or await self._connect(t.origin)
                answer = await conn.send(data)
        except BaseException:
            if conn is not None:
                conn._close()  # an exchange cut short leaves the connection in an unknown state
            raise
        self._give_back(conn)
        return answer

    def _take(self, origin: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_MAX_S:
                return conn
            conn._close()
        return None

    async def _connect(self, origin: tuple[str, str, int]) -> _Connection:
        scheme, host, port = origin
        context = (self._ssl or _default_ssl()) if scheme == "https" else None
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(
            lambda: _Connection(origin), host, port, ssl=context, server_hostname=host if context else None)
        return conn

    def _give_back(self, conn: _Connection) -> None:
        idle = self._idle.setdefault(conn.origin, deque())
        if self._closed or not conn.reusable or conn.closed or len(idle) >= IDLE_PER_ORIGIN:
            conn._close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    def close(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            while idle:
                idle.pop()._close()


@lru_cache(maxsize=1)
def _default_ssl() -> ssl.SSLContext:
    return ssl.create_default_context()
