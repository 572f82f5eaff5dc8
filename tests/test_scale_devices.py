"""GPUs per worker through CUDA_VISIBLE_DEVICES, seen by the service's ``__init__``; no GPU needed.

The launcher's ``CUDA_VISIBLE_DEVICES`` stands for the GPUs of the machine (as a container runtime or a
scheduler sets it), so the assignment is tested on any machine; without it, and without ``/dev/nvidia*``,
a service asking for a GPU is refused at startup.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from asgiserve.devices import DeviceError, DeviceShortage, assign, visible_gpus
from tests.conftest import start
from tests.test_lifecycle import children, wait_for

TARGET = "tests.apps.scale_svc:OneGpuEach"


def _by_index(url: str, want: int, timeout: float = 15) -> dict[int, dict[str, object]]:
    """``whoami`` of every worker slot, asked over fresh connections until ``want`` slots answered."""
    seen: dict[int, dict[str, object]] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < want and time.monotonic() < deadline:
        body = httpx.post(url + "/whoami", timeout=5).json()
        seen[int(body["index"])] = body
    return seen


def test_bentoml_rule_every_worker_sees_the_services_gpus(tmp_path: Path) -> None:
    server = start("asgiserve", TARGET, tmp_path, env={"CUDA_VISIBLE_DEVICES": "3,5,7"})
    try:
        seen = _by_index(server.url, 2)
        assert sorted(seen) == [0, 1]
        assert {str(w["devices"]) for w in seen.values()} == {"3"}  # gpu: 1, the first visible, for both
    finally:
        assert server.stop() == 0


def test_devices_round_robin_and_a_restart_keeps_the_slots_device(tmp_path: Path) -> None:
    env = {"CUDA_VISIBLE_DEVICES": "GPU-a,GPU-b,GPU-c,GPU-d"}
    server = start("asgiserve", TARGET, tmp_path, "--devices", "1,3", "--workers-per-device", "2", env=env)
    try:
        assert wait_for(lambda: len(children(server.proc.pid)) == 4)
        seen = _by_index(server.url, 4)
        assert {i: w["devices"] for i, w in seen.items()} == {0: "GPU-b", 1: "GPU-d", 2: "GPU-b", 3: "GPU-d"}
        victim = int(str(seen[1]["pid"]))
        os.kill(victim, signal.SIGKILL)
        assert wait_for(
            lambda: len(children(server.proc.pid)) == 4 and victim not in children(server.proc.pid)
        )
        deadline = time.monotonic() + 15
        again: dict[str, object] = {}
        while time.monotonic() < deadline and again.get("pid") in (None, victim):
            again = _by_index(server.url, 4).get(1, {})
        assert again["pid"] != victim and again["devices"] == "GPU-d"
    finally:
        assert server.stop() == 0


def test_a_missing_gpu_fails_startup_clearly(tmp_path: Path) -> None:
    if visible_gpus({}):
        pytest.skip("this machine has GPUs: the refusal is tested on one without")
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    server = start("asgiserve", TARGET, tmp_path, "--workers-per-device", "1", ready=False, env=env)
    try:
        assert server.proc.wait(20) == 3
    finally:
        server.stop()
    assert "Cannot start OneGpuEach: --workers-per-device needs a GPU, but this machine has none visible" in (
        server.output()
    )


def test_resources_alone_warn_and_start_as_bentoml_does(tmp_path: Path) -> None:
    # A service written with resources={"gpu": 1} runs on a laptop without one under BentoML: here too.
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    if visible_gpus(env):
        pytest.skip("this machine has GPUs: the shortage is tested on one without")
    server = start("asgiserve", TARGET, tmp_path, env=env)
    try:
        seen = _by_index(server.url, 2)
        assert sorted(seen) == [0, 1] and {w["devices"] for w in seen.values()} == {None}
    finally:
        assert server.stop() == 0
    assert (
        "OneGpuEach: the service asks for 1 GPU(s), but this machine has none visible: its workers start"
        in (server.output())
    )


def test_devices_naming_an_absent_gpu_fail_startup(tmp_path: Path) -> None:
    env = {"CUDA_VISIBLE_DEVICES": "0,1"}
    server = start("asgiserve", TARGET, tmp_path, "--devices", "0,5", ready=False, env=env)
    try:
        assert server.proc.wait(20) == 3
    finally:
        server.stop()
    assert (
        "--devices names GPU 5, but this machine has 2 visible (CUDA_VISIBLE_DEVICES=0,1)" in server.output()
    )


def test_assign_rules() -> None:
    four = ["0", "1", "2", "3"]
    assert assign({}, 3, visible=four) == (3, None)  # no GPU asked: the variable is left alone
    assert assign({"gpu": 2}, 3, visible=four) == (3, ["0,1"] * 3)
    assert assign({"gpu": 0.5}, 2, visible=four) == (2, ["0", "0"])
    assert assign({"gpu": "1"}, 1, visible=four) == (1, ["0"])  # as BentoML's guides write it
    assert assign({"gpu": 1}, 4, cpu_count_workers=True, visible=four) == (4, None)
    assert assign({}, 0, per_device=2, visible=["0", "1"]) == (4, ["0", "1", "0", "1"])
    assert assign({"gpu": 2}, 0, devices="0,1,2,3", visible=four) == (4, ["0,1", "2,3", "0,1", "2,3"])
    assert assign({}, 3, devices="2", visible=four) == (3, ["2", "2", "2"])  # --workers given wins
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2,-1,3"}) == ["2"]  # CUDA stops at an invalid entry
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []


def test_devices_under_dev_count_from_zero(tmp_path: Path) -> None:
    # A container given the node's GPUs 3 and 6 sees /dev/nvidia3 and /dev/nvidia6; CUDA calls them 0 and 1.
    for name in ("nvidia3", "nvidia6", "nvidiactl", "nvidia-uvm", "null"):
        (tmp_path / name).touch()
    assert visible_gpus({}, dev=str(tmp_path)) == ["0", "1"]
    assert visible_gpus({}, dev=str(tmp_path / "absent")) == []
    with pytest.raises(DeviceShortage):  # the one case the server starts anyway
        assign({"gpu": 1}, 2, visible=[])
    for resources, kw, message in [
        ({"gpu": 3}, {}, "asks for 3 GPU(s), but this machine has 2 visible (CUDA_VISIBLE_DEVICES=0,1): its"),
        ({}, {"per_device": 1, "visible": []}, "--workers-per-device needs a GPU, but this machine has none"),
        ({"gpu": 1.5}, {}, "a fraction of a GPU"),
        ({"gpu": "one"}, {}, "takes a number of GPUs"),
        ({}, {"devices": "0,x"}, "device numbers separated by commas"),
        ({}, {"devices": "1,1"}, "distinct device numbers"),
        ({"gpu": 3}, {"devices": "0,1"}, "asks for 3 GPUs per worker, but --devices lists 2"),
    ]:
        with pytest.raises(DeviceError, match=message.replace("(", r"\(").replace(")", r"\)")):
            assign(resources, 2, **{"visible": ["0", "1"], **kw})  # type: ignore[arg-type]
