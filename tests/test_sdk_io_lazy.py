"""The optional libraries of rich api IO load only when a service uses them, and a missing one is a clear error."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_a_plain_service_imports_none_of_them():
    out = run(
        "import sys, asgiserve\n"
        "import tests.apps.calls as m\n"
        "app = asgiserve.to_asgi(m.Calls)\n"
        "import asgiserve.validators, asgiserve.context\n"
        "print([n for n in ('pydantic', 'PIL', 'pandas', 'torch', 'numpy') if n in sys.modules])\n"
    )
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_pydantic_loads_with_a_service_that_uses_it_and_msgspec_decodes_the_rest():
    out = run(
        "import sys, asgiserve\n"
        "import tests.apps.sdk_io as m\n"
        "app = asgiserve.to_asgi(m.IOSvc)\n"
        "h = {x.spec.name: x for x in app.handlers}\n"
        "print('pydantic' in sys.modules, h['limits'].codec.converters, len(h['team_info'].codec.converters))\n"
    )
    assert out.returncode == 0 and out.stdout.split() == ["True", "()", "1"], out.stdout + out.stderr


def test_a_missing_pydantic_is_a_clear_error():
    out = run(
        "import sys\n"
        "sys.modules['pydantic'] = None\n"
        "import asgiserve\n"
        "try:\n"
        "    asgiserve.Field\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    assert (
        out.stdout.strip() == "asgiserve.Field needs pydantic, which is not installed: pip install pydantic"
    ), out.stderr


def test_a_missing_library_for_a_rich_type_is_a_clear_error():
    out = run(
        "import sys\n"
        "sys.modules['PIL'] = sys.modules['PIL.Image'] = None\n"
        "from asgiserve.iotypes import need\n"
        "try:\n"
        "    need('PIL.Image', 'a PIL image parameter')\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    assert (
        out.stdout.strip() == "a PIL image parameter needs pillow, which is not installed: pip install pillow"
    )
