"""The node side of the web view (ops/web_node.py, the CLI's --web): a clear error without the
web extra, and demo kills only of the node's own processes. The collector and the whole page
run against a real node in tests/test_web_browser.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from snakepit_actors.core.web_page import page_state
from snakepit_actors.errors import InvalidArgumentsError
from snakepit_actors.ops.cli import main
from snakepit_actors.ops.web_node import DemoControls
from tests.test_web_page import pool_report, report

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("argv", [["start", "--config", "{config}", "--web"],
                                  ["start", "--config", "{config}", "--web-demo-controls"],
                                  ["demo", "--web"]])
def test_web_without_the_extra_exits_3_with_the_install_hint_before_anything_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        argv: list[str]) -> None:
    config = tmp_path / "pool.toml"
    config.write_text('[node]\nadmin_port = 27599\n[pools.default]\npool_size = 1\n')
    monkeypatch.setitem(sys.modules, "starlette", None)  # import starlette -> ImportError
    assert main([a.format(config=config) for a in argv]) == 3
    err = capsys.readouterr().err
    assert "needs starlette" in err and "pip install 'snakepit-actors[web]'" in err


class Hub:
    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state


@pytest.fixture
def child() -> Any:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(10)


def test_a_demo_kill_sigkills_the_pid_the_page_names_when_it_is_the_nodes(child: Any) -> None:
    woken: list[bool] = []
    hub = Hub(page_state(report(pool_report(worker_pid=child.pid))))
    controls = DemoControls(hub, admin_pid=os.getpid(), after=lambda: woken.append(True))
    done = controls.kill("process", "default", "default_worker_1")
    assert done == {"killed": child.pid, "what": "the process of default_worker_1"}
    assert child.wait(10) == -9 and woken == [True]


def test_a_demo_kill_refuses_a_pid_outside_the_nodes_actor_system(child: Any) -> None:
    hub = Hub(page_state(report(pool_report(worker_pid=child.pid))))
    controls = DemoControls(hub, admin_pid=-1)  # no process descends from it
    with pytest.raises(InvalidArgumentsError, match="no longer a process of this node"):
        controls.kill("process", "default", "default_worker_1")
    with pytest.raises(InvalidArgumentsError, match="has no running Worker actor") as caught:
        controls.kill("worker_actor", "default", "default_worker_7")
    assert caught.value.reason == "no_such_target"
    assert child.poll() is None


@pytest.mark.timeout(120)
@pytest.mark.slow
def test_demo_web_serves_the_page_with_its_buttons_and_light_traffic_until_sigterm(
        tmp_path: Path) -> None:
    pytest.importorskip("starlette", reason="the web extra is not installed")
    import json
    import signal
    import time
    import urllib.request

    from tests.test_node import RunningNode

    class Demo(RunningNode):  # the same line reader, another command
        def __init__(self) -> None:
            self.stderr_path = tmp_path / "demo.err"
            self._err = open(self.stderr_path, "w")  # noqa: SIM115  (closed in stop)
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "snakepit_actors.ops.cli", "demo", "--web",
                 "--workers", "1"], stdout=subprocess.PIPE, stderr=self._err, text=True,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
                    str(Path(__file__).resolve().parent.parent),
                    os.environ.get("PYTHONPATH")]))})
            self.out = []
            self._lines = __import__("queue").Queue()
            __import__("threading").Thread(target=self._read, daemon=True).start()

    demo = Demo()
    try:
        url = demo.wait_for("web view: ").split("web view: ", 1)[1].strip()
        demo.wait_for("ready on")
        base, token = url.split("?", 1)[0], url.split("token=", 1)[1]

        def state() -> dict[str, Any]:
            request = urllib.request.Request(base + "api/state",
                                             headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(request, timeout=10) as response:
                return dict(json.loads(response.read()))

        assert state()["demo_controls"] is True
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # each read asks for a fresh look
            requests = (state()["state"]["pools"].get("demo") or {}).get("queue", {})
            if (requests.get("requests") or 0) > 0:
                break
            time.sleep(0.5)
        else:
            raise AssertionError("demo --web sent no request")
        demo.proc.send_signal(signal.SIGTERM)
        demo.wait_for("stopped in", timeout_s=60)
        assert demo.proc.wait(30) == 0
    finally:
        demo.stop()
