"""The two commands' installs: `make run` installs what serving needs, `make test` adds the
test tools, and each notices a venv the other made and a changed pyproject.toml.

The real Makefile runs under the real `make`; `python -m venv` makes a venv whose pip,
python, ruff and patientpdf only write their arguments to a log. (A real install takes
minutes and the network; what is under test is which install the Makefile asks for, when.)
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
FAKE_PYTHON = """#!/bin/sh
echo "python $*" >> "{log}"
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin"
  for tool in pip python ruff mypy lint-imports patientpdf; do
    printf '#!/bin/sh\\necho "%s $*" >> "{log}"\\n' "$tool" > "$3/bin/$tool"
    chmod +x "$3/bin/$tool"
  done
fi
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    if shutil.which("make") is None:
        pytest.fail("make is not installed")
    for name in ("Makefile", "pyproject.toml", "clients/python/pyproject.toml", "scripts/install-browser.sh"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_PYTHON.format(log=tmp_path / "calls.log"))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return tmp_path


def make(project: Path, target: str) -> list[str]:
    """Run `make TARGET`; the commands the venv's tools were called with."""
    log = project / "calls.log"
    log.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    result = subprocess.run(
        ["make", "--no-print-directory", target, f"PYTHON={project / 'fake-python'}"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return log.read_text().splitlines() if log.exists() else []


TEST_INSTALL = "pip install --quiet -e .[test] -e clients/python"


def installs(calls: list[str]) -> list[str]:
    return [call for call in calls if call.startswith("pip install") and "--upgrade pip" not in call]


def test_run_installs_only_what_serving_needs(project: Path) -> None:
    calls = make(project, "run")
    assert calls[0].startswith("python -m venv")
    assert installs(calls) == ["pip install --quiet -e ."]
    assert [call for call in calls if call.startswith("patientpdf")][-1].startswith("patientpdf serve")


def test_test_after_run_adds_the_test_tools_once(project: Path) -> None:
    make(project, "run")
    calls = make(project, "test")
    assert not any(call.startswith("python -m venv") for call in calls)  # the same venv
    assert installs(calls) == [TEST_INSTALL]
    assert any(call.startswith("python -m pytest") for call in calls)
    assert installs(make(project, "test")) == []
    assert installs(make(project, "run")) == []


def test_a_changed_pyproject_reinstalls_for_each_command(project: Path) -> None:
    make(project, "test")
    make(project, "run")
    now = time.time()
    for stamp in (project / ".venv").glob(".installed-*"):
        os.utime(stamp, (now - 100, now - 100))
    os.utime(project / "pyproject.toml", (now, now))
    assert installs(make(project, "run")) == ["pip install --quiet -e ."]
    assert installs(make(project, "test")) == [TEST_INSTALL]
    assert installs(make(project, "test")) == []
