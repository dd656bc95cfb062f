"""The ``tensormol`` command: info output and user-facing errors."""

from __future__ import annotations

import subprocess
import sys

from tensormol.cli._info import collect_info, format_info
from tensormol.cli.main import main


def test_collect_info_reports_real_versions() -> None:
    import torch

    info = collect_info()
    assert info["packages"]["torch"] == torch.__version__.split("+")[0] or info["packages"][
        "torch"
    ].startswith(torch.__version__.split("+")[0])
    text = format_info(info)
    assert "tensormol 0.1.0" in text and "compiled extension:" in text and "openmmtorch" in text


def test_console_script_runs_info() -> None:
    out = subprocess.run([sys.executable, "-m", "tensormol", "info"], capture_output=True,
                         text=True, check=True)
    assert "torch" in out.stdout and "OpenMM platforms" in out.stdout


def test_no_command_prints_help_and_fails(capsys) -> None:
    assert main([]) == 1
    assert "usage: tensormol" in capsys.readouterr().out
