"""Command servers (docs/servers.md): existing MCP programs supervised like plugins, bridged by mcp-plugin-host.

Against servers nobody here wrote, from PyPI (scripts/install-deps.sh): mcp-server-time, mcp-server-git (on a
repository the test creates), mcp-server-sqlite (on a database the test creates; it needs the 1.x SDK, so it runs
from .venv-sqlite and speaks 2025-06-18), a FastMCP 4 server and an official Python SDK server written here. The
official SDK client (mcp 2.3.0) talks to each through its stable port in both eras, every response validated
against its revision's schema (test_client_sdk.run_client).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp import Client

from conftest import REPO
from sdk_recorder import run
from supervisor_fixtures import SupervisorEnv, connect_refused, control_env, pid_alive, wait_until  # noqa: F401
from test_client_sdk import MODES, run_client

pytestmark = [pytest.mark.timeout(240), pytest.mark.filterwarnings("ignore::DeprecationWarning")]

VENV = REPO / ".venv" / "bin"
SQLITE_VENV = REPO / ".venv-sqlite" / "bin"

SDK_SERVER = '''
import asyncio, os, sys
from pydantic import BaseModel
from mcp.server import MCPServer
from mcp.server.mcpserver import Context

app = MCPServer("sdk-stdio")
MARKERS = sys.argv[1]

@app.tool()
def echo(text: str) -> str:
    """Returns its text."""
    return text

@app.tool()
def whoami() -> int:
    """The program's pid."""
    return os.getpid()

@app.tool()
async def slow(seconds: float, tag: str) -> str:
    """Sleeps; notes its start and a cancellation in the markers folder."""
    with open(os.path.join(MARKERS, "started-" + tag), "w") as f:
        f.write("started")
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        with open(os.path.join(MARKERS, "cancelled-" + tag), "w") as f:
            f.write("cancelled")
        raise
    return "slept"

class Confirm(BaseModel):
    ok: bool

@app.tool()
async def deploy(target: str, ctx: Context) -> str:
    """Asks the user first (elicitation from the program)."""
    answer = await ctx.elicit(f"Deploy to {target}?", schema=Confirm)
    if answer.action == "accept" and answer.data.ok:
        return f"deployed to {target}"
    return f"not deployed ({answer.action})"

@app.tool()
async def count(steps: int, ctx: Context) -> str:
    """Reports progress at each step and logs once."""
    await ctx.info(f"counting {steps} steps")
    for i in range(1, steps + 1):
        await ctx.report_progress(i, steps, f"step {i} of {steps}")
        await asyncio.sleep(0.01)
    return f"counted to {steps}"

@app.tool()
async def ask_model(question: str, ctx: Context) -> str:
    """Asks the client's model (sampling from the program)."""
    from mcp_types import SamplingMessage, TextContent
    r = await ctx.session.create_message(
        [SamplingMessage(role="user", content=TextContent(type="text", text=question))], max_tokens=50)
    return f"{r.model} says: {r.content.text}"

@app.tool()
async def roots(ctx: Context) -> str:
    """Lists the client's roots (roots/list from the program)."""
    r = await ctx.session.list_roots()
    return " ".join(str(root.uri) for root in r.roots)

@app.tool()
def inherited() -> str:
    """What the program was given: its variables' names and where each open descriptor points."""
    import json
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass
    return json.dumps({"env": sorted(os.environ), "fds": fds})

@app.tool()
async def grow(name: str, ctx: Context) -> str:
    """Adds a tool and announces the change (tools list_changed from the program)."""
    def grown() -> str:
        return "grown"
    app.add_tool(grown, name=name, description="Added at run time.")
    await ctx.session.send_tool_list_changed()  # MCPServer declares listChanged false and would not send it
    return "added " + name

if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[2] == "--port":  # transport = "http": the SDK's own HTTP server
        app.run("streamable-http", host="127.0.0.1", port=int(sys.argv[3]))
    else:
        app.run()
'''

FASTMCP_SERVER = '''
import os, sys
from fastmcp import FastMCP

mcp = FastMCP("fastmcp-stdio")

@mcp.tool
def shout(text: str) -> str:
    """Upper-cases its text."""
    return text.upper()

@mcp.tool
def whoami() -> int:
    """The program's pid."""
    return os.getpid()

if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--port":  # transport = "http"
        mcp.run(transport="http", host="127.0.0.1", port=int(sys.argv[2]), show_banner=False)
    else:
        mcp.run(show_banner=False)
'''


def write_command(sup: SupervisorEnv, name: str, command: list[str], **settings) -> Path:
    from supervisor_fixtures import to_toml

    path = sup.servers_dir / f"{name}.toml"
    tmp = sup.servers_dir / f".{name}.tmp"
    tmp.write_text(to_toml({"command": command, **settings}))
    tmp.rename(path)
    return path


def texts(result) -> list[str]:
    return [b.text for b in result.content if getattr(b, "type", "") == "text"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One supervisor with the five command servers (and their test data), for the per-server tests."""
    root = tmp_path_factory.mktemp("commands")
    markers = root / "markers"
    markers.mkdir()
    (root / "sdk_server.py").write_text(SDK_SERVER)
    (root / "fastmcp_server.py").write_text(FASTMCP_SERVER)
    repo = root / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@example.org", "-c", "user.name=test", "commit", "-q",
                    "--allow-empty", "-m", "commit made by the test"], check=True)
    for i in range(32):  # one commit per concurrent caller of git_show
        subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@example.org", "-c", "user.name=test", "commit",
                        "-q", "--allow-empty", "-m", f"commit-{i}"], check=True)
    db = root / "data.sqlite"
    import sqlite3

    with sqlite3.connect(db) as c:
        c.execute("create table fruit(name text)")
        c.execute("insert into fruit values ('quince-from-the-test')")
    env = SupervisorEnv(root)
    env.enable_control()
    write_command(env, "time", [str(VENV / "mcp-server-time"), "--local-timezone", "UTC"])
    # The box opens the program and its interpreter; the data it works on is the admin's to name.
    write_command(env, "git", [str(VENV / "mcp-server-git"), "--repository", str(repo)],
                  sandbox={"write_paths": [str(repo)]}, env={"GIT_CONFIG_NOSYSTEM": "1"})
    write_command(env, "sqlite", [str(SQLITE_VENV / "mcp-server-sqlite"), "--db-path", str(db)],
                  sandbox={"write_paths": [str(root)]})
    write_command(env, "fast", [str(VENV / "python"), "fastmcp_server.py"], working_directory=str(root))
    write_command(env, "sdk", [str(VENV / "python"), str(root / "sdk_server.py"), str(markers)],
                  host_args=["--call-timeout", "3"], sandbox={"write_paths": [str(markers)]})
    # transport = "http": the same two programs serving Streamable HTTP themselves on the port the host gives.
    write_command(env, "sdk_http", [str(VENV / "python"), str(root / "sdk_server.py"), str(markers), "--port", "{port}"],
                  transport="http", host_args=["--call-timeout", "3"], sandbox={"write_paths": [str(markers)]})
    write_command(env, "fast_http", [str(VENV / "python"), "fastmcp_server.py", "--port", "{port}"],
                  transport="http", path="/mcp", working_directory=str(root))
    run_ = env.start()
    ports = {}
    try:
        for name in ["time", "git", "sqlite", "fast", "sdk", "sdk_http", "fast_http"]:
            run_.running(name, timeout=60)
            ports[name] = run_.port_of(name)
    except BaseException:
        env.cleanup()  # a server that never came up must not leave the supervisor and its programs running
        raise
    yield {"env": env, "run": run_, "ports": ports, "repo": repo, "markers": markers, "root": root}
    errors = env.cleanup()
    assert not errors, errors


def url(world, name: str) -> str:
    return f"http://127.0.0.1:{world['ports'][name]}/mcp"


CASES = {
    "time": ("get_current_time", {"timezone": "UTC"}, lambda t: '"timezone": "UTC"' in t),
    "git": ("git_log", None, lambda t: "commit-31" in t),
    "sqlite": ("read_query", {"query": "select name from fruit"}, lambda t: "quince-from-the-test" in t),
    "fast": ("shout", {"text": "quiet"}, lambda t: t == "QUIET"),
    "sdk": ("echo", {"text": "hello bridge"}, lambda t: t == "hello bridge"),
    "sdk_http": ("echo", {"text": "hello front"}, lambda t: t == "hello front"),
    "fast_http": ("shout", {"text": "loud"}, lambda t: t == "LOUD"),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(CASES))
def test_each_program_lists_and_calls_in_both_eras(world, name, mode):
    tool, arguments, check = CASES[name]
    if arguments is None:
        arguments = {"repo_path": str(world["repo"])}

    async def body(c: Client):
        listed = await c.list_tools()
        result = await c.call_tool(tool, arguments)
        return [t.name for t in listed.tools], result

    (names, result), seen = run(run_client(url(world, name), mode, body))
    assert tool in names
    assert not result.is_error, texts(result)
    assert any(check(t) for t in texts(result)), texts(result)
    assert seen.get("tools/call", 0) >= 1


@pytest.mark.parametrize("name", ["sdk", "fast", "time", "git", "sqlite", "sdk_http", "fast_http"])
def test_32_concurrent_callers_get_their_own_answers(world, name):
    if name == "git":
        tool = "git_show"
        def args(i):
            return {"repo_path": str(world["repo"]), "revision": f"HEAD~{31 - i}"}
        def expect(i, t):
            return f"commit-{i}\n" in t + "\n"
    elif name == "sqlite":
        tool = "read_query"
        def args(i):
            return {"query": f"select 'caller-{i}-x' as v"}
        def expect(i, t):
            return f"'caller-{i}-x'" in t or f'"caller-{i}-x"' in t
    elif name == "time":
        tool = "convert_time"
        def args(i):
            return {"source_timezone": "UTC", "time": f"{i % 24:02d}:{i % 60:02d}", "target_timezone": "UTC"}
        def expect(i, t):
            return f"{i % 24:02d}:{i % 60:02d}" in t
    else:
        tool = "echo" if name.startswith("sdk") else "shout"
        def args(i):
            return {"text": f"caller-{i}-x"}
        def expect(i, t):
            return t.lower() == f"caller-{i}-x"

    async def one(i, mode):
        async def body(c: Client):
            return await c.call_tool(tool, args(i))
        result, _ = await run_client(url(world, name), mode, body)
        return i, texts(result)

    async def all_of_them():
        out = {}
        async with anyio.create_task_group() as tg:
            async def go(i):
                k, t = await one(i, MODES[i % 2])
                out[k] = t
            for i in range(32):
                tg.start_soon(go, i)
        return out

    answers = run(all_of_them())
    assert sorted(answers) == list(range(32))
    for i, t in answers.items():
        assert t and any(expect(i, x) for x in t), (i, t)


@pytest.mark.parametrize("name", ["sdk", "sdk_http"])
def test_a_call_past_its_deadline_is_cancelled_in_the_program(world, name):
    """The sdk servers' hosts have --call-timeout 3: the host answers the client and sends the program
    notifications/cancelled, whose handler notes it in the markers folder."""
    marker = world["markers"] / f"cancelled-deadline-{name}"

    async def body(c: Client):
        return await c.call_tool("slow", {"seconds": 30, "tag": f"deadline-{name}"})

    started = time.monotonic()
    try:
        result, _ = run(run_client(url(world, name), "legacy", body))
        failed = result.is_error
    except Exception:  # the SDK raises for a JSON-RPC error
        failed = True
    assert failed
    assert time.monotonic() - started < 20
    wait_until(marker.exists, 10, "the program saw the cancellation")


@pytest.mark.parametrize("name", ["sdk", "sdk_http"])
def test_a_client_cancellation_reaches_the_program(world, name):
    """A legacy client's notifications/cancelled for its request reaches the program's handler."""
    from conftest import LegacySession

    markers = world["markers"]
    tag = f"client-{name}"
    s = LegacySession(world["ports"][name], "2025-11-25")
    s.initialize()
    replies = []
    caller = threading.Thread(
        target=lambda: replies.append(
            s.request("tools/call", {"name": "slow", "arguments": {"seconds": 30, "tag": tag}}, id=77,
                      timeout=20)),
        daemon=True)
    caller.start()
    wait_until((markers / f"started-{tag}").exists, 10, "the program started the call")
    ack = s.notify("notifications/cancelled", {"requestId": 77, "reason": "the test changed its mind"})
    assert ack.status == 202
    wait_until((markers / f"cancelled-{tag}").exists, 10, "the program saw the client's cancellation")
    caller.join(20)
    s.delete()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["sdk", "sdk_http"])
def test_the_programs_elicitation_reaches_the_client(world, name, mode):
    asked: list = []

    async def callback(context, params):
        asked.append(params)
        return types.ElicitResult(action="accept", content={"ok": True})

    async def body(c: Client):
        return await c.call_tool("deploy", {"target": "staging"})

    result, _ = run(run_client(url(world, name), mode, body, elicitation_callback=callback))
    assert texts(result) == ["deployed to staging"], result
    assert asked and "Deploy to staging?" in asked[-1].message


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["sdk", "sdk_http"])
def test_the_programs_progress_and_log_reach_the_client(world, name, mode):
    progress: list = []
    logs: list = []

    async def on_log(params):
        logs.append(params)

    async def on_progress(p, total, message):
        progress.append((p, total, message))

    async def body(c: Client):
        if mode == "legacy":
            await c.set_logging_level("info")
        return await c.call_tool("count", {"steps": 5}, progress_callback=on_progress)

    extra = {"log_level": "info"} if mode == "auto" else {}
    result, _ = run(run_client(url(world, name), mode, body, logging_callback=on_log, **extra))
    assert texts(result) == ["counted to 5"], result
    assert [p for p, _, _ in progress] == [1, 2, 3, 4, 5], progress
    assert all(total == 5 for _, total, _ in progress) and progress[0][2] == "step 1 of 5"
    assert [entry.data for entry in logs] == ["counting 5 steps"], logs


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["sdk", "sdk_http"])
def test_the_programs_sampling_and_roots_reach_the_client(world, name, mode):
    asked: list = []

    async def sampling(context, params):
        asked.append(params)
        return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text="forty-two"),
                                         model="test-model")

    async def roots(context):
        return types.ListRootsResult(roots=[types.Root(uri="file:///srv/a"), types.Root(uri="file:///srv/b")])

    async def body(c: Client):
        return await c.call_tool("ask_model", {"question": "6 x 7?"}), await c.call_tool("roots", {})

    (model, listed), _ = run(run_client(url(world, name), mode, body, sampling_callback=sampling,
                                        list_roots_callback=roots))
    assert texts(model) == ["test-model says: forty-two"], model
    assert [m.content.text for m in asked[-1].messages] == ["6 x 7?"]
    assert texts(listed) == ["file:///srv/a file:///srv/b"], listed


@pytest.mark.parametrize("name", ["sdk", "sdk_http"])
def test_the_programs_list_change_reaches_clients_in_both_eras(world, name):
    """grow adds a tool in the program and sends tools/list_changed: a legacy session's stream and a 2026-07-28
    subscriptions/listen both hear it, and the new tool is listed and callable through the bridge."""
    received: list = []
    tool = f"grown_{name}_{int(time.monotonic() * 1000)}"

    async def on_message(message):
        received.append(getattr(message, "root", message))

    async def legacy(c: Client):
        await c.call_tool("grow", {"name": tool})
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any("ToolListChanged" in type(m).__name__ for m in received):
            await anyio.sleep(0.02)
        return [t.name for t in (await c.list_tools()).tools], await c.call_tool(tool, {})

    (names, called), _ = run(run_client(url(world, name), "legacy", legacy, message_handler=on_message))
    assert any("ToolListChanged" in type(m).__name__ for m in received), received
    assert tool in names and texts(called) == ["grown"]

    second = tool + "_b"

    async def modern(c: Client):
        async with c.listen(tools_list_changed=True) as sub:
            await c.call_tool("grow", {"name": second})
            async for event in sub:
                return type(event).__name__, [t.name for t in (await c.list_tools()).tools]

    (kind, names), _ = run(run_client(url(world, name), "auto", modern))
    assert "Tool" in kind and second in names, (kind, names)


@pytest.mark.parametrize("name", ["sdk", "sdk_http"])
def test_the_program_never_sees_the_supervisors_descriptors_or_variables(world, name):
    """The host's fd 3 (the server's listening socket) and fd 4 (the control channel) stay the host's; the
    supervisor's and systemd's variables are not passed on; HOME is the server's state folder."""
    import json as _json

    async def body(c: Client):
        return await c.call_tool("inherited", {})

    result, _ = run(run_client(url(world, name), "legacy", body))
    seen = _json.loads(texts(result)[0])
    host_pid = world["env"].status(name)["replicas"][0]["pid"]
    host_fds = {fd: os.readlink(f"/proc/{host_pid}/fd/{fd}") for fd in ("3", "4")}
    assert all(t.startswith("socket:") for t in host_fds.values()), host_fds
    assert not set(host_fds.values()) & set(seen["fds"].values()), (host_fds, seen["fds"])
    # Which server and replica it serves are its to know (docs/servers.md); nothing else of ours.
    leaked = [k for k in seen["env"] if (k.startswith("MCP_") and k not in ("MCP_SERVER_NAME", "MCP_REPLICA")) or k in (
        "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC", "WATCHDOG_PID")]
    assert not leaked, leaked
    assert "HOME" in seen["env"]


def sdk_pid(port: int, name: str = "sdk") -> int:
    async def body(c: Client):
        return await c.call_tool("whoami", {})

    result, _ = run(run_client(f"http://127.0.0.1:{port}/mcp", "legacy", body))
    return int(texts(result)[0])


@pytest.mark.parametrize("name", ["sdk", "sdk_http"])
def test_sigkill_of_the_program_brings_it_back_on_the_same_port_with_nothing_refused(world, name):
    port = world["ports"][name]
    run_ = world["run"]
    before = sdk_pid(port)
    refused = []
    stop = threading.Event()

    def knock():
        while not stop.is_set():
            if connect_refused(port):
                refused.append(time.monotonic())
            time.sleep(0.005)

    t = threading.Thread(target=knock, daemon=True)
    mark = run_.mark()
    t.start()
    try:
        os.kill(before, signal.SIGKILL)
        run_.wait_for(rf"{name}\[\d+\]: .*was killed by signal 9", 20, start=mark)
        run_.running(name, timeout=60, start=mark)
        after = sdk_pid(port)
    finally:
        stop.set()
        t.join(5)
    assert after != before
    assert not refused, f"{len(refused)} connection(s) refused while the program restarted"
    assert run_.port_of(name) == port
    status = world["env"].status(name)
    assert status["port"] == port
    assert status["replicas"][0]["restarts"] >= 1
    assert "killed by signal 9" in (status["replicas"][0]["last_exit"] or ""), status
    assert status["kind"] == "command" and status["target"][0] == str(VENV / "python"), status
    assert status["transport"] == ("http" if name.endswith("_http") else "stdio"), status


def test_what_the_program_started_is_stopped_with_it(env):
    """The program's own children are in its host's process group: when the program dies, the host exits 21 and
    the supervisor kills the group, so a child the program left running is gone too (and reaped)."""
    root = env.root
    (root / "sdk_server.py").write_text(SDK_SERVER)
    markers = root / "m"
    markers.mkdir()
    launcher = f"sleep 600 & echo $! > {markers}/child; exec {VENV / 'python'} {root / 'sdk_server.py'} {markers}"
    # A shell launcher: the box opens what its command line names, so the program it execs is the admin's to name.
    python_prefix = Path(os.path.realpath(VENV / "python")).parents[1]
    write_command(env, "family", ["/bin/sh", "-c", launcher],
                  sandbox={"write_paths": [str(markers)],
                           "read_paths": [str(VENV.parent), str(python_prefix), str(root / "sdk_server.py")]})
    r = env.start()
    r.running("family", timeout=60)
    child = int((markers / "child").read_text())
    assert pid_alive(child)
    program = sdk_pid(r.port_of("family"))
    mark = r.mark()
    os.kill(program, signal.SIGKILL)
    r.wait_for(r"family\[\d+\]: .*the program was killed by signal 9", 20, start=mark)
    wait_until(lambda: not pid_alive(child), 10, "the program's child is gone and reaped")
    r.running("family", timeout=60, start=mark)
    assert int((markers / "child").read_text()) != child
    r.stop()


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_sigstop_makes_the_program_unhealthy_and_it_is_restarted(env, transport):
    """A program that stops answering (on stdio, or on its HTTP port) while alive: the detailed probe's ping
    fails, the server turns unhealthy and is restarted; the stopped program is gone with its host."""
    root = env.root
    (root / "sdk_server.py").write_text(SDK_SERVER)
    (root / "m").mkdir()
    extra = {"transport": "http"} if transport == "http" else {}
    write_command(env, "stuck", [str(VENV / "python"), str(root / "sdk_server.py"), str(root / "m")]
                  + (["--port", "{port}"] if transport == "http" else []), **extra,
                  host_args=["--ping-timeout", "0.5"],
                  health={"interval": 0.3, "timeout": 2, "failures": 2})
    r = env.start()
    r.running("stuck", timeout=60)
    port = r.port_of("stuck")
    pid = sdk_pid(port)
    mark = r.mark()
    os.kill(pid, signal.SIGSTOP)
    try:
        r.wait_for(r"stuck.*unhealthy", 30, start=mark)
        r.running("stuck", timeout=60, start=mark)
        wait_until(lambda: not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z",
                   10, "the stopped program is gone")
        assert sdk_pid(port) != pid
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    r.stop()


def test_a_command_that_does_not_exist_is_reported_and_not_restarted(env):
    write_command(env, "ghost", ["no-such-program-here", "--flag"])
    r = env.start()
    hit = r.wait_for(r"ghost.*'no-such-program-here' is not found on PATH", 30)
    assert hit
    # A permanent status (50, the command range): exited, never restarted.
    wait_until(lambda: env.status("ghost")["replicas"][0]["state"] == "exited", 20, "ghost has exited")
    status = env.status("ghost")
    assert status["state"] == "down", status
    last = status["replicas"][0]["last_exit"] or ""
    assert last.startswith("exited with status 50 (command error): no-such-program-here --flag: "), last
    assert status["replicas"][0]["restarts"] == 0
    r.stop()


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_a_command_that_exits_at_once_is_reported(env, transport):
    extra = {"transport": "http"} if transport == "http" else {}
    write_command(env, "quitter", [sys.executable, "-c", "import sys; sys.stderr.write('bad flag\\n'); sys.exit(3)"]
                  + (["{port}"] if transport == "http" else []), **extra,
                  backoff={"initial": 0.05, "max": 0.1}, intensity={"max_restarts": 2, "window": 60})
    r = env.start()
    r.wait_for(r"quitter.*bad flag", 30)
    r.wait_for(r"quitter.*no answer to initialize .*exited with status 3", 30)
    wait_until(lambda: env.status("quitter")["replicas"][0]["state"] == "fatal", 30, "quitter is fatal after its restarts")
    assert "exited with status 3" in (env.status("quitter")["replicas"][0]["last_exit"] or "")
    r.stop()


def test_an_http_program_that_never_listens_is_reported_and_not_restarted(env):
    """transport = "http" with a program that runs but never serves its port: 54 within the start timeout,
    naming the endpoint; the program is stopped with its host."""
    write_command(env, "mute", [sys.executable, "-c", "import sys, time; time.sleep(600)", "--port", "{port}"],
                  transport="http", start_timeout=2)
    r = env.start()
    hit = r.wait_for(r"mute.*did not serve MCP at http://127\.0\.0\.1:(\d+)/mcp within", 30)
    wait_until(lambda: env.status("mute")["replicas"][0]["state"] == "exited", 20, "mute has exited")
    status = env.status("mute")
    assert (status["replicas"][0]["last_exit"] or "").startswith("exited with status 54 (command error): "), status
    assert status["replicas"][0]["restarts"] == 0
    r.stop()


def test_a_mixed_configuration_starts_in_order_and_reloads_by_difference(env, reference_plugin, tmp_path):
    (tmp_path / "fastmcp_server.py").write_text(FASTMCP_SERVER)
    env.write_server("base", reference_plugin)
    write_command(env, "fast", [str(VENV / "python"), str(tmp_path / "fastmcp_server.py")], depends_on=["base"])
    write_command(env, "clock", [str(VENV / "mcp-server-time")], depends_on=["fast"])
    r = env.start()
    base_pid, base_hit = r.running("base", timeout=60)
    _, fast_hit = r.running("fast", timeout=60)
    _, clock_hit = r.running("clock", timeout=60)
    assert base_hit.index < fast_hit.index < clock_hit.index
    fast_start = r.wait_for(r"^mcp-supervisor: fast: starting", 5)
    assert fast_start.index > base_hit.index, "fast started before base was ready"
    fast_port = r.port_of("fast")
    fast_pid = sdk_pid(fast_port)
    mark = r.mark()
    write_command(env, "clock", [str(VENV / "mcp-server-time"), "--local-timezone", "UTC"], depends_on=["fast"])
    r.signal(signal.SIGHUP)
    r.running("clock", timeout=60, start=mark)
    assert env.status("base")["replicas"][0]["pid"] == base_pid
    assert sdk_pid(fast_port) == fast_pid
    r.stop()


@pytest.mark.parametrize("text,message", [
    ('plugin = "/x.so"\ncommand = ["a"]\n', r"command.*cannot be combined with plugin"),
    ('command = []\n', r"command.*must name a program first"),
    ('command = [""]\n', r"command.*must name a program first"),
    ('command = ["a"]\ntransport = "carrier-pigeon"\n', r"transport.*must be stdio or http"),
    ('command = ["a", "--port", "8080"]\ntransport = "http"\n', r"command.*needs \{port\}"),
    ('command = ["a"]\npath = "/mcp"\n', r"path.*set transport = .http."),
    ('command = ["a", "{port}"]\ntransport = "http"\npath = "mcp"\n', r"path.*must be a URL path"),
    ('plugin = "/x.so"\npath = "/mcp"\n', r"path.*is for a command server"),
    ('command = ["a"]\n[config]\nx = 1\n', r"config.*is a plugin's configuration"),
    ('command = ["a"]\ntrust = "signed"\n', r"trust.*checks a plugin file"),
    ('plugin = "/x.so"\nworking_directory = "/tmp"\n', r"working_directory.*is for a command server"),
    ('name = "x"\n', r"plugin.*is required .* or command = "),
])
def test_bad_command_settings_are_named(env, text, message):
    path = env.write_raw("bad", text)
    out = env.check_config()
    assert out.returncode != 0
    assert str(path) in out.stderr + out.stdout
    assert re.search(message, out.stderr + out.stdout), out.stderr + out.stdout


def test_the_bundled_example_configuration_holds_a_command_server():
    """scripts/run-example.sh's configuration: the plugins and mcp-server-time as a command server, valid as
    shipped (the program's relative path resolves from its file)."""
    import os as _os

    out = subprocess.run([_os.environ["MCP_SUPERVISOR"], "--config", str(REPO / "examples" / "supervisor.toml"),
                          "--check-config"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert re.search(r"configuration OK: \d+ server\(s\): .*\btime\b", out.stdout + out.stderr), out.stderr


def test_a_relative_program_path_is_relative_to_its_file(env):
    """command = ["bin/prog"] in servers.d/x.toml names servers.d/bin/prog, wherever the supervisor runs."""
    bin_dir = env.servers_dir / "bin"
    bin_dir.mkdir()
    prog = bin_dir / "time-server"
    prog.write_text(f"#!/bin/sh\nexec {VENV / 'mcp-server-time'} \"$@\"\n")
    prog.chmod(0o755)
    write_command(env, "rel", ["bin/time-server", "--local-timezone", "UTC"],
                  sandbox={"read_paths": [str(VENV.parent), str(Path(os.path.realpath(VENV / "python")).parents[1])]})
    r = env.start()
    r.running("rel", timeout=60)
    status = env.status("rel")
    assert status["replicas"][0]["state"] == "running", status
    r.stop()


def test_a_2026_retry_resumes_the_parked_program_call_or_replays_at_another_host(tmp_path):
    """docs/servers.md: a 2026-07-28 client's input_required parks the program's call behind a sealed token. The
    retry at the same host resumes that call; the retry at another host with the server's key (a replica, or
    the host after a restart) starts the call afresh there and answers the program's request from the retry."""
    from conftest import await_serving, host_binary, modern_meta, modern_post

    (tmp_path / "sdk_server.py").write_text(SDK_SERVER)
    markers = tmp_path / "m"
    markers.mkdir()
    key = "5e" * 32
    hosts = []
    try:
        for _ in range(2):
            proc = subprocess.Popen(
                [str(host_binary()), "--listen", "127.0.0.1:0", "--", str(VENV / "python"),
                 str(tmp_path / "sdk_server.py"), str(markers)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                start_new_session=True, env={**os.environ, "MCP_REQUEST_STATE_KEY": key})
            m, line = await_serving(proc, time.monotonic() + 60)
            assert m, line
            hosts.append((proc, int(m.group(2))))
        (a, port_a), (b, port_b) = hosts
        call = {"name": "deploy", "arguments": {"target": "prod"}}
        meta = modern_meta(capabilities={"elicitation": {}})
        accept = {"input-1": {"action": "accept", "content": {"ok": True}}}
        for retry_port, how in [(port_a, "resumed"), (port_b, "replayed")]:
            first = modern_post(port_a, "tools/call", call, meta=meta).json()["result"]
            assert first["resultType"] == "input_required", first
            assert first["inputRequests"]["input-1"]["method"] == "elicitation/create", first
            assert "Deploy to prod?" in first["inputRequests"]["input-1"]["params"]["message"]
            done = modern_post(retry_port, "tools/call",
                               {**call, "requestState": first["requestState"], "inputResponses": accept},
                               id=2, meta=meta).json()
            assert done["result"]["resultType"] == "complete", (how, done)
            assert [c["text"] for c in done["result"]["content"]] == ["deployed to prod"], (how, done)
    finally:
        for proc, _ in hosts:
            proc.send_signal(signal.SIGTERM)
        for proc, _ in hosts:
            assert proc.wait(20) == 0
            pgid = proc.pid
            wait_until(lambda: not any(
                os.path.exists(f"/proc/{p}") and open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[2] == str(pgid)
                for p in os.listdir("/proc") if p.isdigit()), 10, "the host's program is gone")
