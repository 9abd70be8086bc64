"""A NOTIFY_SOCKET sink for the systemd tests that run without systemd (test_systemd_notify.py).

`NotifySink` binds a Unix datagram socket in a short private folder under /tmp (a socket path is limited to 107
bytes) and a reader thread receives every datagram the supervisor sends through libsystemd's sd_notify, with the
descriptors passed along (SCM_RIGHTS, the fd store's FDSTORE=1). Each message is kept with the monotonic time it
arrived; tests wait for one on a condition variable with a deadline, never with a bare sleep. `close()` closes
the socket and every descriptor received (none may be left open).
"""

from __future__ import annotations

import array
import os
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Notification:
    index: int
    t: float
    fields: dict[str, str]
    fds: list[int] = field(default_factory=list)
    raw: str = ""


class NotifySink:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="notify-", dir="/tmp")
        self.path = os.path.join(self.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages: list[Notification] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._read, name="notify-sink", daemon=True)
        self._thread.start()

    def environ(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
                  "JOURNAL_STREAM"):
            env.pop(k, None)
        env["NOTIFY_SOCKET"] = self.path
        env.update(extra)
        return env

    def _read(self) -> None:
        fds = array.array("i")
        while True:
            try:
                data, ancdata, _flags, _addr = self.sock.recvmsg(8192, socket.CMSG_SPACE(64 * fds.itemsize))
            except OSError:
                break
            t = time.monotonic()
            got: list[int] = []
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    a = array.array("i")
                    a.frombytes(payload[: len(payload) - (len(payload) % a.itemsize)])
                    got.extend(a)
            text = data.decode("utf-8", "replace")
            fields = {}
            for line in text.split("\n"):
                if "=" in line:
                    k, _, v = line.partition("=")
                    fields[k] = v
            with self._cond:
                if self._closed:
                    for fd in got:
                        os.close(fd)
                    break
                self.messages.append(Notification(len(self.messages), t, fields, got, text))
                self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return len(self.messages)

    def all(self, start: int = 0) -> list[Notification]:
        with self._cond:
            return list(self.messages[start:])

    def wait_for(self, pred, timeout: float, what: str, start: int = 0) -> Notification:
        deadline = time.monotonic() + timeout
        with self._cond:
            scanned = start
            while True:
                for m in self.messages[scanned:]:
                    if pred(m):
                        return m
                scanned = max(scanned, len(self.messages))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no notification {what} within {timeout} s; got: "
                                         + repr([m.raw for m in self.messages[-30:]]))
                self._cond.wait(left)

    def wait_key(self, key: str, value: str | None = None, timeout: float = 20.0, start: int = 0) -> Notification:
        return self.wait_for(lambda m: key in m.fields and (value is None or m.fields[key] == value), timeout,
                             f"{key}={value if value is not None else '*'}", start)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            for m in self.messages:
                for fd in m.fds:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
                m.fds = []
        # Wake the reader with an empty datagram of our own: it sees `_closed` and ends.
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"", self.path)
        self._thread.join(5)
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)
