"""The proxy's lean upstream client against raw local servers that answer exactly as told."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.gateway.proxy.upstream import UpstreamError, UpstreamPool, target

Reply = Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]  # True: keep the connection open


class RawServer:
    """Reads one request at a time (headers + Content-Length body) and lets `reply` answer it."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.connections = 0
        self.requests: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                if not await self.reply(request, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


Serve = Callable[[Reply], Awaitable[tuple[RawServer, str]]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[asyncio.Server] = []

    async def start(reply: Reply) -> tuple[RawServer, str]:
        raw = RawServer(reply)
        server = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return raw, f"http://127.0.0.1:{port}/v1/chat/completions"

    yield start
    for s in servers:
        s.close()


def ok(body: bytes = b'{"ok": true}', extra: bytes = b"") -> Reply:
    async def reply(_: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + extra
                + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        await w.drain()
        return True
    return reply


async def test_requests_share_one_keep_alive_connection_and_carry_body_and_headers(serve: Serve) -> None:
    raw, url = await serve(ok(extra=b"Retry-After: 2\r\n"))
    pool = UpstreamPool()
    first = await pool.post(url, b'{"model": "m"}', {"Authorization": "Bearer k"}, 5)
    second = await pool.post(url, b"{}", {}, 5)
    assert (first.status, first.body, first.headers["retry-after"]) == (200, b'{"ok": true}', "2")
    assert second.status == 200 and raw.connections == 1
    request = raw.requests[0]
    assert request.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert f"Host: {url.split('/')[2]}".encode() in request and b"Authorization: Bearer k" in request
    assert request.endswith(b'\r\n\r\n{"model": "m"}')
    pool.close()


async def test_a_chunked_answer_is_joined(serve: Serve) -> None:
    async def chunked(_: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 429 Too Many Requests\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        await w.drain()
        return True

    _, url = await serve(chunked)
    answer = await UpstreamPool().post(url, b"{}", {}, 5)
    assert (answer.status, answer.body) == (429, b"hello world")


async def test_an_interim_answer_is_skipped_for_the_final_one(serve: Serve) -> None:
    async def interim(request: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n")
        return await ok(b"final")(request, w)

    raw, url = await serve(interim)
    pool = UpstreamPool()
    answer = await pool.post(url, b"{}", {}, 5)
    assert (answer.status, answer.body, "Link" in answer.headers) == (200, b"final", False)
    assert (await pool.post(url, b"{}", {}, 5)).body == b"final" and raw.connections == 1


async def test_an_answer_delimited_by_the_end_of_the_connection_is_complete(serve: Serve) -> None:
    async def until_close(_: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
        await w.drain()
        return False

    raw, url = await serve(until_close)
    pool = UpstreamPool()
    assert (await pool.post(url, b"{}", {}, 5)).body == b"all of it"
    assert (await pool.post(url, b"{}", {}, 5)).body == b"all of it"
    assert raw.connections == 2  # never reused


async def test_a_connection_the_upstream_closed_while_idle_is_not_used_again(serve: Serve) -> None:
    raw, url = await serve(ok())
    pool = UpstreamPool()
    await pool.post(url, b"{}", {}, 5)
    raw.writers[0].close()  # the server's keep-alive timeout
    await asyncio.sleep(0.05)
    assert (await pool.post(url, b"{}", {}, 5)).status == 200
    assert raw.connections == 2 and len(raw.requests) == 2  # nothing was sent twice


async def test_a_slow_upstream_times_out_and_its_connection_is_dropped(serve: Serve) -> None:
    slow = asyncio.Event()

    async def reply(request: bytes, w: asyncio.StreamWriter) -> bool:
        if not slow.is_set():
            slow.set()
            await asyncio.sleep(5)
        return await ok()(request, w)

    raw, url = await serve(reply)
    pool = UpstreamPool()
    with pytest.raises(TimeoutError):
        await pool.post(url, b"{}", {}, 0.2)
    assert (await pool.post(url, b"{}", {}, 5)).status == 200
    assert raw.connections == 2


async def test_an_answer_cut_short_or_malformed_is_an_upstream_error(serve: Serve) -> None:
    async def cut(_: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a part")
        await w.drain()
        return False

    async def garbage(_: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(b"SMTP ready\r\n\r\n")
        await w.drain()
        return True

    for reply, words in ((cut, "before the answer was complete"), (garbage, "malformed HTTP")):
        _, url = await serve(reply)
        with pytest.raises(UpstreamError, match=words):
            await UpstreamPool().post(url, b"{}", {}, 5)


async def test_a_refused_connection_is_an_os_error_and_a_header_with_a_line_break_is_refused() -> None:
    pool = UpstreamPool()
    with pytest.raises(OSError):
        await pool.post("http://127.0.0.1:9/v1/x", b"{}", {}, 5)
    with pytest.raises(ValueError, match="Authorization"):
        await pool.post("http://127.0.0.1:9/v1/x", b"{}", {"Authorization": "Bearer k\r\nX: y"}, 5)


def test_targets_keep_the_query_and_name_non_default_ports_in_the_host() -> None:
    assert target("https://api.example.com/v1/chat/completions?x=1") == (
        ("https", "api.example.com", 443), "/v1/chat/completions?x=1", "api.example.com")
    assert target("http://10.0.0.2:8080/v1/embeddings").host == "10.0.0.2:8080"
    with pytest.raises(ValueError, match="not an http"):
        target("ftp://example.com/x")


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, signed by its own key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp / "cert.pem", tmp / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


async def test_https_upstreams_are_verified_and_reused(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    raw = RawServer(ok(b'{"tls": true}'))
    server = await asyncio.start_server(raw.handle, "127.0.0.1", 0, ssl=server_ctx)
    url = f"https://localhost:{server.sockets[0].getsockname()[1]}/v1/chat/completions"
    try:
        trusting = UpstreamPool(ssl.create_default_context(cafile=str(cert)))
        assert (await trusting.post(url, b"{}", {}, 5)).body == b'{"tls": true}'
        assert (await trusting.post(url, b"{}", {}, 5)).status == 200
        assert raw.connections == 1
        trusting.close()
        with pytest.raises(ssl.SSLCertVerificationError):  # the system's CAs do not know it
            await UpstreamPool().post(url, b"{}", {}, 5)
    finally:
        server.close()
