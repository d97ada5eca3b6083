"""The image and the wheel carry what the README promises. Docker cannot run on CI's machines, so
the Dockerfile is checked by reading it, and the wheel it installs is built and inspected."""

from __future__ import annotations

import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

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
    assert values["USER"] not in {"root", "0"}
    assert "/data" in values["VOLUME"]
    assert "DATA_DIR=/data" in values["ENV"]
    runs = " ".join(rest for keyword, rest in final if keyword == "RUN")
    assert "pip install /tmp/*.whl" in runs, "the image installs the wheel built from this checkout"
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
