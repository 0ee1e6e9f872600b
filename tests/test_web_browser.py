"""The web view in a real browser: a node (``start --web-demo-controls``, its own process) and
Debian's headless Chromium driven by Playwright. The tree is drawn; a worker killed through
the API shows its exit and restart on the page within 2 s (the restarted row once its new
process is ready); the page survives a restart of the Pool
actor (killed with the page's own button) and keeps following the tree; it reconnects by
itself when its stream is cut; without the token
the page, the API and the event stream answer 401/403. A screenshot of the page is written to
``tests/artifacts/`` (ignored by git; its path is printed).

Loopback only. The waits are bounded (Playwright timeouts), not measurements of speed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from snakepit_actors.system import free_port
from tests.test_node import RunningNode, start_on_free_ports

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
#: Chromium's flags: headless, no sandbox (root in CI), nothing that reaches the network.
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]

pytest.importorskip("starlette", reason="the web extra (starlette, uvicorn) is not installed")
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright (the dev extra's browser driver) is not installed")
pytestmark = [
    pytest.mark.timeout(150), pytest.mark.slow,
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                       reason=f"no {CHROMIUM}: apt-get install chromium (.ci/run does)"),
]


class WebNode(RunningNode):
    """A node with its web view and demo buttons; ``url`` is the address it printed."""

    url = ""

    @property
    def base(self) -> str:
        return self.url.split("?", 1)[0]

    @property
    def token(self) -> str:
        return self.url.split("token=", 1)[1]

    def api(self, path: str, body: dict[str, Any] | None = None,
            token: str | None = None) -> tuple[int, Any]:
        """A request to the node's web API (POST with ``body``), with the token unless
        ``token`` says otherwise ("" sends none)."""
        headers = {"Content-Type": "application/json"}
        token = self.token if token is None else token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.base + path.lstrip("/"), headers=headers,
                                         data=None if body is None else json.dumps(body).encode())
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                if "events" in path:  # an endless stream: its first lines
                    return response.status, b"".join(response.readline() for _ in range(3))
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")


@pytest.fixture
def node(tmp_path: Path) -> Iterator[WebNode]:
    config = tmp_path / "pool.toml"

    def ready(running: WebNode) -> None:
        running.url = running.wait_for("web view: ").split("web view: ", 1)[1].strip()
        running.wait_for("ready on")

    running = start_on_free_ports(config, lambda: f"""
[node]
name = "webnode"
admin_port = {free_port()}
log_format = "json"
log_level = "info"
drain_timeout_s = 5

[pools.default]
pool_size = 2
""", lambda: WebNode(config, tmp_path / "node.err", "--web-demo-controls"), ready)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A fresh headless Chromium (empty profile) with one page, phone-sized if asked."""
    with playwright_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True,
            args=BROWSER_ARGS, viewport={"width": 1280, "height": 900})
        try:
            yield context
        finally:
            context.close()


#: Script errors of the pages opened by ``open_page`` (checked after each test).
SCRIPT_ERRORS: list[str] = []


@pytest.fixture(autouse=True)
def no_script_errors() -> Iterator[None]:
    SCRIPT_ERRORS.clear()
    yield
    assert not SCRIPT_ERRORS, f"the page's script failed: {SCRIPT_ERRORS}"


def open_page(browser: Any, node: WebNode) -> Any:
    page = browser.new_page()
    page.on("pageerror", lambda error: SCRIPT_ERRORS.append(str(error)))
    page.goto(node.url)  # ?token= -> cookie, redirected to /
    assert page.url == node.base, "the token must leave the address bar"
    page.wait_for_selector("body[data-live=true]", timeout=15000)
    return page


def worker_pid_cell(page: Any, worker_id: str) -> Any:
    return page.locator(f"tr[data-worker={worker_id}] td.pid")


def test_the_page_draws_each_pools_tree_workers_and_queue(node: WebNode, browser: Any) -> None:
    page = open_page(browser, node)
    expect = playwright_api.expect
    expect(page.locator("section[data-pool=default]")).to_be_visible()
    expect(page.locator("li[data-actor=PoolRoot]")).to_have_count(1)
    expect(page.locator("li[data-actor=Worker]")).to_have_count(2)
    for actor in ("Pool", "WorkerSupervisor", "WorkerRegistry", "ProcessRegistry"):
        expect(page.locator(f"li[data-actor={actor}]")).to_have_count(1)
    pids = [int(p) for p in page.locator("li[data-actor=Worker]").evaluate_all(
        "els => els.map(e => e.dataset.pid)")]
    assert all(pid > 0 for pid in pids)
    expect(page.locator("tr[data-worker]")).to_have_count(2)
    expect(page.locator("[data-stat=queued] b")).to_have_text("0")
    status, state = node.api("/api/state")
    assert status == 200
    rows = state["state"]["pools"]["default"]["workers"]
    for row in rows:
        expect(worker_pid_cell(page, row["worker_id"])).to_have_text(str(row["pid"]))


def test_a_worker_killed_through_the_api_shows_its_exit_and_restart_within_two_seconds(
        node: WebNode, browser: Any) -> None:
    page = open_page(browser, node)
    expect = playwright_api.expect
    cell = page.locator("tr[data-worker=default_worker_1] td.restarts")
    expect(cell).to_have_text("0")
    old_pid = worker_pid_cell(page, "default_worker_1").inner_text()
    status, done = node.api("/api/demo/kill", {"what": "process", "pool": "default",
                                               "worker_id": "default_worker_1"})
    assert status == 200 and str(done["killed"]) == old_pid
    t0 = time.monotonic()
    # within 2 s: the exit and the restart under way (pushed as the events happen) ...
    expect(page.locator("#feed li[data-event='worker.exited']")).to_have_count(1, timeout=2000)
    expect(page.locator("#feed li[data-event='worker.restarting']")).to_have_count(
        1, timeout=2000)
    # ... and the restarted worker once its new process is ready (a python start-up: on a
    # loaded machine it may take longer than the page, so the bound is wider)
    expect(cell).to_have_text("1", timeout=10000)
    took = time.monotonic() - t0
    expect(worker_pid_cell(page, "default_worker_1")).not_to_have_text(old_pid, timeout=2000)
    print(f"\nkilled worker process -> restarted worker shown after {took * 1000:.0f} ms")
    refused = node.api("/api/demo/kill", {"what": "process", "pool": "nope",
                                          "worker_id": "default_worker_1"})
    assert refused[0] == 409 and "no pool 'nope'" in refused[1]["error"]["message"]


def test_the_page_survives_a_pool_restart_keeps_following_the_tree_and_the_node_stops_clean(
        node: WebNode, browser: Any) -> None:
    page = open_page(browser, node)
    expect = playwright_api.expect
    pool_actor = page.locator("li[data-actor=Pool]")
    old_pid = pool_actor.get_attribute("data-pid")
    page.locator("section[data-pool=default] button[data-kill=pool]").click()
    expect(page.locator("#notice")).to_contain_text("killed the Pool actor", timeout=5000)
    expect(pool_actor).not_to_have_attribute("data-pid", old_pid or "", timeout=15000)
    expect(pool_actor).not_to_have_attribute("data-pid", "", timeout=15000)
    expect(pool_actor).to_have_attribute("data-restarts", "1", timeout=15000)
    expect(page.locator("section[data-pool=default] .badge").first).to_have_text(
        "ready", timeout=15000)
    expect(page.locator("#feed li[data-event='pool.restarted']").first).to_be_visible(
        timeout=5000)
    assert page.locator("body").get_attribute("data-live") == "true"
    # the same page, no reload: a worker killed under the new Pool still shows its restart
    status, _ = node.api("/api/demo/kill", {"what": "worker_actor", "pool": "default",
                                            "worker_id": "default_worker_2"})
    assert status == 200
    expect(page.locator("li[data-actor=Worker][data-id=default_worker_2]")).to_have_attribute(
        "data-restarts", "1", timeout=15000)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "web-view.png"
    page.screenshot(path=str(shot), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(ARTIFACTS / "web-view-phone.png"), full_page=True)
    print(f"\nscreenshots: {shot} and {ARTIFACTS / 'web-view-phone.png'}")
    assert shot.stat().st_size > 10_000
    node.proc.send_signal(signal.SIGTERM)  # with the page's stream still open
    node.wait_for("stopped in", timeout_s=60)
    assert node.proc.wait(30) == 0
    assert "web.stopped" in {e.get("event") for e in node.log_events()}


def test_without_the_token_the_page_api_and_event_stream_answer_401_or_403(
        node: WebNode, browser: Any) -> None:
    page = browser.new_page()
    response = page.goto(node.base)
    assert response is not None and response.status == 401
    wrong = page.goto(node.base + "?token=not-the-token")
    assert wrong is not None and wrong.status == 403
    assert "Bearer" in (response.headers.get("www-authenticate") or "")
    for path in ("/api/state", "/api/events", "/static/app.js"):
        assert node.api(path, token="")[0] == 401
        assert node.api(path, token="wrong-token")[0] == 403
    assert node.api("/api/demo/kill", {"what": "pool", "pool": "default"}, token="")[0] == 401
    status, head = node.api("/api/events")
    assert status == 200 and b"event: snapshot" in head
    with contextlib.suppress(Exception):
        page.close()


def test_the_page_reconnects_by_itself_when_its_stream_is_cut(node: WebNode,
                                                              browser: Any) -> None:
    page = open_page(browser, node)
    expect = playwright_api.expect
    page.route("**/api/events", lambda route: route.abort())  # the node is unreachable
    page.evaluate("source.close(); source.dispatchEvent(new Event('error'))")  # cut
    expect(page.locator("body")).to_have_attribute("data-live", "false", timeout=5000)
    page.unroute("**/api/events")  # reachable again: no reload, the page comes back
    expect(page.locator("body")).to_have_attribute("data-live", "true", timeout=15000)
    status, _ = node.api("/api/demo/kill", {"what": "process", "pool": "default",
                                            "worker_id": "default_worker_2"})
    assert status == 200
    expect(page.locator("tr[data-worker=default_worker_2] td.restarts")).to_have_text(
        "1", timeout=15000)


def test_members_of_a_multi_host_pool_and_every_kind_of_event_are_drawn(
        browser: Any) -> None:
    """A page fed by hand (no node): what a convention's pool shows (its member nodes) and
    the event kinds, as a live node would push them."""
    from snakepit_actors.core.web_page import page_state
    from snakepit_actors.web.app import build_app
    from snakepit_actors.web.hub import ViewHub
    from snakepit_actors.web.server import WebServer
    from tests.test_web_page import pool_report, report

    hub = ViewHub()
    hub.publish_state(page_state(report(pool_report(members=True))), time.monotonic())
    server = WebServer(build_app(hub, "t" * 20))
    server.start()
    try:
        page = browser.new_page()
        page.on("pageerror", lambda error: SCRIPT_ERRORS.append(str(error)))
        page.goto(f"{server.url}?token={'t' * 20}")
        expect = playwright_api.expect
        expect(page.locator("body")).to_have_attribute("data-live", "true", timeout=15000)
        expect(page.locator("tr[data-member=gpu1]")).to_contain_text("gpu=true")
        expect(page.locator("tr[data-member=odd]")).to_contain_text("no secret")
        expect(page.locator("button[data-kill]")).to_have_count(0)  # no demo controls
        for event, fields in (("placement.member_lost", {"node": "gpu1", "reason": "silent"}),
                              ("pool.degraded", {"reason": "escalated"}),
                              ("worker.recycled", {"worker_id": "default_worker_1"})):
            hub.publish_event(event, {"pool": "default", **fields}, time.monotonic(),
                              time.time())
        expect(page.locator("#feed li")).to_have_count(3, timeout=5000)
        kinds = page.locator("#feed li .badge").all_inner_texts()
        assert kinds == ["recycle", "escalation", "member"]  # newest first
        hub.publish_state(page_state(report()), time.monotonic())  # the pool is gone
        expect(page.locator("section[data-pool]")).to_have_count(0, timeout=5000)
    finally:
        hub.close()
        server.stop()
