"""``tensormol data generate|info`` through the ``tensormol`` entry point."""

from __future__ import annotations

import json

import pytest

from tensormol.cli.main import main

pytest.importorskip("tblite")


def test_generate_and_info(tmp_path, capsys):
    out = tmp_path / "eth.xyz.gz"
    assert main(["data", "generate", "--smiles", "CCO", "-o", str(out), "-n", "3",
                 "--save-every", "2", "--equilibration", "2", "--chunk", "2",
                 "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["frames"] == 3 and summary["complete"]
    assert main(["data", "info", str(out), "--cutoff", "4.0"]) == 0
    text = capsys.readouterr().out
    assert "structures                 3" in text and "H C O" in text
    assert "level_of_theory            GFN2-xTB" in text
    assert "mean_num_neighbors         8.0" in text
    assert main(["data", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["structures"] == 3 and info["labels"] == "energy, forces, dipole"
    assert info["forces_eV_per_A"]["rms"] > 0


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(["data", "info", str(tmp_path / "missing.xyz")]) == 2
    assert "missing.xyz" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # argparse: exactly one structure source
        main(["data", "generate", "-o", "x.xyz", "-n", "2"])
    assert exc.value.code == 2


def test_friction_is_per_picosecond(capsys):
    with pytest.raises(SystemExit):
        main(["data", "generate", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "Langevin friction, 1/ps" in help_text and "(default: 10.0)" in help_text


def test_no_progress_bar_in_a_redirected_log(tmp_path):
    import os
    import subprocess
    import sys

    log = tmp_path / "log.txt"
    with open(log, "w") as fh:
        out = subprocess.run([sys.executable, "-m", "tensormol", "data", "generate", "--smiles",
                              "O", "-o", str(tmp_path / "w.xyz"), "-n", "2", "--save-every",
                              "1", "--equilibration", "1"], stdout=fh, stderr=subprocess.STDOUT,
                             env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
    text = log.read_text()
    assert out.returncode == 0, text
    assert "\r" not in text and "no progress bar" in text and len(text) < 2000
