"""``.ci/venv`` (behind ``make demo`` and ``make test``): a ``.venv`` left by a Python older than
3.11 is noticed and removed, not reused, and no interpreter older than 3.11 is ever chosen."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: An interpreter that says it is Python 3.10: the 3.11 check fails, a version query answers.
OLD_PYTHON = """#!/bin/sh
case "$*" in
  *version_info*) exit 1 ;;
  *) echo Python 3.10.4 ;;
esac
"""


def _executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


def _run_script(project: Path, bin_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin", "HOME": str(project)}
    return subprocess.run(
        ["bash", str(project / ".ci" / "venv"), "all"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_venv_built_by_an_old_python_is_rebuilt_and_no_old_python_is_used(
    tmp_path: Path,
) -> None:
    project = tmp_path / "clone"
    (project / ".ci").mkdir(parents=True)
    shutil.copy(REPO / ".ci" / "venv", project / ".ci" / "venv")
    shutil.copy(REPO / "pyproject.toml", project / "pyproject.toml")
    _executable(project / ".venv" / "bin" / "python", OLD_PYTHON)
    (project / ".venv" / ".installed").write_text("all\n")
    # Every interpreter on PATH is too old, so after removing .venv the script must stop.
    bin_dir = tmp_path / "bin"
    for name in ("python3.13", "python3.12", "python3.11", "python3"):
        _executable(bin_dir / name, OLD_PYTHON)

    run = _run_script(project, bin_dir)

    assert "built by Python 3.10.4" in run.stdout
    assert "rebuilding" in run.stdout
    assert not (project / ".venv").exists()
    assert run.returncode == 1
    assert "needs Python 3.11 or newer; none was found" in run.stderr


def test_an_up_to_date_venv_is_left_alone(tmp_path: Path) -> None:
    project = tmp_path / "clone"
    (project / ".ci").mkdir(parents=True)
    shutil.copy(REPO / ".ci" / "venv", project / ".ci" / "venv")
    shutil.copy(REPO / "pyproject.toml", project / "pyproject.toml")
    recent = '#!/bin/sh\ncase "$*" in *version_info*) exit 0 ;; *) echo 3.12.1 ;; esac\n'
    _executable(project / ".venv" / "bin" / "python", recent)
    stamp = project / ".venv" / ".installed"
    stamp.write_text("all,dev,docs\n")
    os.utime(project / "pyproject.toml", (1, 1))  # older than the stamp

    run = _run_script(project, tmp_path / "empty-bin")

    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout == ""  # nothing to install: `make demo` after `make test` is silent
    assert stamp.read_text() == "all,dev,docs\n"


def test_a_venv_whose_interpreter_is_gone_is_rebuilt(tmp_path: Path) -> None:
    project = tmp_path / "clone"
    (project / ".ci").mkdir(parents=True)
    shutil.copy(REPO / ".ci" / "venv", project / ".ci" / "venv")
    shutil.copy(REPO / "pyproject.toml", project / "pyproject.toml")
    (project / ".venv" / "bin").mkdir(parents=True)
    (project / ".venv" / "bin" / "python").symlink_to(tmp_path / "deleted-python3.12")
    bin_dir = tmp_path / "bin"
    for name in ("python3.13", "python3.12", "python3.11", "python3"):
        _executable(bin_dir / name, OLD_PYTHON)

    run = _run_script(project, bin_dir)

    assert "built by an interpreter that no longer runs" in run.stdout
    assert not (project / ".venv").exists()
    assert run.returncode == 1
