"""The comparison a user makes in the MLflow UI, checked in a real (headless) Chromium.

Two finished variants of the tiny pipeline (tests/pipeline_project.py: seeds 0 and 1) are
served with `transferlab.tracking.servers.ui_command`; the experiment's page (where a user lands) must
list both in its runs table, and then they are opened on MLflow's compare-runs page
(`#/compare-runs?runs=[...]&experiments=[...]`). As a user would, the test closes the
assistant panel, collapses the plots, switches the parameters to "Show diff only" and
scrolls the metrics table (a virtualised grid that renders only the rows in view) down to
`test_plate_accuracy`. The DOM it then shows must name both runs, the parameter that
differs and every evaluation accuracy in view with each run's value from the store.

Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: JSON
messages ending in NUL on file descriptors 3 and 4), so no driver package is needed.
Artefacts: test-artifacts/mlflow_ui_compare.png (what the user sees) and .html (the DOM).
"""

from __future__ import annotations

import base64
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest
from pipeline_project import REPO, PipelineProject
from pipeline_project import pipeline_project  # noqa: F401 - the fixture, shared with test_pipeline.py

from transferlab import tracking

from transferlab.tracking import servers as mlflow_servers

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium")
ARTIFACTS = REPO / "test-artifacts"
VIEWPORT = (1600, 1000)
READY_TIMEOUT_S = 60
ROW_METRIC = "test_plate_accuracy"


# --------------------------------------------------------------------------- the MLflow UI


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:port (a connection is refused and the port can be bound)."""
    with socket.socket() as client:
        client.settimeout(1)
        if client.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


class MlflowUi:
    """`mlflow ui` for a project's store, in its own process group (it starts ~15 processes)."""

    def __init__(self, root: Path, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(mlflow_servers.ui_command(root, port=self.port), stdin=subprocess.DEVNULL,
                                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.pgid = self.process.pid

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"mlflow ui exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/", timeout=5) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        raise AssertionError(f"mlflow ui did not answer on {self.url} within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM to the whole group, SIGKILL to what is left after 20 s (it is slow on a busy machine)."""
        for sig, grace in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if self.process.poll() is not None and not group_alive(self.pgid):
                    return
                time.sleep(0.2)
        self.process.poll()


@pytest.fixture
def mlflow_ui(pipeline_project: PipelineProject, tmp_path):  # noqa: F811 - the imported fixture
    server = MlflowUi(pipeline_project.root, tmp_path / "mlflow-ui.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- Chromium over DevTools


class Chromium:
    """Headless Chromium, one page, driven with DevTools protocol commands over a pipe."""

    def __init__(self, profile: Path, width: int, height: int):
        profile.mkdir(parents=True, exist_ok=True)
        to_chrome_read, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_write = os.pipe()
        argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={profile}", "--remote-debugging-pipe", f"--window-size={width},{height}",
                "about:blank"]
        # Chromium reads commands from fd 3 and writes replies to fd 4. A small Python exec()s it
        # with the pipe ends moved there (to_chrome_read < from_chrome_write, so the first move
        # never overwrites the second; dash's redirections only take fds 0-9).
        trampoline = ("import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
                      "os.execv(sys.argv[3], sys.argv[3:])")
        self.process = subprocess.Popen([sys.executable, "-c", trampoline, str(to_chrome_read),
                                         str(from_chrome_write), *argv],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        pass_fds=(to_chrome_read, from_chrome_write), start_new_session=True)
        os.close(to_chrome_read)
        os.close(from_chrome_write)
        self._buffer = b""
        self._id = 0
        self.session = None
        try:
            target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            self.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        except BaseException:
            self.close()
            raise

    def send(self, method: str, params: dict | None = None, timeout: float = 60) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if self.session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"Chromium did not answer {method} within {timeout} s")
                if select.select([self._from_chrome], [], [], left)[0]:
                    chunk = os.read(self._from_chrome, 1 << 20)
                    if not chunk:
                        raise AssertionError(f"Chromium closed its pipe (exit code {self.process.poll()})")
                    self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:  # events and other replies are not needed
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def js(self, expression: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise AssertionError(f"JavaScript failed: {result['exceptionDetails']}\n{expression}")
        return result["result"].get("value")

    def wait_for(self, expression: str, what: str, timeout: float = READY_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.25)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")

    def open(self, url: str) -> None:
        self.send("Page.navigate", {"url": url})

    def center(self, element: str):
        """Scrolls the element (a JS expression; null: absent) into view and returns its centre
        once it stops moving, or None."""
        expression = f"""(() => {{ const e = {element}; if (!e) return null;
            e.scrollIntoView({{block: 'nearest'}}); const r = e.getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height / 2]; }})()"""
        previous = None
        for _ in range(40):  # animations (a collapsing section) move things for a moment
            position = self.js(expression)
            if position is None or position == previous:
                return position
            previous = position
            time.sleep(0.1)
        return previous

    def mouse(self, kind: str, x: float, y: float, **extra) -> None:
        self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, **extra})

    def click(self, selector: str) -> bool:
        position = self.center(f"document.querySelector({json.dumps(selector)})")
        if position is None:
            return False
        self.mouse("mouseMoved", *position)
        self.mouse("mousePressed", *position, button="left", clickCount=1)
        self.mouse("mouseReleased", *position, button="left", clickCount=1)
        return True

    def wheel(self, element: str, delta_y: float) -> None:
        self.mouse("mouseWheel", *self.center(element), deltaX=0, deltaY=delta_y)

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"})["data"]))

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
            self.process.wait(10)
        except (AssertionError, TimeoutError, subprocess.TimeoutExpired, OSError, ValueError):
            pass
        finally:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(10)
            os.close(self._to_chrome)
            os.close(self._from_chrome)


# --------------------------------------------------------------------------- reading the DOM


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str]):
        self.tag, self.attrs, self.children = tag, attrs, []

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children).strip()

    def walk(self):
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.walk()

    def classes(self) -> list[str]:
        return self.attrs.get("class", "").split()

    def style(self, name: str) -> float | None:
        found = re.search(rf"(?:^|;)\s*{name}:\s*(-?[\d.]+)px", self.attrs.get("style", ""))
        return float(found.group(1)) if found else None


class TreeBuilder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        if self.stack[-1].tag not in ("script", "style"):
            self.stack[-1].children.append(data)


def parse_dom(html: str) -> Node:
    builder = TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


def table_row(dom: Node, header: str) -> list[str] | None:
    """The cells after the header cell of the first table row headed ``header``."""
    for row in (n for n in dom.walk() if n.tag == "tr"):
        cells = [c for c in row.children if isinstance(c, Node) and c.tag in ("th", "td")]
        if cells and cells[0].text() == header:
            return [c.text() for c in cells[1:]]
    return None


def metric_grid(dom: Node) -> dict[str, list[str]]:
    """The rendered rows of the compare page's metrics table: metric name -> one value per run.

    It is two virtualised grids side by side (names, values); their cells are absolutely
    placed, so a name and its values share the cell's ``top``.
    """
    grids = [n for n in dom.walk() if "ReactVirtualized__Grid" in n.classes() and n.attrs.get("role") == "grid"]
    assert len(grids) == 2, f"expected the metrics table's two grids, found {len(grids)}"

    def cells(grid: Node) -> list[Node]:
        inner = next(n for n in grid.walk() if "ReactVirtualized__Grid__innerScrollContainer" in n.classes())
        return [c for c in inner.children if isinstance(c, Node) and c.style("top") is not None]

    names = {c.style("top"): c.text() for c in cells(grids[0])}
    values: dict[float, dict[float, str]] = {}
    for cell in cells(grids[1]):
        values.setdefault(cell.style("top"), {})[cell.style("left")] = cell.text()
    return {name: [row[left] for left in sorted(row)] for top, name in names.items()
            if (row := values.get(top))}


# --------------------------------------------------------------------------- the test


GRIDS = "document.querySelectorAll('.ReactVirtualized__Grid[role=grid]')"
PARAM_DIFF = 'button[aria-label="Parameters - Show diff only"]'
ASSISTANT_CLOSE = '[data-component-id="mlflow.assistant.chat_panel.close"]'
VISUALIZATIONS = '[aria-label="collapse Visualizations"]'
VALUES_GRID = f"{GRIDS}[1]"


def row_in_view(metric: str) -> str:
    """JS: the metric's name cell is rendered and wholly inside the names grid's viewport."""
    return f"""(() => {{ const grid = {GRIDS}[0]; if (!grid) return false;
        const a = [...grid.querySelectorAll('a')].find(a => a.textContent.trim() === {json.dumps(metric)});
        if (!a) return false; const g = grid.getBoundingClientRect(), r = a.parentElement.getBoundingClientRect();
        return r.top >= g.top && r.bottom <= g.bottom; }})()"""


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_compare_page_shows_both_variants_and_their_test_accuracy(pipeline_project: PipelineProject,  # noqa: F811
                                                                   mlflow_ui: MlflowUi, tmp_path):
    runs = pipeline_project.runs_after_exp
    assert len(runs) == 2 and all(r.status == "FINISHED" for r in runs)
    ids = [r.run_id for r in runs]
    experiments = sorted({r.experiment_id for r in runs})
    url = f"{mlflow_ui.url}/#/compare-runs?runs={quote(json.dumps(ids))}&experiments={quote(json.dumps(experiments))}"

    ARTIFACTS.mkdir(exist_ok=True)
    png, html = ARTIFACTS / "mlflow_ui_compare.png", ARTIFACTS / "mlflow_ui_compare.html"
    for stale in (png, html):
        stale.unlink(missing_ok=True)

    browser = Chromium(tmp_path / "chromium-profile", *VIEWPORT)
    try:
        # Where a user lands first: the runs table `transferlab ui` prints for the experiment
        # (MLflow's own default is the GenAI overview), every run listed by name.
        landing = mlflow_servers.runs_table_url(mlflow_ui.url, experiments[0])
        browser.open(landing)
        names = json.dumps([r.name for r in runs])
        browser.wait_for(f"document.body !== null && {names}.every(name => document.body.innerText.includes(name)) && "
                         "document.querySelector('[role=grid] [role=gridcell]') !== null",
                         f"the experiment page {landing} to list both runs in its runs table")
        browser.open(url)
        browser.wait_for(f"{GRIDS}.length === 2 && {json.dumps(ids)}.every(id => document.body.innerText.includes(id))",
                         "the compare page to show both runs and the metrics table")
        # What a user does before reading: close the assistant panel, fold the plots away
        # (both optional: absent in other MLflow versions), keep only parameters that differ.
        if browser.click(ASSISTANT_CLOSE):
            browser.wait_for(f"!document.querySelector({json.dumps(ASSISTANT_CLOSE)})", "the assistant panel to close")
        if browser.click(VISUALIZATIONS):
            browser.wait_for("[...document.querySelectorAll('.du-bois-light-collapse-header')].some("
                             "h => h.textContent.includes('Visualizations') && h.getAttribute('aria-expanded') === 'false')",
                             "the plots to fold", timeout=10)
        assert browser.click(PARAM_DIFF), "no 'Show diff only' switch for the parameters"
        browser.wait_for(f"document.querySelector({json.dumps(PARAM_DIFF)}).getAttribute('aria-checked') === 'true'",
                         "'Show diff only' to switch on", timeout=10)

        # Scroll the metrics table with the mouse wheel, a row at a time, until the row is in view.
        for _ in range(100):
            if browser.js(row_in_view(ROW_METRIC)):
                break
            browser.wheel(VALUES_GRID, 45)
            time.sleep(0.15)
        assert browser.js(row_in_view(ROW_METRIC)), f"scrolling never brought {ROW_METRIC} into view"
        # MLflow 3.17 syncs the names grid from the values grid's state before that state has
        # the new position, so the names lag one scroll event behind; a 1-pixel nudge realigns
        # them (a user's smooth scrolling ends with such small steps).
        browser.wheel(VALUES_GRID, 1)
        offsets = browser.wait_for(f"(() => {{ const [n, v] = {GRIDS}; "
                                   "return Math.abs(n.scrollTop - v.scrollTop) <= 1 ? [n.scrollTop, v.scrollTop] : null; })()",
                                   "the metric names to line up with their values", timeout=10)
        assert browser.js(row_in_view(ROW_METRIC)), f"{ROW_METRIC} left the view when realigning {offsets}"
        browser.mouse("mouseMoved", 5, VIEWPORT[1] - 5)  # no tooltip over the values
        time.sleep(0.5)
        html.write_text(browser.js("document.documentElement.outerHTML"), encoding="utf-8")
        browser.screenshot(png)
    except BaseException:
        try:  # what the page showed when it went wrong, for whoever reads the failure
            browser.screenshot(png)
            html.write_text(browser.js("document.documentElement.outerHTML"), encoding="utf-8")
        except Exception:  # noqa: BLE001 - the original failure is the one to report
            pass
        raise
    finally:
        browser.close()

    # Stop the UI: the whole process group goes, and the port is free again.
    mlflow_ui.stop()
    assert not group_alive(mlflow_ui.pgid), f"mlflow ui processes are left in group {mlflow_ui.pgid}"
    assert port_free(mlflow_ui.port), f"port {mlflow_ui.port} is still taken after stopping mlflow ui"

    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dom = parse_dom(html.read_text(encoding="utf-8"))
    # Both runs, in the order asked for, by id and by name.
    assert table_row(dom, "Run ID:") == ids
    assert table_row(dom, "Run Name:") == [r.name for r in runs]
    # The one parameter that differs, per run.
    assert table_row(dom, "train.seed") == [r.params["train.seed"] for r in runs] == ["0", "1"]
    # The metrics in view, test_plate_accuracy among them, per run as the store holds them (the UI
    # shows about 4 significant digits: 0.071, 3.553, 39.92).
    shown = metric_grid(dom)
    assert ROW_METRIC in shown, f"{ROW_METRIC} is not among the rendered metric rows {sorted(shown)}"
    assert len(shown) >= 4, f"too few metric rows rendered: {sorted(shown)}"
    for metric, texts in shown.items():
        assert len(texts) == 2, (metric, texts)
        for record, text in zip(runs, texts):
            stored = record.metrics[metric]
            assert abs(float(text) - stored) <= max(6e-4, 1e-3 * abs(stored)), \
                f"{metric} of {record.name}: the page shows {text}, the store holds {stored}"
