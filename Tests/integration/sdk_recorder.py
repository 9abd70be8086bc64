"""A recording httpx2 transport for the official Python SDK: keeps every request and the bytes of every response
body the SDK reads, so each test can validate all traffic afterwards (test_client_sdk.py, test_conformance.py).
"""

from __future__ import annotations

import asyncio
import json
import warnings
from dataclasses import dataclass, field
from typing import Any

import httpx2


@dataclass
class Exchange:
    method: str
    url: str
    request_headers: dict[str, str]
    request_body: bytes
    status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)
    complete: bool = False  # the body was read to its end (not aborted by the client)

    @property
    def body(self) -> bytes:
        """The body as the server meant it: a compressed answer (the gateway's edge: gzip or deflate, whichever the
        client prefers) is decompressed, a partial one as far as it goes."""
        import zlib
        raw = b"".join(self.chunks)
        encoding = self.response_headers.get("content-encoding", "").lower()
        if encoding == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw)
        if encoding == "deflate":
            return zlib.decompressobj().decompress(raw)
        return raw

    @property
    def content_type(self) -> str:
        return self.response_headers.get("content-type", "").split(";")[0].strip().lower()

    def request_json(self) -> Any:
        return json.loads(self.request_body) if self.request_body else None


class _Tee(httpx2.AsyncByteStream):
    def __init__(self, inner: Any, exchange: Exchange):
        self._inner, self._exchange = inner, exchange

    async def __aiter__(self):
        async for chunk in self._inner:
            self._exchange.chunks.append(bytes(chunk))
            yield chunk
        self._exchange.complete = True

    async def aclose(self) -> None:
        await self._inner.aclose()


class Recorder(httpx2.AsyncBaseTransport):
    """Records every exchange; `get_stream_open` is set once a GET stream was answered with 200."""

    def __init__(self, verify=True) -> None:
        """`verify`: an ssl.SSLContext trusting the test's own certificate, for https:// URLs."""
        self._inner = httpx2.AsyncHTTPTransport(verify=verify)
        self.exchanges: list[Exchange] = []
        self.get_stream_open = asyncio.Event()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = await request.aread()
        ex = Exchange(request.method, str(request.url), {k.lower(): v for k, v in request.headers.items()}, body)
        self.exchanges.append(ex)
        response = await self._inner.handle_async_request(request)
        ex.status = response.status_code
        ex.response_headers = {k.lower(): v for k, v in response.headers.items()}
        response.stream = _Tee(response.stream, ex)
        if request.method == "GET" and response.status_code == 200:
            self.get_stream_open.set()
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def run(coro) -> Any:
    """Runs a client coroutine to its end (the SDK's deprecation warnings silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return asyncio.run(coro)
