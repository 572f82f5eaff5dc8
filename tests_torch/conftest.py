"""Servers for the PyTorch example: the same real processes as tests/ (``make test-torch``, its own venv)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import ServerProc, start  # noqa: E402


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    """The example's ImageClassifier on asgiserve's own server, one for the module (torch starts slowly)."""
    server = start(
        "asgiserve", "torch_model:ImageClassifier", tmp_path_factory.mktemp("torch"), "--no-access-log"
    )
    yield server
    server.stop()
