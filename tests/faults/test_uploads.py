"""File uploads go to disk as they arrive: eight concurrent 50 MB uploads to an api taking a ``Path`` leave
the server's memory (peak RSS) within 64 MB of where it was, and an upload over the body limit is refused
as its bytes arrive."""

from __future__ import annotations

import concurrent.futures
import os

import httpx

from tests.conftest import start

MB = 1024 * 1024


def memory_kb(pid: int, field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (the peak so far) of process ``pid``, in kB."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


def test_eight_concurrent_50mb_uploads_stay_off_the_heap(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    server = start("asgiserve", "tests.faults.apps:Uploads", tmp_path, "--no-access-log", env={"TMPDIR": str(spool)})
    try:
        blob = tmp_path / "blob.bin"
        with blob.open("wb") as fh:
            for _ in range(50):
                fh.write(os.urandom(MB))
        with httpx.Client(timeout=60) as client:  # warm up the form path first
            assert client.post(server.url + "/size", files={"file": ("a.bin", b"x" * 100)}).json() == 100
        before = memory_kb(server.proc.pid, "VmRSS")

        def upload(i: int) -> int:
            with httpx.Client(timeout=60) as client, blob.open("rb") as fh:
                response = client.post(server.url + "/size", files={"file": (f"{i}.bin", fh)}, data={"label": str(i)})
                assert response.status_code == 200, response.text
                return int(response.json())

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            sizes = list(pool.map(upload, range(8)))
        assert sizes == [50 * MB] * 8
        growth_mb = (memory_kb(server.proc.pid, "VmHWM") - before) / 1024
        print(f"peak RSS growth: {growth_mb:.1f} MB")
        assert growth_mb < 64
        assert list(spool.iterdir()) == []  # every upload's files removed after its call
    finally:
        server.stop()


def test_an_upload_over_the_body_limit_is_refused_as_it_arrives(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    server = start(
        "asgiserve", "tests.faults.apps:Uploads", tmp_path, "--max-body-size", str(4 * MB), env={"TMPDIR": str(spool)}
    )
    try:

        def body():  # 40 MB, given piece by piece: the refusal comes long before the end
            yield b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n\r\n"
            for _ in range(40):
                yield b"x" * MB

        headers = {"content-type": "multipart/form-data; boundary=b"}
        with httpx.Client(timeout=30) as client:
            try:
                response = client.post(server.url + "/size", content=body(), headers=headers)
                status = response.status_code
            except httpx.HTTPError:  # the server may close before the client has sent everything
                status = None
        assert status in (413, None)
        assert memory_kb(server.proc.pid, "VmHWM") < 200 * 1024
        assert list(spool.iterdir()) == []
        assert httpx.get(server.url + "/livez").status_code == 200
    finally:
        server.stop()
