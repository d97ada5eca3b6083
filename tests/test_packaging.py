"""The image and the wheel carry what the README promises. Docker cannot run on CI's machines, so
the Dockerfile is checked by reading it, and the wheel it installs is built and inspected."""

from __future__ import annotations

import shlex
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _instructions(path: Path) -> list[tuple[str, str]]:
    text = path.read_text().replace("\\\n", " ")
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def test_dockerfile_runs_the_packaged_bot_as_a_non_root_user() -> None:
    steps = _instructions(ROOT / "Dockerfile")
    keywords = [keyword for keyword, _ in steps]
    assert keywords.count("FROM") >= 2, "multi-stage build"
    final = steps[max(i for i, (k, _) in enumerate(steps) if k == "FROM") :]
    values = {keyword: rest for keyword, rest in final}
    assert values["ENTRYPOINT"] == '["python", "-m", "bot"]'
    assert values["STOPSIGNAL"] == "SIGINT"
    user, _, group = values["USER"].partition(":")
    assert user.isdigit() and int(user) != 0, "a numeric, non-root user (hadolint DL3066)"
    assert not group or (group.isdigit() and int(group) != 0)
    assert "/data" in values["VOLUME"]
    assert "DATA_DIR=/data" in values["ENV"]
    runs = " ".join(rest for keyword, rest in final if keyword == "RUN")
    assert "pip install --require-hashes -r /tmp/requirements/runtime.txt" in runs
    assert "pip install --no-deps /tmp/*.whl" in runs, "the wheel built from this checkout"
    assert "pip check" in runs, "the lock satisfies the wheel's requirements"
    copied = " ".join(rest for keyword, rest in steps if keyword == "COPY")
    for needed in ("pyproject.toml", "bot", "migrations"):
        assert needed in shlex.split(copied)


def test_compose_uses_the_env_file_and_a_volume_for_data() -> None:
    text = (ROOT / "compose.yaml").read_text()
    assert "env_file: .env" in text
    assert "- bot-data:/data" in text


@pytest.mark.timeout(120)
def test_the_wheel_carries_the_package_and_the_migrations(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "bot/__main__.py" in names
    migrations = sorted(p.name for p in (ROOT / "migrations").glob("*.sql"))
    assert migrations and all(f"bot/_migrations/{name}" in names for name in migrations)


def test_every_pip_install_in_the_dockerfile_is_pinned_by_a_lock_with_hashes() -> None:
    steps = _instructions(ROOT / "Dockerfile")
    installs = [
        command.strip()
        for keyword, rest in steps
        if keyword == "RUN"
        for command in rest.split("&&")
        if "pip install" in command
    ]
    assert installs
    for command in installs:
        words = shlex.split(command)
        from_lock = "--require-hashes" in words and "-r" in words
        own_wheel = "--no-deps" in words and words[-1] == "/tmp/*.whl"
        assert from_lock or own_wheel, command
    build = " ".join(rest for keyword, rest in steps if keyword == "RUN")
    assert "pip install --require-hashes -r requirements/build.txt" in build


def _pins(lock: Path) -> dict[str, str]:
    """name -> version of every package in a lock file, checking each has hashes."""
    pins: dict[str, str] = {}
    text = lock.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        requirement, _, rest = line.partition(" ")
        name, _, version = requirement.partition("==")
        assert version, f"{lock.name}: {line} is not pinned"
        assert "--hash=sha256:" in rest, f"{lock.name}: {name} has no hash"
        pins[canonicalize_name(name)] = version
    return pins


@pytest.mark.parametrize(
    ("lock", "extras"), [("runtime.txt", ()), ("dev.txt", ("dev",))], ids=["runtime", "dev"]
)
def test_the_lock_files_cover_pyproject(lock: str, extras: tuple[str, ...]) -> None:
    """Run ./scripts/lock after changing a dependency in pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        wanted += [Requirement(r) for r in project["optional-dependencies"][extra]]
    pins = _pins(ROOT / "requirements" / lock)
    assert "pip" in pins  # the installer is pinned as well
    for requirement in wanted:
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in requirements/{lock}: run ./scripts/lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements/{lock} pins {name}=={pins[name]}, outside {requirement}: "
            "run ./scripts/lock"
        )


def test_the_build_lock_pins_the_build_backend_pyproject_names() -> None:
    build_system = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]
    pins = _pins(ROOT / "requirements" / "build.txt")
    for requirement in map(Requirement, build_system["requires"]):
        name = canonicalize_name(requirement.name)
        assert name in pins and requirement.specifier.contains(pins[name])
