"""The status page (`/` on metrics_listen, StatusPage.swift) in headless Chromium (Debian's `chromium`).

Two sources of pages:
- rendered by StatusPage.render from fixed models, written by the Swift test StatusPageFileTests
  (`STATUS_PAGE_OUT=DIR .build/debug/mcp-supervisorPackageTests.xctest --testing-library swift-testing --filter
  StatusPageFileTests`, so this needs the debug test build that scripts/test.sh makes before the integration tests): page.html (four servers in two groups, one named like a
  script) and killed.html (the same once `alpha` was killed), with expected.tsv listing what each page shows;
- (the live test) served by a real supervisor on metrics_listen.

Chromium runs headless three ways: `--dump-dom` (the DOM after load, with JavaScript on or off through
`--blink-settings=scriptEnabled=false`), `--screenshot` (a PNG read here with zlib, no PIL), and driven over the
DevTools protocol on a pipe (`--remote-debugging-pipe`: fd 3 in, fd 4 out, NUL-terminated JSON; no websocket
library needed), which the refresh tests use to watch the page's DOM change while it stays open: they poll the
page's state with a deadline, never sleep for it.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import struct
import subprocess
import threading
import time
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import REPO, plugin_path
from supervisor_fixtures import call_tool, control_env, free_port  # noqa: F401 (fixture env)

REFRESH_SECONDS = 5  # StatusPage.refreshSeconds


def chromium_binary() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed (apt-get install chromium; scripts/install-deps.sh installs it)",
                    pytrace=False)
    return path


def chromium_args(profile: Path, *extra: str) -> list[str]:
    return [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--mute-audio", "--hide-scrollbars",
            f"--user-data-dir={profile}", *extra]


def run_chromium(profile: Path, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """One headless run that ends by itself (dump-dom or screenshot); its whole process group is killed if it
    overruns, so no renderer is left behind."""
    proc = subprocess.Popen(chromium_args(profile, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"chromium did not finish within {timeout} s: {args}")
    finally:
        _reap_group(proc.pid)
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {err.decode(errors='replace')[-2000:]}"
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _reap_group(pgid: int) -> None:
    """Chromium's helpers (zygote, renderer, GPU) are in its process group: make sure none outlives the test."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.killpg(pgid, signal.SIGKILL)


JS_OFF = "--blink-settings=scriptEnabled=false"


def dump_dom(profile: Path, url: str, *, js: bool = True) -> str:
    """The DOM after load. With JavaScript on, `--dump-dom`; with it off, --dump-dom prints nothing (it reads the
    DOM with script), so the DevTools protocol's DOM.getOuterHTML reads it instead."""
    if js:
        return run_chromium(profile, "--dump-dom", url).stdout.decode()
    devtools = DevTools(profile, url, JS_OFF)
    try:
        return wait_for(lambda: (lambda t: t if "</footer>" in t else None)(devtools.outer_html()), 15, "the page")
    finally:
        devtools.close()


# ------------------------------------------------------------------------------------------------------------
# A small DOM from Chromium's serialisation (html.parser; enough for ids, attributes and text)
# ------------------------------------------------------------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
SVG_SELF_CLOSING = {"line", "polyline", "circle", "path", "rect"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self):
        yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.iter()

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        out = []
        for n in self.iter():
            if tag is not None and n.tag != tag:
                continue
            if all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items()):
                out.append(n)
        return out

    def by_id(self, id: str) -> Node | None:
        for n in self.iter():
            if n.attrs.get("id") == id:
                return n
        return None

    def has_class(self, name: str) -> bool:
        return name in self.attrs.get("class", "").split()


class _TreeBuilder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: (v or "") for k, v in attrs}, self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, {k: (v or "") for k, v in attrs}, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def parse_dom(html: str) -> Node:
    b = _TreeBuilder()
    b.feed(html)
    b.close()
    return b.root


# ------------------------------------------------------------------------------------------------------------
# PNG reading (zlib + struct): the screenshot's pixels
# ------------------------------------------------------------------------------------------------------------


def png_pixels(data: bytes) -> tuple[int, int, list[bytes], int]:
    """(width, height, rows of RGB(A) bytes, bytes per pixel) of an 8-bit RGB or RGBA, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + ((a + b) >> 1)) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, rows, bpp


def colour_counts(data: bytes) -> tuple[int, int, dict[tuple[int, int, int], int]]:
    width, height, rows, bpp = png_pixels(data)
    counts: dict[tuple[int, int, int], int] = {}
    for r in rows:
        for i in range(0, len(r), bpp):
            px = (r[i], r[i + 1], r[i + 2])
            counts[px] = counts.get(px, 0) + 1
    return width, height, counts


def near(counts: dict[tuple[int, int, int], int], rgb: tuple[int, int, int], tolerance: int = 12) -> int:
    return sum(n for px, n in counts.items() if all(abs(a - b) <= tolerance for a, b in zip(px, rgb)))


GREEN, RED, AMBER = (0x1A, 0x7F, 0x37), (0xCF, 0x22, 0x2E), (0x9A, 0x67, 0x00)  # StatusPage.css --ok --bad --warn


# ------------------------------------------------------------------------------------------------------------
# The DevTools protocol over a pipe
# ------------------------------------------------------------------------------------------------------------


class DevTools:
    """A headless Chromium driven over --remote-debugging-pipe, with one page open on `url`."""

    def __init__(self, profile: Path, url: str, *extra: str):
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def fds():  # in the child, before exec: the pipe ends become fds 3 (commands in) and 4 (answers out)
            os.dup2(to_child_r, 3)
            os.dup2(from_child_w, 4)

        self.proc = subprocess.Popen(
            chromium_args(profile, "--remote-debugging-pipe", "--window-size=1280,900", *extra, url),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=fds, pass_fds=(3, 4),
            start_new_session=True)
        os.close(to_child_r)
        os.close(from_child_w)
        self._next = 0
        self._answers: dict[int, dict] = {}
        self._cond = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._stderr: list[bytes] = []
        self._stderr_reader = threading.Thread(target=lambda: self._stderr.extend(self.proc.stderr), daemon=True)
        self._stderr_reader.start()
        targets = wait_for(lambda: [t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page"],
                           10, "a page target")
        self.session = self.call("Target.attachToTarget", targetId=targets[0]["targetId"], flatten=True)["sessionId"]

    def _read(self) -> None:
        buf = b""
        while True:
            chunk = os.read(self._from_child, 65536)
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                msg, _, buf = buf.partition(b"\0")
                m = json.loads(msg)
                if "id" in m:
                    with self._cond:
                        self._answers[m["id"]] = m
                        self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def call(self, method: str, timeout: float = 15.0, session: str | None = None, **params):
        self._next += 1
        mid = self._next
        msg = {"id": mid, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cond:
            while mid not in self._answers:
                left = deadline - time.monotonic()
                if self._closed or left <= 0:
                    raise AssertionError(f"no answer to {method} (chromium: "
                                         f"{b''.join(self._stderr).decode(errors='replace')[-1500:]})")
                self._cond.wait(left)
            answer = self._answers.pop(mid)
        assert "error" not in answer, f"{method}: {answer['error']}"
        return answer["result"]

    def outer_html(self) -> str:
        """The document as the DOM holds it now (DOM.getOuterHTML needs no page script)."""
        doc = self.call("DOM.getDocument", session=self.session, depth=0)
        try:
            return self.call("DOM.getOuterHTML", session=self.session, nodeId=doc["root"]["nodeId"])["outerHTML"]
        except AssertionError as e:
            if "Could not find node" in str(e):
                return ""  # the document was replaced in between (loading, or the no-script reload): ask again
            raise

    def evaluate(self, expression: str):
        r = self.call("Runtime.evaluate", session=self.session, expression=expression, returnByValue=True)
        assert "exceptionDetails" not in r, r["exceptionDetails"]
        return r["result"].get("value")

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except AssertionError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        _reap_group(self.proc.pid)
        os.close(self._to_child)
        self._reader.join(5)
        os.close(self._from_child)
        self._stderr_reader.join(5)
        self.proc.stderr.close()


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


# JavaScript run in the page: what a refresh test watches.
ROW_STATE_JS = """(() => {
  const row = document.getElementById(%s);
  if (!row) return null;
  const badge = row.querySelector('.badge.state');
  return {state: row.dataset.state, health: row.dataset.health, word: badge.textContent,
          colour: getComputedStyle(badge).backgroundColor, border: getComputedStyle(row.querySelector('th')).borderLeftColor,
          refreshes: Number(document.documentElement.dataset.refreshes || 0), marker: window.__statusPageMarker || null,
          sparks: row.querySelectorAll('svg.spark').length};
})()"""


def rgb(css: str) -> tuple[int, int, int]:
    inner = css[css.index("(") + 1:css.index(")")]
    return tuple(int(float(x)) for x in inner.split(",")[:3])


# ------------------------------------------------------------------------------------------------------------
# The pages from StatusPage.render
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("status-page")
    # The test command's is the AddressSanitizer build's (MCP_TEST_BUNDLE); by hand, the default debug build's.
    bundle = Path(os.environ.get("MCP_TEST_BUNDLE", REPO / ".build" / "debug" / "mcp-supervisorPackageTests.xctest"))
    if not bundle.exists():
        pytest.fail(f"{bundle} is missing: run `swift build --build-tests` first (scripts/test.sh does)", pytrace=False)
    # The test bundle itself rather than `swift test --skip-build`, which waits for any SwiftPM build holding .build.
    r = subprocess.run([str(bundle), "--testing-library", "swift-testing", "--filter", "StatusPageFileTests"],
                       cwd=REPO, env={"ASAN_OPTIONS": "detect_leaks=0", **os.environ, "STATUS_PAGE_OUT": str(out)}, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for name in ("page.html", "killed.html", "expected.tsv"):
        assert (out / name).is_file(), f"StatusPageFileTests did not write {name}:\n{r.stdout[-2000:]}"
    return out


def expected(rendered: Path, page: str) -> list[tuple[str, str, str, int]]:
    rows = []
    for line in (rendered / "expected.tsv").read_text().splitlines():
        p, id, state, health, samples = line.split("\t")
        if p == page:
            rows.append((id, state, health, int(samples)))
    assert rows, f"no expected rows for {page}"
    return rows


def check_servers(dom: Node, rows: list[tuple[str, str, str, int]]) -> None:
    assert len(dom.find_all("tr", **{"class": "server"})) == len(rows)
    for id, state, health, samples in rows:
        row = dom.by_id(id)
        assert row is not None, f"no element #{id}"
        assert row.attrs["data-state"] == state and row.attrs["data-health"] == health, row.attrs
        words = [b.text().strip() for b in row.iter() if b.tag == "span" and b.has_class("badge")]
        assert words[0] == state and words[1].endswith(health), words
        sparks = [n for n in row.iter() if n.tag == "svg" and n.has_class("spark")]
        assert [s.attrs["data-metric"] for s in sparks] == ["rate", "errors", "p95"]
        assert all(int(s.attrs["data-samples"]) == samples for s in sparks)
        if samples > 1:
            line = [n for n in sparks[0].iter() if n.tag == "polyline"]
            assert line and len(line[0].attrs["points"].split()) == samples, "the rate sparkline has every sample"
        name = row.find_all("th")[0]
        assert name.text().startswith(id.removeprefix("server-")), name.text()


@pytest.mark.parametrize("js", [True, False], ids=["js-on", "js-off"])
def test_every_server_its_state_and_sparklines_are_in_the_dom(rendered, tmp_path, js):
    html = dump_dom(tmp_path / "profile", (rendered / "page.html").as_uri(), js=js)
    dom = parse_dom(html)
    check_servers(dom, expected(rendered, "page"))
    root = dom.find_all("html")[0]
    # The script ran exactly when JavaScript was on; a server named like a script never ran.
    assert root.attrs.get("data-js") == ("on" if js else None), root.attrs
    assert "data-pwned" not in root.attrs
    evil = "<script>document.documentElement.setAttribute('data-pwned','1')</script>"
    assert dom.by_id("server-" + evil).find_all("th")[0].text().startswith(evil)
    assert len(dom.find_all("script")) == 1
    note = dom.by_id("noscript-note")
    if js:
        # (<noscript> is serialised as its source text either way, so only the script's note tells.)
        assert dom.by_id("refresh-note").text().startswith("Refreshes every 5 s")
    else:
        assert note is not None and "reloads itself every 5 s" in note.text()
        assert "reload it to refresh" in dom.by_id("refresh-note").text()
        assert dom.find_all("meta", **{"http-equiv": "refresh"})[0].attrs["content"] == str(REFRESH_SECONDS)
    # The header's counts and the groups.
    assert dom.by_id("count-servers").attrs["data-count"] == "4"
    assert dom.by_id("count-healthy").attrs["data-count"] == "1"
    assert dom.by_id("count-degraded").attrs["data-count"] == "1"
    assert dom.by_id("count-down").attrs["data-count"] == "1"
    assert [s.attrs["data-group"] for s in dom.find_all("section")] == ["search", ""]


def test_killed_page_shows_the_new_state(rendered, tmp_path):
    dom = parse_dom(dump_dom(tmp_path / "profile", (rendered / "killed.html").as_uri(), js=False))
    check_servers(dom, expected(rendered, "killed"))


def test_screenshot_is_not_blank_and_shows_state_colours(rendered, tmp_path):
    shots = {}
    for page in ("page", "killed"):
        png = tmp_path / f"{page}.png"
        run_chromium(tmp_path / "profile", f"--screenshot={png}", "--window-size=1280,900",
                     (rendered / f"{page}.html").as_uri())
        width, height, counts = colour_counts(png.read_bytes())
        assert (width, height) == (1280, 900)
        shots[page] = counts
        # Not blank: text, borders, badges and lines give many colours, and no colour covers everything.
        assert len(counts) > 50, len(counts)
        assert max(counts.values()) < 0.97 * width * height
    page, killed = shots["page"], shots["killed"]
    assert near(page, GREEN) > 200 and near(page, RED) > 100 and near(page, AMBER) > 100
    # alpha went from running/healthy (green badges and border) to down/offline (red state badge).
    assert near(killed, GREEN) < near(page, GREEN) - 200, (near(killed, GREEN), near(page, GREEN))
    assert near(killed, RED) > near(page, RED) + 100, (near(killed, RED), near(page, RED))


class _PageServer:
    """A loopback HTTP server that serves `pages[current]` at `/` (the test switches `current`)."""

    def __init__(self, pages: dict[str, bytes], current: str):
        self.pages, self.current, self.hits = pages, current, 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path != "/":
                    self.send_error(404)
                    return
                outer.hits += 1
                if outer.current not in outer.pages:
                    self.send_error(503)
                    return
                body = outer.pages[outer.current]
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def test_script_swaps_main_within_one_refresh_without_reloading(rendered, tmp_path):
    pages = {p: (rendered / f"{p}.html").read_bytes() for p in ("page", "killed")}
    server = _PageServer(pages, "page")
    devtools = None
    try:
        devtools = DevTools(tmp_path / "profile", server.url)
        first = wait_for(lambda: devtools.evaluate(ROW_STATE_JS % json.dumps("server-alpha")), 15, "alpha's row")
        assert first["state"] == "running" and first["word"] == "running" and first["sparks"] == 3
        assert rgb(first["colour"]) == GREEN and rgb(first["border"]) == GREEN, first
        devtools.evaluate("window.__statusPageMarker = 'same document'")
        server.current = "killed"  # alpha was killed
        switched = time.monotonic()
        after = wait_for(lambda: (lambda s: s if s and s["state"] != "running" else None)(
            devtools.evaluate(ROW_STATE_JS % json.dumps("server-alpha"))), REFRESH_SECONDS + 3, "alpha's new state")
        took = time.monotonic() - switched
        assert took <= REFRESH_SECONDS + 1, f"the page changed {took:.1f} s after the server did"
        assert after["state"] == "down" and after["health"] == "offline" and after["word"] == "down", after
        assert rgb(after["colour"]) == RED and rgb(after["border"]) == RED, after
        assert after["refreshes"] >= 1
        assert after["marker"] == "same document", "the page was reloaded instead of its <main> swapped"
        assert server.hits >= 2
        # The rest of the page came along: every server of the new page, and the counts.
        assert devtools.evaluate("document.querySelectorAll('tr.server').length") == 4
        assert devtools.evaluate("document.getElementById('count-down').dataset.count") == "2"
    finally:
        if devtools is not None:
            devtools.close()
        server.close()


def test_a_failed_refresh_keeps_the_page_and_says_so(rendered, tmp_path):
    pages = {"page": (rendered / "page.html").read_bytes()}
    server = _PageServer(pages, "page")
    devtools = None
    try:
        devtools = DevTools(tmp_path / "profile", server.url)
        wait_for(lambda: devtools.evaluate(ROW_STATE_JS % json.dumps("server-alpha")), 15, "alpha's row")
        server.current = "gone"  # the next fetch gets a 503
        note = wait_for(lambda: (lambda t: t if t.startswith("Refresh failed") else None)(
            devtools.evaluate("document.getElementById('refresh-note').textContent")), REFRESH_SECONDS + 3,
            "the refresh-failed note")
        assert "HTTP 503" in note, note
        assert devtools.evaluate(ROW_STATE_JS % json.dumps("server-alpha"))["state"] == "running"
    finally:
        if devtools is not None:
            devtools.close()
        server.close()


def test_with_javascript_off_the_page_reloads_itself_within_one_refresh(rendered, tmp_path):
    pages = {p: (rendered / f"{p}.html").read_bytes() for p in ("page", "killed")}
    server = _PageServer(pages, "page")
    devtools = None
    try:
        devtools = DevTools(tmp_path / "profile", server.url, JS_OFF)

        def alpha():
            html = devtools.outer_html()
            if "</footer>" not in html:
                return None
            return parse_dom(html).by_id("server-alpha")

        first = wait_for(alpha, 15, "alpha's row")
        assert first.attrs["data-state"] == "running"
        assert devtools.evaluate("document.documentElement.dataset.js === undefined")  # the page's script is off
        server.current = "killed"
        switched = time.monotonic()
        after = wait_for(lambda: (lambda r: r if r is not None and r.attrs["data-state"] != "running" else None)(
            alpha()), REFRESH_SECONDS + 3, "alpha's new state")
        took = time.monotonic() - switched
        assert took <= REFRESH_SECONDS + 1, f"the page changed {took:.1f} s after the server did"
        assert after.attrs["data-state"] == "down" and after.attrs["data-health"] == "offline"
        colour = devtools.evaluate(
            "getComputedStyle(document.querySelector('#server-alpha .badge.state')).backgroundColor")
        assert rgb(colour) == RED, colour
    finally:
        if devtools is not None:
            devtools.close()
        server.close()


# ------------------------------------------------------------------------------------------------------------
# The live page: a real supervisor with metrics_listen, real hosts, a real kill
# ------------------------------------------------------------------------------------------------------------


def _get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def _live_state(devtools: DevTools, name: str):
    return devtools.evaluate(ROW_STATE_JS % json.dumps("server-" + name))


def test_live_page_from_a_supervisor_and_a_killed_server(env, tmp_path):
    metrics_port = free_port()
    env.write_main(control_socket=str(env.control_socket), metrics_listen=f"127.0.0.1:{metrics_port}")
    # alpha waits 30 s before its restart, so a kill leaves it down long enough to be seen.
    env.write_server("alpha", plugin_path("reference"), group="search",
                     backoff={"initial": 30, "max": 30, "multiplier": 1, "jitter": 0})
    env.write_server("beta", plugin_path("reference"), group="search")
    env.write_server("gamma", plugin_path("reference"))
    run = env.start()
    pids = {name: run.running(name)[0] for name in ("alpha", "beta", "gamma")}
    alpha_port = run.port_of("alpha")
    wait_for(lambda: _get(metrics_port, "/healthz")[0] == 200, 20, "the metrics listener")
    status, body = _get(metrics_port, "/")
    assert status == 200 and body.startswith(b"<!doctype html>")

    # Every server, its state word and its three sparklines, with JavaScript on and off.
    for js in (True, False):
        dom = parse_dom(dump_dom(tmp_path / f"profile-{js}", f"http://127.0.0.1:{metrics_port}/", js=js))
        rows = dom.find_all("tr", **{"class": "server"})
        assert sorted(r.attrs["id"] for r in rows) == ["server-alpha", "server-beta", "server-gamma"]
        for r in rows:
            assert r.attrs["data-state"] == "running"
            assert [b.text() for b in r.iter() if b.tag == "span" and b.has_class("state")] == ["running"]
            assert len([n for n in r.iter() if n.tag == "svg" and n.has_class("spark")]) == 3
        assert [s.attrs["data-group"] for s in dom.find_all("section")] == ["search", ""]
        assert dom.by_id("server-alpha").attrs["data-group"] == "search"
        assert dom.by_id("replica-alpha-0").attrs["data-state"] == "running"

    # A non-blank screenshot of the live page.
    png = tmp_path / "live.png"
    run_chromium(tmp_path / "profile-shot", f"--screenshot={png}", "--window-size=1280,900",
                 f"http://127.0.0.1:{metrics_port}/")
    _, _, counts = colour_counts(png.read_bytes())
    assert len(counts) > 50 and near(counts, GREEN) > 200

    devtools = DevTools(tmp_path / "profile-live", f"http://127.0.0.1:{metrics_port}/")
    try:
        first = wait_for(lambda: _live_state(devtools, "alpha"), 15, "alpha's row")
        assert first["state"] == "running" and rgb(first["colour"]) == GREEN, first
        # Traffic reaches the page's history. Calls keep coming until a sample shows them: a replica's first
        # sample is its baseline (PageHistory), and under load the first sample may have missed the replica.
        calls = 0

        def rate_shown():
            nonlocal calls
            calls += 1
            assert call_tool(alpha_port, "echo", {"text": f"hi {calls}"}, id=calls) == f"hi {calls}"
            return devtools.evaluate(
                "(() => { const s = document.querySelector('#server-alpha svg.spark[data-metric=rate]');"
                " return s && Number(s.dataset.max) > 0; })()")

        wait_for(rate_shown, 3 * 10 + REFRESH_SECONDS, "alpha's request-rate sample", interval=0.2)
        devtools.evaluate("window.__statusPageMarker = 'same document'")

        os.kill(pids["alpha"], signal.SIGKILL)
        # When the supervisor knows (its control socket says so), the page follows within one refresh.
        down = wait_for(lambda: (lambda s: s if s["state"] != "running" else None)(env.status("alpha")), 15,
                        "the supervisor to see alpha's exit")
        known = time.monotonic()
        after = wait_for(lambda: (lambda s: s if s and s["state"] == down["state"] else None)(
            _live_state(devtools, "alpha")), REFRESH_SECONDS + 3, f"alpha {down['state']} on the page")
        took = time.monotonic() - known
        assert took <= REFRESH_SECONDS + 1.5, f"the page showed it {took:.1f} s after the supervisor knew"
        assert after["word"] == down["state"] and after["health"] == "offline", after
        assert rgb(after["colour"]) != GREEN and rgb(after["border"]) != GREEN, after
        assert after["marker"] == "same document" and after["refreshes"] >= 1
        beta = _live_state(devtools, "beta")
        assert beta["state"] == "running" and rgb(beta["colour"]) == GREEN
        exit_text = devtools.evaluate("document.querySelector('#server-alpha .last-exit').textContent")
        assert "9" in exit_text, exit_text  # SIGKILL
    finally:
        devtools.close()
