"""Every ``tensormol`` subcommand through the entry point: ``main([...])`` and the console script.

Handlers called directly would miss a subparser that never sets its handler (``tensormol data``
once printed the top-level usage and exited 1), so every command here goes through the parser.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tensormol.cli import main as cli_main
from tensormol.cli.main import main

REPO = Path(__file__).resolve().parents[2]
ETHANOL = REPO / "data" / "ethanol.xyz.gz"


def _console_script() -> str:
    """The installed ``tensormol`` script next to this interpreter (or on PATH)."""
    here = Path(sys.executable).parent / "tensormol"
    found = str(here) if here.is_file() else shutil.which("tensormol")
    assert found, "the tensormol console script is not installed (pip install -e .)"
    return found


def _script(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([_console_script(), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, **kw)


@pytest.mark.parametrize("module,func", cli_main._SUBCOMMANDS)
def test_every_listed_subcommand_module_imports(module, func):
    assert callable(getattr(importlib.import_module(module), func))


def test_a_listed_but_missing_module_is_an_error(monkeypatch):
    monkeypatch.setattr(cli_main, "_SUBCOMMANDS",
                        cli_main._SUBCOMMANDS + (("tensormol.cli._nothere", "add_x"),))
    with pytest.raises(ImportError, match=r"tensormol\.cli\._nothere"):
        cli_main.build_parser()


def test_parser_lists_every_command():
    sub = next(a for a in cli_main.build_parser()._actions if a.dest == "command")
    assert {"info", "data", "train", "eval", "export", "md", "fe"} <= set(sub.choices)


@pytest.mark.parametrize("command", [["info"], ["data"], ["data", "generate"], ["data", "info"],
                                     ["train"], ["eval"], ["export"], ["md"], ["fe"]])
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    assert "usage: tensormol " + " ".join(command) in capsys.readouterr().out


def test_data_info_runs_through_main(capsys):
    assert main(["data", "info", str(ETHANOL), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["structures"] == 2000 and info["labels"] == "energy, forces, dipole"


def test_data_without_subcommand_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["data"])
    assert exc.value.code == 2
    assert "generate" in capsys.readouterr().err


def test_user_errors_are_one_line(tmp_path, capsys):
    assert main(["data", "info", str(tmp_path / "missing.xyz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tensormol data: error:") and "missing.xyz" in err
    assert "Traceback" not in err


def test_md_help_shows_defaults_from_the_config(capsys):
    from tensormol.md import MDConfig

    with pytest.raises(SystemExit):
        main(["md", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    defaults = MDConfig.__dataclass_fields__
    for flag, field in (("--timestep", "timestep"), ("--friction", "friction"),
                        ("--temperature", "temperature"), ("--steps", "steps"),
                        ("--report-interval", "report_interval")):
        assert flag in text
        assert f"(default: {defaults[field].default})" in text
    assert "(1/ps)" in text and "--overwrite" in text and "--resume" in text


def test_md_flags_are_checked_against_the_config_bounds(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["md", "a.xyz", "m.tmol", "--timestep", "-1"])
    assert exc.value.code == 2
    assert "must be > 0" in capsys.readouterr().err


# ------------------------------------------------------ the console script, one per group
def test_console_script_info_lists_bundled_data_sets():
    out = _script("info")
    assert out.returncode == 0, out.stderr
    assert "OpenMM platforms" in out.stdout
    line = next(s for s in out.stdout.splitlines() if s.startswith("bundled data sets"))
    for name in ("ethanol", "malonaldehyde", "aspirin", "water32"):
        assert name in line


def test_console_script_data_info():
    out = _script("data", "info", str(ETHANOL))
    assert out.returncode == 0, out.stderr
    assert "structures                 2000" in out.stdout


@pytest.mark.parametrize("group", ["train", "eval", "export", "md", "fe"])
def test_console_script_groups_start(group):
    out = _script(group, "--help", timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"usage: tensormol {group}" in out.stdout


def test_console_script_bad_input_is_one_line(tmp_path):
    out = _script("export", str(tmp_path / "none.ckpt"), cwd=tmp_path)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "none.ckpt" in out.stderr
