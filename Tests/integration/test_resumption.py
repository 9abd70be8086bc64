"""Legacy-era completeness: SSE resumption with Last-Event-ID, JSON-RPC batches in 2025-03-26 sessions.

- The official Python SDK (2.3.0) resumes a POST stream that a proxy cuts after its first message: it reconnects
  with GET and Last-Event-ID, and every progress notification and the result arrive exactly once.
- A session's GET stream dropped by the client is resumed: the events sent while it was away are replayed, the
  ones it had already received are not.
- A 2025-03-26 batch gets one array of answers; other revisions get a 400 naming the version.

docs/protocol.md, "Resumable streams" and "Batches", describes what the host keeps and for how long.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
from mcp import Client

from conftest import LegacySession, http_call, parse_sse
from schema_check import check_response
from sdk_recorder import run
from test_client_sdk import run_client

pytestmark = [pytest.mark.timeout(120), pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture
def host(host_factory, reference_plugin):
    return host_factory(reference_plugin)


# ------------------------------------------------------------------------------------------------------------
# A proxy that cuts the first tools/call response after its first message
# ------------------------------------------------------------------------------------------------------------


class CuttingProxy:
    """Forwards TCP to the host. On the connection that carries the first `tools/call`, it forwards the response
    up to the end of its first message event (after the priming event) and then closes both sides, as a network
    failure would. Records the request heads it forwarded."""

    def __init__(self, upstream: int):
        self.upstream = upstream
        self.heads: list[bytes] = []
        self.cut = asyncio.Event()
        self.armed = False
        self.server: asyncio.AbstractServer | None = None
        self.port = 0
        self.open: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self.handlers: set[asyncio.Task] = set()

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        # Every connection closed (both sides) before the test goes on: the host must see them end.
        assert self.server is not None
        self.server.close()
        for pair in list(self.open):
            for w in pair:
                w.close()
        await asyncio.gather(*self.handlers, return_exceptions=True)
        await self.server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.handlers.add(asyncio.current_task())
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        self.open.add((writer, up_writer))
        cut_here = asyncio.Event()

        async def client_to_host():
            try:
                while data := await reader.read(65536):
                    if data[:5] in (b"GET /", b"POST ", b"DELET"):
                        self.heads.append(data.split(b"\r\n\r\n", 1)[0])
                    if not self.armed and b'"tools/call"' in data:
                        self.armed = True
                        cut_here.set()
                    up_writer.write(data)
                    await up_writer.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass

        async def host_to_client():
            pending = b""
            try:
                while data := await up_reader.read(65536):
                    if cut_here.is_set() and not self.cut.is_set():
                        pending += data
                        at = pending.find(b"notifications/")
                        end = pending.find(b"\n\n", at) if at >= 0 else -1
                        if end < 0:
                            continue
                        writer.write(pending[: end + 2])
                        await writer.drain()
                        self.cut.set()
                        return
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass

        tasks = [asyncio.ensure_future(client_to_host()), asyncio.ensure_future(host_to_client())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            pass  # the proxy is closing
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.open.discard((writer, up_writer))
            for w in (writer, up_writer):
                w.close()
                try:
                    await w.wait_closed()
                except (ConnectionError, asyncio.CancelledError):
                    pass


def test_the_sdk_resumes_a_cut_post_stream_and_sees_each_message_once(host):
    progress: list[float] = []

    async def on_progress(value, total, message):
        progress.append(value)

    async def scenario():
        async with CuttingProxy(host.port) as proxy:

            async def body(c: Client):
                return await c.call_tool("slow_count", {"seconds": 1}, progress_callback=on_progress)

            result, _ = await run_client(f"http://127.0.0.1:{proxy.port}/mcp", "legacy", body)
            return result, proxy

    result, proxy = run(scenario())
    assert proxy.cut.is_set(), "the proxy never cut the stream"
    assert not result.is_error, result
    assert [b.text for b in result.content] == ["counted to 10"]
    # The call's log message came before the cut, the progress through the replay: 1..10, none twice.
    assert progress == [float(i) for i in range(1, 11)], progress
    resumes = [h for h in proxy.heads if h.startswith(b"GET ") and b"last-event-id:" in h.lower()]
    assert len(resumes) == 1, proxy.heads


# ------------------------------------------------------------------------------------------------------------
# The GET stream, on the wire
# ------------------------------------------------------------------------------------------------------------


class RawStream:
    """A GET stream read incrementally from a socket (chunked transfer decoding, SSE parsing)."""

    def __init__(self, port: int, headers: dict[str, str]):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        lines = ["GET /mcp HTTP/1.1", f"Host: 127.0.0.1:{port}"] + [f"{k}: {v}" for k, v in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.raw = b""
        self.head = b""
        self.status = 0

    def _fill(self, deadline: float) -> bool:
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        if not data:
            return False
        self.raw += data
        return True

    def body(self) -> bytes:
        head, _, rest = self.raw.partition(b"\r\n\r\n")
        self.head = head
        self.status = int(head.split(b" ", 2)[1]) if head else 0
        out = b""
        while rest:
            size_line, sep, rest = rest.partition(b"\r\n")
            if not sep:
                break
            size = int(size_line, 16)
            if size == 0 or len(rest) < size:
                out += rest[:size] if size else b""
                break
            out += rest[:size]
            rest = rest[size + 2:]
        return out

    def events_until(self, predicate, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while True:
            events = parse_sse(self.body(), allow_partial=True, priming=True)
            if predicate(events):
                return events
            if time.monotonic() > deadline or not self._fill(deadline):
                raise AssertionError(f"stream never matched; got {self.raw[-2000:]!r}")

    def close(self):
        self.sock.close()


def methods(events) -> list[str]:
    return [json.loads(e.data)["method"] for e in events if e.data]


def test_a_dropped_get_stream_is_resumed_with_what_it_missed(host):
    s = LegacySession(host.port, "2025-11-25")
    s.initialize()
    headers = {**s.headers(accept="text/event-stream")}
    first = RawStream(host.port, headers)
    primed = first.events_until(lambda ev: len(ev) >= 1)
    assert primed[0].data == "" and primed[0].id and primed[0].id.endswith("-0"), primed
    # With the retry field the client waits for a replacement host if this one closes the connection early.
    assert first.body().startswith(f"id: {primed[0].id}\nretry: 1000\ndata: \n\n".encode()), first.body()[:80]
    s.request("tools/call", {"name": "announce", "arguments": {"lists": 1}})  # tools changed
    got = first.events_until(lambda ev: "notifications/tools/list_changed" in methods(ev))
    seen_id = got[-1].id
    assert seen_id, got
    first.close()  # the client's connection drops

    # While it is away: prompts change, then resources.
    for lists in (4, 2):
        reply = s.request("tools/call", {"name": "announce", "arguments": {"lists": lists}})
        assert reply.status == 200, reply.body

    again = RawStream(host.port, {**headers, "Last-Event-ID": seen_id})
    replayed = again.events_until(lambda ev: len(methods(ev)) >= 2)
    assert again.status == 200
    assert methods(replayed) == ["notifications/prompts/list_changed", "notifications/resources/list_changed"]
    ids = [e.id for e in replayed]
    assert len(set(ids)) == len(ids) and seen_id not in ids
    # and the resumed stream is live: a later change arrives on it
    s.request("tools/call", {"name": "announce", "arguments": {"lists": 1}})
    live = again.events_until(lambda ev: len(methods(ev)) >= 3)
    assert methods(live)[-1] == "notifications/tools/list_changed"
    again.close()

    # An id this session never issued is refused, naming it.
    bad = http_call(host.port, "GET", headers={**headers, "Last-Event-ID": "999-1"}, content_type=None)
    assert bad.status == 400 and b"Last-Event-ID '999-1'" in bad.body
    s.delete()


# ------------------------------------------------------------------------------------------------------------
# Batches
# ------------------------------------------------------------------------------------------------------------


def test_a_2025_03_26_batch_gets_one_array_of_answers(host):
    s = LegacySession(host.port, "2025-03-26")
    s.initialize()
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": "x", "progress": 1}},
        {"jsonrpc": "2.0", "id": "two", "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "b"}}},
        {"jsonrpc": "2.0", "id": 3, "method": "no/such"},
    ]
    reply = http_call(host.port, "POST", body=batch, headers=s.headers())
    assert reply.status == 200 and reply.content_type == "application/json", reply.body
    answers = json.loads(reply.body)
    assert [a["id"] for a in answers] == [1, "two", 3]
    check_response(answers[0], "2025-03-26", "tools/list")
    check_response(answers[1], "2025-03-26", "tools/call")
    assert answers[1]["result"]["content"] == [{"type": "text", "text": "b"}]
    assert answers[2]["error"]["code"] == -32601

    # A batch of notifications only: 202 and no body.
    quiet = http_call(host.port, "POST", body=[{"jsonrpc": "2.0", "method": "notifications/initialized"}],
                      headers=s.headers())
    assert quiet.status == 202 and quiet.body == b""
    s.delete()

    later = LegacySession(host.port, "2025-11-25")
    later.initialize()
    refused = http_call(host.port, "POST", body=[{"jsonrpc": "2.0", "id": 1, "method": "ping"}],
                        headers=later.headers())
    assert refused.status == 400
    assert "this session speaks 2025-11-25" in json.loads(refused.body)["error"]["message"]
    # and the session is unharmed
    assert later.request("ping").status == 200
    later.delete()
