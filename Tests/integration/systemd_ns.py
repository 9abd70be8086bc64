"""A real systemd 252 booted as PID 1 in private namespaces inside a minimal Debian 12 tree (scripts/systemd-ns.sh),
for the tests of the packaged system service and for bench/systemd_restart.py.

The tree is cached (scripts/systemd-ns.sh tree builds it from nothing when absent); every boot runs in an overlay
whose upper layer is a fresh folder under the cache (never the host's /tmp) and is thrown away afterwards. The
namespace shares the host's network, so the host reaches the servers inside on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NS_SCRIPT = REPO / "scripts" / "systemd-ns.sh"
CACHE = Path(os.environ.get("MCP_NS_CACHE", "/var/cache/mcp-supervisor-test"))


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    """Polls a condition that has no event to wait on (a unit's state, a file inside) until it holds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for: {what}")
        time.sleep(interval)


def build_tree() -> Path:
    out = subprocess.run([str(NS_SCRIPT), "tree"], capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise AssertionError(f"systemd-ns.sh tree failed: {out.stderr}")
    return Path(out.stdout.strip().splitlines()[-1])


class BootedSystemd:
    """systemd as PID 1 of a private PID and mount namespace; `run` executes a command inside (chrooted)."""

    def __init__(self) -> None:
        (CACHE / "runs").mkdir(parents=True, exist_ok=True)
        self.rundir = Path(tempfile.mkdtemp(prefix="boot.", dir=CACHE / "runs"))
        self.root = self.rundir / "root"
        self.proc = subprocess.Popen([str(NS_SCRIPT), "boot", str(self.rundir)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        try:
            self.pid = int(wait_for(self._pid, 15, "the namespace's PID 1"))
            state = wait_for(self._settled, 30, "systemctl is-system-running: running or degraded")
            if state != "running":
                failed = self.run("systemctl", "--failed", "--no-legend", check=False).stdout
                raise AssertionError(f"the booted systemd is {state}: failed units: {failed}")
        except BaseException:
            self.close()
            raise

    def _pid(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"systemd-ns.sh boot ended: {self.proc.stderr.read().decode(errors='replace')}")
        try:
            return (self.rundir / "pid").read_text().strip() or None
        except FileNotFoundError:
            return None

    def _settled(self):
        out = self.run("systemctl", "is-system-running", check=False, timeout=10).stdout.strip()
        return out if out in ("running", "degraded") else None

    def run(self, *cmd: str, check: bool = True, timeout: float = 120, input: str | None = None,
            user: str | None = None) -> subprocess.CompletedProcess:
        argv = list(cmd)
        if user is not None:
            argv = ["runuser", "-u", user, "--", *argv]
        out = subprocess.run([str(NS_SCRIPT), "run", str(self.rundir), *argv], capture_output=True, text=True,
                             timeout=timeout, input=input, start_new_session=True)
        if check and out.returncode != 0:
            raise AssertionError(f"inside: {' '.join(argv)}: exit {out.returncode}\nstdout: {out.stdout}\n"
                                 f"stderr: {out.stderr}")
        return out

    def write(self, inside: str, text: str, mode: str = "0644") -> None:
        self.run("sh", "-c", f'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod {mode} "$1"', "sh", inside,
                 input=text)

    def copy_in(self, host_file: Path) -> str:
        """Copies a host file into the shared folder (RUNDIR/share, /share inside); returns its path inside."""
        shutil.copy2(host_file, self.rundir / "share" / host_file.name)
        return f"/share/{host_file.name}"

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.run("systemctl", "show", unit, *[f"--property={p}" for p in props]).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, *args: str) -> list[dict]:
        out = self.run("journalctl", "--no-pager", "-o", "json", *args, check=False).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def host_pids(self, inside_pids) -> list[int]:
        """The host's pids of processes inside, found through NSpid in /proc/PID/status (the host sees every
        process of the namespace), so the host can wait for them to end without a round trip inside."""
        pidns = os.readlink(f"/proc/{self.pid}/ns/pid")
        wanted = {str(p) for p in inside_pids}
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") != pidns:
                    continue
                with open(f"/proc/{entry}/status") as f:
                    nspid = next(line.split()[1:] for line in f if line.startswith("NSpid:"))
            except (OSError, StopIteration):
                continue
            if nspid and nspid[-1] in wanted:
                found.append(int(entry))
        return found

    def close(self) -> None:
        subprocess.run([str(NS_SCRIPT), "kill", str(self.rundir)], capture_output=True, timeout=60)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        shutil.rmtree(self.rundir, ignore_errors=True)


def build_deb(version: str | None = None) -> Path:
    """The package from scripts/build-deb.sh (reusing .build/release), or MCP_DEB when the caller built it."""
    if version is None and os.environ.get("MCP_DEB"):
        return Path(os.environ["MCP_DEB"])
    env = dict(os.environ)
    if version:
        env["MCP_DEB_VERSION"] = version
        env["MCP_DEB_LINTIAN"] = "0"  # the same files as the checked build, only the version differs
    out = subprocess.run([str(REPO / "scripts" / "build-deb.sh")], capture_output=True, text=True, env=env,
                         timeout=600)
    if out.returncode != 0:
        raise AssertionError(f"scripts/build-deb.sh failed:\n{out.stderr}")
    deb = Path(out.stdout.strip().splitlines()[-1])
    # A second build overwrites the staging folder: keep each version's file under its own name.
    return deb


class Load:
    """Clients calling `echo` on several ports in a loop, one new connection per call, from `threads` threads per
    port; counts refused connections and failed calls with their times (time.monotonic())."""

    def __init__(self, ports: list[int], threads: int = 2, timeout: float = 20.0) -> None:
        import threading

        self.ports = ports
        self.timeout = timeout
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.ok: dict[int, list[tuple[float, float]]] = {p: [] for p in ports}  # (start, end) per call
        self.refused: list[tuple[int, float]] = []
        self.failed: list[tuple[int, float, str]] = []
        self.workers = [threading.Thread(target=self._loop, args=(p,), daemon=True) for p in ports
                        for _ in range(threads)]

    def __enter__(self) -> "Load":
        for w in self.workers:
            w.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self.stop_event.set()
        for w in self.workers:
            w.join(timeout=self.timeout + 5)

    def _loop(self, port: int) -> None:
        import http.client

        from conftest import modern_body, modern_headers

        params = {"name": "echo", "arguments": {"text": "load"}}
        body = json.dumps(modern_body("tools/call", params)).encode()
        headers = {**modern_headers("tools/call", params), "Content-Type": "application/json",
                   "Connection": "close"}
        while not self.stop_event.is_set():
            start = time.monotonic()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=self.timeout)
            try:
                conn.request("POST", "/mcp", body=body, headers=headers)
                reply = conn.getresponse()
                data = reply.read()
                if reply.status != 200 or b'"result"' not in data or b'"isError":true' in data:
                    raise RuntimeError(f"HTTP {reply.status}: {data[:200]!r}")
                with self.lock:
                    self.ok[port].append((start, time.monotonic()))
            except ConnectionRefusedError:
                with self.lock:
                    self.refused.append((port, time.monotonic()))
            except Exception as e:  # a reset, a timeout, a bad answer: a failed call
                with self.lock:
                    self.failed.append((port, time.monotonic(), repr(e)))
            finally:
                conn.close()

    def calls_ok(self) -> int:
        with self.lock:
            return sum(len(v) for v in self.ok.values())

    def serving_again(self, after: float) -> float | None:
        """Seconds from `after` until every port has completed a call whose connection was opened after it."""
        with self.lock:
            ends = []
            for calls in self.ok.values():
                done = [end for start, end in calls if start >= after]
                if not done:
                    return None
                ends.append(min(done))
        return max(ends) - after
