"""``asgiserve.images.Image``: BentoML's container image description, kept so that services declaring
``image=Image(...)`` run unchanged.

asgiserve builds no images: every chainable method is a no-op that records what was asked (``steps``,
and the fields BentoML would fill), so a service's image can still be read back, say by a deploy script.
Nothing here touches the file system.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

__all__ = ["Image", "PythonImage"]

_DEFAULT_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


@dataclass
class Image:
    """What a BentoML image would be built from; methods chain and only record."""

    base_image: str = ""
    distro: str = "debian"
    python_version: str = _DEFAULT_PYTHON
    commands: list[str] = field(default_factory=list)
    lock_python_packages: bool = True
    pack_git_packages: bool = True
    python_requirements: str = ""
    post_commands: list[str] = field(default_factory=list)
    build_include_paths: list[str] = field(default_factory=list)
    # Every call, in order: (method name, its arguments).
    steps: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    _after_packages: bool = field(default=False, repr=False)

    def _record(self, name: str, *args: str) -> Image:
        self.steps.append((name, args))
        return self

    def system_packages(self, *packages: str) -> Image:
        """Record system packages to install."""
        return self._record("system_packages", *packages)

    def python_packages(self, *packages: str) -> Image:
        """Record Python requirements."""
        if not packages:
            raise ValueError("python_packages needs at least one package")
        self.python_requirements += "\n".join(packages) + "\n"
        self._after_packages = True
        return self._record("python_packages", *packages)

    def requirements_file(self, file_path: str) -> Image:
        """Record a requirements file (not read)."""
        self._after_packages = True
        return self._record("requirements_file", file_path)

    def pyproject_toml(self, file_path: str = "pyproject.toml") -> Image:
        """Record a pyproject.toml whose dependencies BentoML would install (not read)."""
        self._after_packages = True
        return self._record("pyproject_toml", file_path)

    def uv_lock(self) -> Image:
        """Record that uv.lock pins the packages."""
        self.lock_python_packages = False
        return self._record("uv_lock")

    def run(self, command: str) -> Image:
        """Record a build command (after the Python packages when some were given first, as BentoML)."""
        (self.post_commands if self._after_packages else self.commands).append(command)
        return self._record("run", command)

    def run_script(self, script: str) -> Image:
        """Record a build script."""
        return self._record("run_script", script)

    def build_include(self, *file_paths: str) -> Image:
        """Record files to include in the build context."""
        self.build_include_paths.extend(file_paths)
        return self._record("build_include", *file_paths)


PythonImage = Image  # BentoML's older name
