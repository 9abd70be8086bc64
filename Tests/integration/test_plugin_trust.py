"""Plugin trust (docs/security.md, "Plugin trust"): Ed25519 signatures and SHA-256 digests, verified by the host
with libcrypto, the plugin loaded as exactly the verified bytes (a sealed memfd).

Keys and signatures are made here with the openssl command line, the way docs/plugin-authors.md tells an author.
Refusals are checked on the host alone (exit status, one stderr line) and under the supervisor (never restarted,
the reason in `mcpctl status`, the other servers serving). A plugin swapped on disk while hosts start — rewritten
in place or replaced by rename — is loaded as verified or refused, never run unverified; the same swapping with
`--trust any` does get the other plugin run, which shows that the swaps really land during starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO, await_serving, host_binary, plugin_path, start_host
from supervisor_fixtures import call_tool, control_env, pid_alive  # noqa: F401 (control_env is the fixture env)

pytestmark = pytest.mark.timeout(300)

FAST_BACKOFF = {"initial": 0.1, "max": 5, "multiplier": 2, "jitter": 0}
SERVED_NAME = re.compile(r"^mcp-plugin-host: serving (\S+) \S+ from .* at http://127\.0\.0\.1:(\d+)/mcp$")


def mcpctl_binary() -> Path:
    path = Path(os.environ.get("MCPCTL", REPO / ".build" / "release" / "mcpctl"))
    if not path.exists():
        pytest.fail(f"mcpctl not built at {path} (swift build -c release)")
    return path


def openssl(*args: str, stdin: bytes | None = None) -> bytes:
    r = subprocess.run(["openssl", *args], input=stdin, capture_output=True, timeout=60)
    assert r.returncode == 0, f"openssl {' '.join(args)}: {r.stderr.decode()}"
    return r.stdout


class Key:
    """An Ed25519 key pair made with `openssl genpkey`; `fingerprint` is what the docs' command prints."""

    def __init__(self, folder: Path, name: str):
        folder.mkdir(parents=True, exist_ok=True)
        self.private = folder / f"{name}.key"
        self.public = folder / f"{name}.pem"
        openssl("genpkey", "-algorithm", "ed25519", "-out", str(self.private))
        openssl("pkey", "-in", str(self.private), "-pubout", "-out", str(self.public))
        der = openssl("pkey", "-pubin", "-in", str(self.public), "-outform", "DER")
        digest = openssl("dgst", "-sha256", "-r", stdin=der).split()[0].decode()
        assert re.fullmatch(r"[0-9a-f]{64}", digest), digest
        self.fingerprint = f"SHA256:{digest}"

    def sign(self, plugin: Path) -> Path:
        sig = Path(str(plugin) + ".sig")
        openssl("pkeyutl", "-sign", "-rawin", "-inkey", str(self.private), "-in", str(plugin), "-out", str(sig))
        assert sig.stat().st_size == 64
        return sig


class Trust:
    """A trusted keys folder with one trusted key, an untrusted key outside it, and plugin copies to sign."""

    def __init__(self, root: Path):
        self.root = root
        self.keys_dir = root / "keys"
        self.trusted = Key(root / "private", "trusted")
        self.keys_dir.mkdir()
        shutil.copy(self.trusted.public, self.keys_dir / "trusted.pem")
        self.untrusted = Key(root / "private", "untrusted")
        self.plugins = root / "plugins"
        self.plugins.mkdir()

    def copy(self, name: str, source: str = "reference") -> Path:
        path = self.plugins / f"lib{name}.so"
        shutil.copy(plugin_path(source), path)
        return path

    def signed(self, name: str, source: str = "reference") -> Path:
        path = self.copy(name, source)
        self.trusted.sign(path)
        return path

    def args(self) -> list[str]:
        return ["--trust", "signed", "--trusted-keys-dir", str(self.keys_dir)]


@pytest.fixture
def trust(tmp_path) -> Trust:
    return Trust(tmp_path / "trust")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def flip_byte(path: Path, offset: int = 5000) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def run_host(plugin: Path, *extra: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(host_binary()), "--plugin", str(plugin), "--listen", "127.0.0.1:0", *extra],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def maps_of(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


# ------------------------------------------------------------------------------------------------------------
# The host alone
# ------------------------------------------------------------------------------------------------------------


def test_signed_plugin_loads_from_the_sealed_copy_and_serves(trust, host_factory):
    plugin = trust.signed("good")
    host = host_factory(plugin, *trust.args())
    assert call_tool(host.port, "echo", {"text": "signed"}) == "signed"
    maps = maps_of(host.proc.pid)
    # The code runs from the verified copy, never from the file on disk.
    assert "/memfd:mcp-plugin" in maps and re.search(r"r-xp .*/memfd:mcp-plugin", maps), maps
    assert str(plugin) not in maps, maps
    host.stop()
    err = host.stderr_text()
    verified = [line for line in err.splitlines() if "verified:" in line]
    assert len(verified) == 1, err
    assert f"signed by trusted key {trust.trusted.fingerprint} (trusted.pem)" in verified[0]
    assert f"sha256 {sha256(plugin)}" in verified[0]


def test_digest_pinned_plugin_loads(trust, host_factory):
    plugin = trust.copy("pinned")  # no signature: the digest alone admits it
    host = host_factory(plugin, "--sha256", sha256(plugin).upper())
    assert call_tool(host.port, "echo", {"text": "pinned"}) == "pinned"
    assert "/memfd:mcp-plugin" in maps_of(host.proc.pid)


def test_any_keeps_loading_the_file_itself(trust, host_factory):
    plugin = trust.copy("plain")
    host = host_factory(plugin)
    assert call_tool(host.port, "echo", {"text": "any"}) == "any"
    maps = maps_of(host.proc.pid)
    assert "memfd:mcp-plugin" not in maps and str(plugin) in maps


def refusal_cases(trust: Trust) -> dict[str, tuple[Path, list[str], int, list[str]]]:
    """name -> (plugin, host arguments, exit status, what the one line must name)."""
    flipped = trust.signed("flipped")
    flip_byte(flipped)
    untrusted = trust.copy("untrusted")
    trust.untrusted.sign(untrusted)
    nosig = trust.copy("nosig")
    truncated = trust.copy("truncated")
    Path(str(truncated) + ".sig").write_bytes(trust.trusted.sign(truncated).read_bytes()[:63])
    wrong = trust.copy("wrongdigest")
    expected = "0" * 64
    empty_keys = trust.root / "empty-keys"
    empty_keys.mkdir()
    ec_keys = trust.root / "ec-keys"
    ec_keys.mkdir()
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(trust.root / "ec.key"))
    openssl("pkey", "-in", str(trust.root / "ec.key"), "-pubout", "-out", str(ec_keys / "ec.pem"))
    goodsig = trust.signed("goodsig")
    return {
        "flipped byte": (flipped, trust.args(), 31,
                         [f"{flipped}.sig", "not a valid Ed25519 signature", trust.trusted.fingerprint]),
        "untrusted key": (untrusted, trust.args(), 31,
                          [f"{untrusted}.sig", "by any trusted key", trust.trusted.fingerprint, str(trust.keys_dir)]),
        "missing signature": (nosig, trust.args(), 30, [f"no signature file {nosig}.sig"]),
        "short signature": (truncated, trust.args(), 31, [f"{truncated}.sig is 63 bytes"]),
        "wrong sha256": (wrong, ["--sha256", expected], 32,
                         ["digest mismatch", f"expected {expected}", sha256(wrong)]),
        "no keys": (goodsig, ["--trust", "signed", "--trusted-keys-dir", str(empty_keys)], 33,
                    [f"no usable Ed25519 public key (*.pem) in the trusted keys folder {empty_keys}"]),
        "not an Ed25519 key": (goodsig, ["--trust", "signed", "--trusted-keys-dir", str(ec_keys)], 33,
                               ["ec.pem: not an Ed25519 key"]),
        "missing keys folder": (goodsig, ["--trust", "signed", "--trusted-keys-dir", str(trust.root / "nope")], 33,
                                ["cannot read the trusted keys folder"]),
    }


def test_refusals_have_their_status_and_one_line(trust):
    for name, (plugin, args, status, needles) in refusal_cases(trust).items():
        r = run_host(plugin, *args)
        assert r.returncode == status, f"{name}: status {r.returncode}, stderr {r.stderr!r}"
        assert r.stdout == "", f"{name}: served? {r.stdout!r}"
        lines = r.stderr.splitlines()
        assert len(lines) == 1, f"{name}: {r.stderr!r}"
        assert lines[0].startswith(f"mcp-plugin-host: {plugin}: "), f"{name}: {lines[0]}"
        for needle in needles:
            assert needle in lines[0], f"{name}: {needle!r} not in {lines[0]!r}"


def test_bad_trust_arguments_are_usage_errors(trust):
    plugin = trust.signed("args")
    for args, words in [
        (["--trust", "maybe"], "--trust must be any or signed"),
        (["--trust", "signed"], "--trust signed needs --trusted-keys-dir"),
        (["--trusted-keys-dir", str(trust.keys_dir)], "only with --trust signed"),
        (["--sha256", "abc"], "--sha256 must be 64 hexadecimal digits"),
    ]:
        r = run_host(plugin, *args)
        assert r.returncode == 64, (args, r.returncode, r.stderr)
        assert words in r.stderr, (args, r.stderr)


# ------------------------------------------------------------------------------------------------------------
# --check
# ------------------------------------------------------------------------------------------------------------


def check(plugin: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(host_binary()), "--check", "--plugin", str(plugin), *extra], capture_output=True,
                          text=True, timeout=60)


def test_check_reports_the_trust_verdict(trust):
    good = trust.signed("checked")
    r = check(good, "--json", *trust.args())
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["loads"] is True
    assert [s["name"] for s in report["checks"]] == ["file", "trust", "elf", "entry", "libraries", "abi", "create"]
    assert report["trust"] == {
        "policy": "signed", "verified": True, "key": trust.trusted.fingerprint,
        "keyFile": str(trust.keys_dir / "trusted.pem"), "sha256": sha256(good), "trustedKeysDir": str(trust.keys_dir),
    }
    text = check(good, *trust.args()).stdout
    assert re.search(rf"^  ok   trust: signed: signed by trusted key {trust.trusted.fingerprint}", text, re.M), text
    assert text.rstrip().endswith("verdict: loads")

    for name, (plugin, args, status, needles) in refusal_cases(trust).items():
        r = check(plugin, "--json", *args)
        assert r.returncode == 1, f"{name}: {r.stdout}{r.stderr}"
        report = json.loads(r.stdout)
        assert report["loads"] is False and report["hostExitStatus"] == status, f"{name}: {report}"
        assert report["checks"][-1]["name"] == "trust" and not report["checks"][-1]["ok"], f"{name}: {report}"
        assert report["trust"]["verified"] is False
        for needle in needles:
            assert needle in report["problem"], f"{name}: {needle!r} not in {report['problem']!r}"
        text = check(plugin, *args).stdout
        assert "  FAIL trust: " in text and "verdict: will not load: " in text, f"{name}: {text}"

    # Under any: nothing verified, the digest to pin is reported.
    plain = trust.copy("plain")
    report = json.loads(check(plain, "--json").stdout)
    assert report["trust"] == {"policy": "any", "verified": False, "sha256": sha256(plain)}
    assert "trust" not in [s["name"] for s in report["checks"]]
    assert f"trust: any: not verified, any file loads; sha256 {sha256(plain)}" in check(plain).stdout


# ------------------------------------------------------------------------------------------------------------
# A plugin swapped on disk while hosts start
# ------------------------------------------------------------------------------------------------------------


class Swapper:
    """Swaps a plugin file between two builds, in a tight loop on a thread, until stopped: in place (the same
    inode rewritten and truncated) or by rename (a new inode put in its place)."""

    def __init__(self, path: Path, a: bytes, b: bytes, mode: str):
        self.path, self.a, self.b, self.mode = path, a, b, mode
        self.stop_event = threading.Event()
        self.swaps = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        tmp = self.path.with_name(self.path.name + ".new")
        fd = os.open(self.path, os.O_WRONLY) if self.mode == "in place" else -1
        try:
            while not self.stop_event.is_set():
                for data in (self.b, self.a):
                    if self.mode == "in place":
                        os.pwrite(fd, data, 0)
                        os.ftruncate(fd, len(data))
                    else:
                        tmp.write_bytes(data)
                        os.rename(tmp, self.path)
                    self.swaps += 1
                    time.sleep(0.0005)  # pacing, not synchronisation: leaves the CPU to the hosts
        finally:
            if fd >= 0:
                os.close(fd)

    def __enter__(self) -> "Swapper":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_event.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()


def start_once(plugin: Path, *args: str, timeout: float = 30) -> tuple[str, int, str]:
    """Starts a host; returns ("served", 0, plugin name) once it serves (then stops it), or ("exited", status,
    stderr) when it exits first."""
    proc = subprocess.Popen([str(host_binary()), "--plugin", str(plugin), "--listen", "127.0.0.1:0", *args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    try:
        m, line = await_serving(proc, deadline)
        if m:
            proc.kill()
            proc.communicate(timeout=10)
            return "served", 0, SERVED_NAME.match(line).group(1)
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        return "exited", proc.returncode, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


STARTS = 40


@pytest.mark.parametrize("mode", ["in place", "rename"])
def test_plugin_swapped_while_hosts_start_is_verified_or_refused(trust, mode):
    reference = plugin_path("reference").read_bytes()
    faulty = plugin_path("faulty").read_bytes()  # answers as "faulty": a different plugin, with no signature
    plugin = trust.signed("swapped")  # the signature is of the reference build only
    outcomes: dict[tuple[str, int, str], int] = {}
    with Swapper(plugin, reference, faulty, mode) as swapper:
        for _ in range(STARTS):
            kind, status, detail = start_once(plugin, *trust.args())
            if kind == "served":
                assert detail == "reference", f"{mode}: an unverified plugin ran: {detail}"
                key = (kind, 0, detail)
            else:
                assert status == 31, f"{mode}: exit status {status}: {detail}"
                assert "not a valid Ed25519 signature" in detail, detail
                key = (kind, status, "refused")
            outcomes[key] = outcomes.get(key, 0) + 1
        assert swapper.swaps > STARTS
    # Both happened: the swaps landed while hosts started, and the verified build still loads.
    assert outcomes.get(("served", 0, "reference"), 0) > 0, outcomes
    assert outcomes.get(("exited", 31, "refused"), 0) > 0, outcomes


@pytest.mark.parametrize("mode", ["in place", "rename"])
def test_the_same_swapping_under_any_runs_the_other_plugin(trust, mode):
    """The control for the test above: without verification, the swapped-in build does run."""
    reference = plugin_path("reference").read_bytes()
    faulty = plugin_path("faulty").read_bytes()
    plugin = trust.copy("swapped-any")
    names = set()
    with Swapper(plugin, reference, faulty, mode):
        for _ in range(STARTS):
            kind, _, detail = start_once(plugin)
            if kind == "served":
                names.add(detail)
            if "faulty" in names:
                break
    assert "faulty" in names, names


# ------------------------------------------------------------------------------------------------------------
# Under the supervisor
# ------------------------------------------------------------------------------------------------------------


def test_supervisor_refuses_untrusted_plugins_for_good(env, trust):
    env.write_main(trusted_keys_dir=str(trust.keys_dir), control_socket=str(env.control_socket),
                   defaults={"restart": "always", "backoff": FAST_BACKOFF})
    good = trust.signed("good")  # trust = signed by default once trusted_keys_dir is set
    env.write_server("good", good)
    flipped = trust.signed("flipped")
    flip_byte(flipped)
    env.write_server("flipped", flipped)
    untrusted = trust.copy("untrusted")
    trust.untrusted.sign(untrusted)
    env.write_server("untrusted", untrusted)
    nosig = trust.copy("nosig")
    env.write_server("nosig", nosig)
    wrong = trust.copy("wrongdigest")
    env.write_server("wrongdigest", wrong, sha256="f" * 64)
    pinned = trust.copy("pinned")
    env.write_server("pinned", pinned, sha256=sha256(pinned))
    expected = {
        "flipped": (31, [str(flipped), "not a valid Ed25519 signature", trust.trusted.fingerprint]),
        "untrusted": (31, [str(untrusted), "by any trusted key", trust.trusted.fingerprint]),
        "nosig": (30, [str(nosig), "no signature file"]),
        "wrongdigest": (32, [str(wrong), "digest mismatch", "expected " + "f" * 64, sha256(wrong)]),
    }
    run = env.start()
    last = 0
    for name, (status, needles) in expected.items():
        hit = run.wait_for(rf"^mcp-supervisor: {name}\[\d+\]: exited with status {status} "
                           r"\(plugin or configuration error\)$")
        run.wait_for(rf"^mcp-supervisor: {name}: exited: exited with status {status} .*not restarting", 5)
        last = max(last, hit.index)
    good_port = run.port_of("good")
    assert call_tool(good_port, "echo", {"text": "still serving"}) == "still serving"
    assert call_tool(run.port_of("pinned"), "echo", {"text": "pinned"}) == "pinned"
    # Well past the backoff (0.1 s under restart = always): none is started again.
    run.assert_absent(r"^mcp-supervisor: (flipped|untrusted|nosig|wrongdigest)\[\d+\]: starting$", 1.5, last + 1)
    for name, (status, needles) in expected.items():
        assert len(run.find_all(rf"^mcp-supervisor: {name}\[\d+\]: starting$")) == 1, name
        s = env.status(name)
        r = s["replicas"][0]
        assert (s["state"], r["state"], r["pid"], r["restarts"]) == ("down", "exited", None, 0), s
        assert r["last_exit"].startswith(f"exited with status {status} (plugin or configuration error): "), r
        for needle in needles:
            assert needle in r["last_exit"], f"{name}: {needle!r} not in {r['last_exit']!r}"
    # mcpctl status shows each reason.
    out = subprocess.run([str(mcpctl_binary()), "--socket", str(env.control_socket), "status"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    for name, (status, needles) in expected.items():
        row = next(line for line in out.stdout.splitlines() if line.startswith(name + " "))
        assert f"exited with status {status}" in row and needles[1] in row, row
    # The verified ones were loaded from their sealed copies.
    good_pid, _ = run.running("good")
    assert "/memfd:mcp-plugin" in maps_of(good_pid)
    assert call_tool(good_port, "echo", {"text": "after"}) == "after"
    # No trust = any warning: every server is signed or pinned.
    assert not run.find_all(r"trust = any")


def test_trust_any_is_warned_once_per_supervisor_start(env, trust):
    env.write_server("open", trust.copy("open"), replicas=2)
    env.write_server("pinned", (pinned := trust.copy("pinned")), sha256=sha256(pinned))
    run = env.start()
    port = run.port_of("open")
    run.running("pinned")
    assert call_tool(port, "echo", {"text": "x"}) == "x"
    warnings = run.find_all(r"^mcp-supervisor: open: trust = any: .* is loaded without a signature or digest check")
    assert len(warnings) == 1, run.log_text()
    mark = run.mark()
    assert "result" in env.control("restart", {"server": "open"})
    run.wait_count(r"^mcp-supervisor: open#\d\[\d+\]: starting$", 2, 20, mark)
    run.port_of("open", 20, mark)
    assert len(run.find_all(r"trust = any")) == 1, run.log_text()
    assert not run.find_all(r"^mcp-supervisor: pinned: trust = any")


def test_signed_without_trusted_keys_dir_is_a_config_error(env, trust):
    path = env.write_server("s", trust.signed("s"), trust="signed")
    r = env.check_config()
    assert r.returncode != 0
    assert f"{path}:2: trust: is \"signed\" but the main file sets no trusted_keys_dir" in r.stderr + r.stdout
