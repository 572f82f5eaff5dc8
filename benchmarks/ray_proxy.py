"""The cost of Ray Serve's proxy: the benchmark service's POST /predict through Serve (1 and 2 replicas)
beside the same service on asgiserve's own server, one keep-alive client sending requests one at a time.

Runs in the Ray virtualenv (``make test-ray`` creates ``.venv-ray``), bounded by ``--requests``:

    .venv-ray/bin/python benchmarks/ray_proxy.py --requests 500
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH / "apps"))
sys.path.insert(0, str(BENCH.parent))

from benchmarks.apps.workload import PREDICT_BODY, PREDICT_EXPECTED  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def latencies(port: int, n: int) -> list[float]:
    """Seconds per POST /predict, ``n`` of them on one keep-alive connection (each answer checked)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"content-type": "application/json"}
    out = []
    try:
        for i in range(n + 20):  # the first 20 warm up
            t0 = time.perf_counter()
            conn.request("POST", "/predict", body=PREDICT_BODY, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200 or json.loads(body) != PREDICT_EXPECTED:
                raise RuntimeError(f"/predict answered {resp.status}: {body[:100]!r}")
            if i >= 20:
                out.append(time.perf_counter() - t0)
    finally:
        conn.close()
    return out


def _wait(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} not ready")


def own(n: int) -> list[float]:
    """asgiserve's server, one worker."""
    port = _free_port()
    cmd = [sys.executable, "-m", "asgiserve", "asgiserve_svc:Predict", "--port", str(port), "--no-access-log"]
    proc = subprocess.Popen(cmd, cwd=BENCH / "apps", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(port)
        return latencies(port, n)
    finally:
        proc.terminate()
        proc.wait(30)


def on_ray(n: int, replicas: tuple[int, ...]) -> dict[int, list[float]]:
    """Through Serve's proxy with each replica count."""
    import ray
    from asgiserve_svc import Predict
    from ray import serve

    import asgiserve.ray

    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": str(BENCH / "apps")}})
    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    out = {}
    try:
        for count in replicas:
            app = asgiserve.ray.deployment(Predict, num_replicas=count, ray_actor_options={"num_cpus": 0.5})
            serve.run(app.bind(), name="predict", route_prefix="/")
            _wait(port)
            out[count] = latencies(port, n)
            serve.delete("predict")
    finally:
        serve.shutdown()
        ray.shutdown()
    return out


def main() -> int:
    """Print the median and mean latency of each, and what the proxy adds."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=500)
    args = ap.parse_args()
    direct = own(args.requests)
    rows = {"asgiserve, 1 worker": direct}
    rows.update({f"Ray Serve, {k} replica(s)": v for k, v in on_ray(args.requests, (1, 2)).items()})
    base = statistics.median(direct)
    for name, lat in rows.items():
        med = statistics.median(lat)
        print(
            f"{name:26} median {med * 1e6:8.0f} us  mean {statistics.fmean(lat) * 1e6:8.0f} us  "
            f"{1 / statistics.fmean(lat):7.0f} req/s sequential  +{(med - base) * 1e6:6.0f} us over asgiserve"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
