"""``tensormol data generate|info`` through the argparse wiring the lead's CLI uses."""

from __future__ import annotations

import argparse
import json

import pytest

from tensormol.cli._data import add_data_subcommand, run_data

pytest.importorskip("tblite")


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tensormol")
    add_data_subcommand(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_generate_and_info(tmp_path, capsys):
    out = tmp_path / "eth.xyz.gz"
    args = _parse(["data", "generate", "--smiles", "CCO", "-o", str(out), "-n", "3",
                   "--save-every", "2", "--equilibration", "2", "--chunk", "2",
                   "--no-progress"])
    assert run_data(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["frames"] == 3 and summary["complete"]
    assert run_data(_parse(["data", "info", str(out), "--cutoff", "4.0"])) == 0
    text = capsys.readouterr().out
    assert "structures                 3" in text and "H C O" in text
    assert "level_of_theory            GFN2-xTB" in text
    assert "mean_num_neighbors         8.0" in text
    assert run_data(_parse(["data", "info", str(out), "--json"])) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["structures"] == 3 and info["labels"] == "energy, forces, dipole"
    assert info["forces_eV_per_A"]["rms"] > 0


def test_cli_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.xyz"):
        run_data(_parse(["data", "info", str(tmp_path / "missing.xyz")]))
    with pytest.raises(SystemExit):  # argparse: exactly one structure source is required
        _parse(["data", "generate", "-o", "x.xyz", "-n", "2"])
