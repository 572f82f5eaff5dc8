"""``make deploy-check``: the Kubernetes manifests against the Kubernetes schemas, the Dockerfile linted;
and both checks fail on a broken copy, so a pass means something."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

BIN = Path(sys.executable).parent
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))


def _validate(*files: Path) -> subprocess.CompletedProcess[str]:
    cmd = [str(BIN / "kubernetes-validate"), "--strict", "--quiet", *map(str, files)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "hadolint"), str(path)], capture_output=True, text=True, timeout=60)


def test_the_manifests_and_dockerfile_pass() -> None:
    kinds = {
        line.split(":", 1)[1].strip()
        for f in MANIFESTS
        for line in f.read_text().splitlines()
        if line.startswith("kind:")
    }
    assert kinds >= {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Secret"}
    out = _validate(*MANIFESTS)
    assert out.returncode == 0, out.stdout + out.stderr
    out = _hadolint(ROOT / "deploy" / "Dockerfile")
    assert out.returncode == 0, out.stdout + out.stderr


def test_an_invalid_manifest_fails(tmp_path: Path) -> None:
    broken = tmp_path / "deployment.yaml"
    text = (ROOT / "deploy" / "kubernetes" / "deployment.yaml").read_text()
    broken.write_text(
        text.replace("terminationGracePeriodSeconds: 40", "terminationGracePeriodSeconds: forty")
    )
    assert _validate(broken).returncode != 0
    broken.write_text(text.replace("livenessProbe:", "livenesProbe:"))  # a misspelt field: --strict
    assert _validate(broken).returncode != 0


def test_a_bad_dockerfile_fails(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    shutil.copy(ROOT / "deploy" / "Dockerfile", bad)
    bad.write_text(
        bad.read_text()
        .replace("FROM python:3.12-slim", "FROM python:latest")
        .replace('ENTRYPOINT ["python", "-m", "asgiserve"]', "ENTRYPOINT python -m asgiserve")
    )
    out = _hadolint(bad)
    assert out.returncode != 0 and "DL3007" in out.stdout  # "latest" is not a pinned base
