"""The web view's app and server (web/app.py, web/hub.py, web/server.py) on a real uvicorn on
loopback, fed by hand through its hub: the token guards every route, the event stream pushes
the snapshot, updates and feed lines, the demo route is off unless given, the server stops
with a stream open. No actor system here (tests/test_web_browser.py runs a real node)."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the web extra (starlette, uvicorn) is not installed")
pytest.importorskip("uvicorn", reason="the web extra (starlette, uvicorn) is not installed")

from snakepit_actors.core.web_page import page_state
from snakepit_actors.errors import InvalidArgumentsError
from snakepit_actors.web.app import build_app
from snakepit_actors.web.hub import ViewHub
from snakepit_actors.web.server import WebServer
from tests.test_web_page import pool_report, report

pytestmark = pytest.mark.timeout(60)
TOKEN = "test-token-0123456789abcdef"


class Served:
    def __init__(self, kill: Any = None, max_viewers: int = 32) -> None:
        self.hub = ViewHub()
        self.server = WebServer(build_app(self.hub, TOKEN, kill, "n1", max_viewers))
        self.server.start()

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, \
                response.read()
        finally:
            conn.close()


@pytest.fixture
def served() -> Iterator[Served]:
    s = Served()
    try:
        yield s
    finally:
        s.server.stop()


def bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


class Stream:
    """An open event stream, read event by event (each read bounded by the socket timeout)."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.conn.request("GET", "/api/events", headers=headers)
        self.response = self.conn.getresponse()

    def next_event(self) -> tuple[str, Any]:
        kind, data = "", None
        while True:
            line = self.response.readline().decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
            elif line == "" and kind:
                return kind, data

    def close(self) -> None:
        self.conn.close()


@pytest.mark.parametrize("path", ["/", "/api/state", "/api/events", "/static/app.js"])
def test_every_route_answers_401_without_the_token_and_403_with_a_wrong_one(
        served: Served, path: str) -> None:
    status, headers, _ = served.request("GET", path)
    assert status == 401 and headers["www-authenticate"].startswith("Bearer")
    assert served.request("GET", path, {"Authorization": "Bearer wrong"})[0] == 403
    assert served.request("GET", path, {"Cookie": "snakepit_web=wrong"})[0] == 403
    assert served.request("GET", path + "?token=wrong")[0] == 403
    assert served.request("POST", "/api/demo/kill")[0] == 401


def test_a_first_visit_with_the_token_sets_an_httponly_strict_cookie_and_drops_the_token(
        served: Served) -> None:
    status, headers, _ = served.request("GET", f"/?token={TOKEN}")
    assert status == 303 and headers["location"] == "/"
    cookie = headers["set-cookie"]
    assert f"snakepit_web={TOKEN}" in cookie and "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()
    status, headers, body = served.request("GET", "/", {"Cookie": f"snakepit_web={TOKEN}"})
    assert status == 200 and b"static/app.js" in body
    assert "default-src 'self'" in headers["content-security-policy"]
    assert served.request("GET", "/static/app.js", bearer())[0] == 200
    assert served.request("GET", "/static/nope.js", bearer())[0] == 404


def test_a_request_for_another_host_name_is_refused(served: Served) -> None:
    assert served.request("GET", "/api/state", bearer() | {"Host": "evil.example"})[0] == 400


def test_the_state_api_returns_the_page_state_and_the_feed(served: Served) -> None:
    served.hub.publish_state(page_state(report(pool_report())), time.monotonic())
    status, _, body = served.request("GET", "/api/state", bearer())
    data = json.loads(body)
    assert status == 200 and data["demo_controls"] is False
    assert data["state"]["pools"]["default"]["workers"][0]["pid"] == 500


def test_a_read_of_the_state_api_asks_for_a_fresh_look_and_waits_for_it() -> None:
    s = Served()
    hub = s.hub
    hub.publish_state(page_state(report(pool_report())), time.monotonic() - 60)  # stale

    def look() -> None:  # what the node's collector does when asked
        threading.Timer(0.2, lambda: hub.publish_state(
            page_state(report(pool_report(worker_pid=777))), time.monotonic())).start()

    hub._on_viewer = look
    try:
        assert not hub.wanted(time.monotonic())
        status, _, body = s.request("GET", "/api/state", bearer())
        assert status == 200
        assert json.loads(body)["state"]["pools"]["default"]["workers"][0]["pid"] == 777
        assert hub.wanted(time.monotonic())  # a script polling the API keeps it fresh
    finally:
        s.server.stop()


def test_the_event_stream_pushes_a_snapshot_then_updates_and_feed_lines(
        served: Served) -> None:
    served.hub.publish_state(page_state(report(pool_report())), 0.0)
    stream = Stream(served.server.port, bearer())
    try:
        kind, snapshot = stream.next_event()
        assert kind == "snapshot" and "default" in snapshot["state"]["pools"]
        assert snapshot["run"] == served.hub.run and ViewHub().run != served.hub.run
        served.hub.publish_state(page_state(report(pool_report(worker_pid=501, restarts=1))),
                                 0.5)
        kind, update = stream.next_event()
        assert kind == "update" and update["pools"]["default"]["workers"][0]["pid"] == 501
        served.hub.publish_event("worker.exited", {"pool": "default",
                                                   "worker_id": "default_worker_1"}, 1.0,
                                 time.time())
        kinds = {stream.next_event()[0], stream.next_event()[0]}
        assert kinds == {"feed", "update"}  # the line, and the row without its process
    finally:
        stream.close()


def test_a_stream_past_the_most_viewers_is_refused_503_until_one_closes() -> None:
    s = Served(max_viewers=1)
    try:
        first = Stream(s.server.port, bearer())
        assert first.next_event()[0] == "snapshot"
        assert s.request("GET", "/api/events", bearer())[0] == 503
        first.close()
        deadline = time.monotonic() + 10
        while s.hub.viewers and time.monotonic() < deadline:
            time.sleep(0.02)
        second = Stream(s.server.port, bearer())
        assert second.next_event()[0] == "snapshot"
        second.close()
    finally:
        s.server.stop()


def test_the_demo_route_is_404_unless_the_node_gives_the_controls(served: Served) -> None:
    status, _, body = served.request("POST", "/api/demo/kill", bearer() | {
        "Content-Type": "application/json"}, b'{"what": "pool", "pool": "default"}')
    assert status == 404 and b"--web-demo-controls" in body


def test_demo_kills_go_to_the_controls_as_json_and_refusals_are_typed_errors() -> None:
    calls: list[tuple[str, str, str]] = []

    def kill(what: str, pool: str, worker_id: str) -> dict[str, Any]:
        calls.append((what, pool, worker_id))
        if pool != "default":
            raise InvalidArgumentsError("no pool 'x'", reason="no_such_target")
        return {"killed": 123, "what": "the Pool actor of default"}

    s = Served(kill)
    try:
        json_headers = bearer() | {"Content-Type": "application/json"}
        status, _, body = s.request("POST", "/api/demo/kill", json_headers,
                                    b'{"what": "pool", "pool": "default"}')
        assert status == 200 and json.loads(body)["killed"] == 123
        status, _, body = s.request("POST", "/api/demo/kill", json_headers,
                                    b'{"what": "pool", "pool": "x"}')
        assert status == 409 and json.loads(body)["error"]["reason"] == "no_such_target"
        assert s.request("POST", "/api/demo/kill", bearer() | {
            "Content-Type": "text/plain"}, b"{}")[0] == 415  # no cross-site form posts
        assert s.request("POST", "/api/demo/kill", json_headers, b"[1]")[0] == 400
        assert s.request("POST", "/api/demo/kill", json_headers, b"{not json")[0] == 400
        assert calls == [("pool", "default", ""), ("pool", "x", "")]
    finally:
        s.server.stop()


def test_the_server_stops_with_a_stream_open_and_frees_its_port(served: Served) -> None:
    stream = Stream(served.server.port, bearer())
    try:
        assert stream.next_event()[0] == "snapshot"
        served.hub.close()
        served.server.stop()
        assert not any(t.name == "snakepit-web" for t in threading.enumerate())
        with pytest.raises(OSError):
            http.client.HTTPConnection("127.0.0.1", served.server.port, timeout=2).connect()
    finally:
        stream.close()


def test_a_taken_port_is_a_config_error_naming_it(served: Served) -> None:
    from snakepit_actors.errors import ConfigError

    other = WebServer(build_app(ViewHub(), TOKEN), port=served.server.port)
    with pytest.raises(ConfigError, match=f"web_port {served.server.port} cannot be bound"):
        other.start()
