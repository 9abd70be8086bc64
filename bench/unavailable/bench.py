"""How fast a down server's port answers (issue 17, docs/reliability.md "Answers while a server is down").

One supervisor, two servers: `down` (a crash loop made fatal with a one-hour cool-down) and `up` (the reference
plugin). For each, REQUESTS sequential POSTs on fresh connections (connect, send, read to the close): the 503 from
the supervisor against a served 2026-07-28 `server/discover` from a live host, the same client and the same
machine in one run; then CONNS clients at once against the down port (answers per second). Before this change the
down port answered nothing: the client waited for its own timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path


def request(port: int, body: bytes, headers: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall((f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   f"Accept: application/json, text/event-stream\r\n{headers}Connection: close\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return time.perf_counter() - started, data


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--supervisor", required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--plugins", required=True)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--out", required=True)
    ap.add_argument("--command", required=True)
    a = ap.parse_args()
    work = Path(a.work)
    (work / "servers.d").mkdir()
    sock = work / "control.sock"
    (work / "supervisor.toml").write_text(
        f'state_dir = "state"\nservers_dir = "servers.d"\ncontrol_socket = "{sock}"\nport_range = [39100, 39199]\n')
    (work / "servers.d" / "down.toml").write_text(
        f'plugin = "{a.plugins}/libfaulty.so"\nrestart = "always"\n'
        '[config]\nexit_after_ms = 20\nexit_status = 3\n'
        '[backoff]\ninitial = 0.05\nmax = 0.05\nmultiplier = 1\njitter = 0\n'
        '[intensity]\nmax_restarts = 1\nwindow = 60\ncooldown = 3600\n')
    (work / "servers.d" / "up.toml").write_text(f'plugin = "{a.plugins}/libreference.so"\n')
    proc = subprocess.Popen([a.supervisor, "-c", str(work / "supervisor.toml"), "--host", a.host],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (work / "pids").write_text(f"{proc.pid}\n")
    try:
        def status() -> dict:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(10)
                s.connect(str(sock))
                s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"status"}\n')
                data = b""
                while not data.endswith(b"\n"):
                    data += s.recv(65536)
            return {x["name"]: x for x in json.loads(data)["result"]["servers"]}

        deadline = time.monotonic() + 30
        while True:
            try:
                st = status()
                if st["up"]["state"] == "running" and st["down"]["replicas"][0]["state"] == "fatal":
                    break
            except (OSError, KeyError, ValueError):
                pass
            if time.monotonic() > deadline:
                print("the servers did not settle", file=sys.stderr)
                return 1
            time.sleep(0.05)
        down, up = st["down"]["port"], st["up"]["port"]
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "server/discover",
                           "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                                               "io.modelcontextprotocol/clientCapabilities": {}}}}).encode()
        modern = "MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: server/discover\r\n"
        for _ in range(100):  # warm both paths
            request(down, body, modern)
            request(up, body, modern)
        # Alternating, so both see the same machine state.
        t_down, t_up = [], []
        for _ in range(a.requests):
            t, data = request(down, body, modern)
            assert data.startswith(b"HTTP/1.1 503"), data[:80]
            t_down.append(t)
            t, data = request(up, body, modern)
            assert data.startswith(b"HTTP/1.1 200"), data[:400]
            t_up.append(t)
        # Many clients at once against the down port.
        count = [0]
        lock = threading.Lock()
        stop = time.monotonic() + 5

        def client():
            n = 0
            while time.monotonic() < stop:
                _, data = request(down, body, modern)
                if data.startswith(b"HTTP/1.1 503"):
                    n += 1
            with lock:
                count[0] += n

        threads = [threading.Thread(target=client) for _ in range(a.conns)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rate = count[0] / (time.monotonic() - t0)
        fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    ms = lambda v: f"{v * 1000:.3f}"  # noqa: E731
    rows = [
        ("down port: 503 from the supervisor", t_down),
        ("live host: server/discover answered", t_up),
    ]
    lines = [f"`{a.command}` ({a.requests} requests each, fresh connection per request, alternating):", "",
             "| target | p50 ms | p99 ms | max ms |", "|---|---:|---:|---:|"]
    for name, v in rows:
        lines.append(f"| {name} | {ms(statistics.median(v))} | {ms(percentile(v, 99))} | {ms(max(v))} |")
    ratio = statistics.median(t_down) / statistics.median(t_up)
    lines += ["", f"503 p50 / live p50: {ratio:.2f}×; {a.conns} clients at once on the down port: "
              f"{rate:,.0f} answers/s, supervisor fds after: {fds}."]
    text = "\n".join(lines) + "\n"
    Path(a.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
