"""The README runs as written: its ``bash`` and ``python`` blocks, from a fresh directory.

Budgets shrink only through documented flags appended to a command (argparse keeps the last
value of a repeated flag), never by editing the README's text: fewer generated frames, fewer
epochs and MD steps. The Python snippet and the cheap commands run in every test run; the whole
train → export → MD tour and the checkout commands are ``slow``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")

#: Flags appended to commands (by prefix) to keep their cost small.
SMALL = {
    "tensormol data generate": ["-n", "16", "--save-every", "2", "--equilibration", "10",
                                "--no-progress"],
    "tensormol train": ["--set", "trainer.max_epochs=2", "data.split.train=10",
                        "data.split.val=3", "data.split.test=3"],
    # A model trained for two epochs is no model: no minimization (it would pull the molecule
    # apart), a few steps from the generated frame.
    "tensormol md": ["--steps", "20", "--report-interval", "5", "--no-minimize"],
    ".venv/bin/tensormol md": ["--steps", "4", "--report-interval", "2",
                               "--minimize-max-iterations", "5"],
    ".venv/bin/tensormol train": ["--set", "trainer.max_epochs=1", "data.split.train=20",
                                  "data.split.val=5", "data.split.test=5"],
}
#: Commands that need no model, data generation or training: run in every test run.
CHEAP = ("tensormol info", "tensormol data info")


def blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", README, flags=re.S | re.M)


def commands(block: str) -> list[str]:
    """Shell commands of a block: one per line, a heredoc kept with its command, trailing
    comments removed."""
    out: list[str] = []
    lines = block.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        heredoc = re.search(r"<<'?(\w+)'?", line)
        if heredoc:
            end = heredoc.group(1)
            body = [line]
            while i < len(lines):
                body.append(lines[i])
                i += 1
                if lines[i - 1].strip() == end:
                    break
            out.append("\n".join(body))
            continue
        out.append(re.sub(r"\s+#.*$", "", line).strip())
    return out


def _small(cmd: str) -> str:
    for prefix in sorted(SMALL, key=len, reverse=True):
        if cmd.startswith(prefix + " "):
            return cmd + " " + " ".join(SMALL[prefix])
    return cmd


def _env() -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""),
                OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def _run(cmd: str, cwd: Path, timeout: float = 900) -> str:
    proc = subprocess.run(["bash", "-c", "set -eo pipefail\n" + _small(cmd)], cwd=cwd,
                          capture_output=True, text=True, env=_env(), timeout=timeout)
    assert proc.returncode == 0, (f"README command failed ({proc.returncode}): {cmd}\n"
                                  f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def _tour() -> list[str]:
    """The block run from an empty folder (the one that starts with ``tensormol info``)."""
    found = [b for b in blocks("bash") if commands(b) and commands(b)[0] == "tensormol info"]
    assert len(found) == 1, "the README's tour block (starting with `tensormol info`) is missing"
    return commands(found[0])


def test_readme_has_the_blocks_this_test_runs():
    assert len(blocks("python")) == 1
    tour = _tour()
    for needed in ("tensormol data generate", "tensormol train", "tensormol export",
                   "tensormol md"):
        assert any(c.startswith(needed) for c in tour), needed
    # Every file the tour uses is made by the tour itself (no path of the checkout).
    assert not any("configs/" in c or "data/" in c for c in tour)


def test_python_snippet_runs_in_a_fresh_interpreter(tmp_path):
    (tmp_path / "snippet.py").write_text(blocks("python")[0])
    out = subprocess.run([sys.executable, "snippet.py"], cwd=tmp_path, capture_output=True,
                         text=True, env=_env(), timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "torch.Size([12, 3])" in out.stdout


def test_cheap_tour_commands(tmp_path):
    cheap = [c for c in _tour() if c.split(" ")[:2] == ["tensormol", "info"] and len(
        c.split()) == 2]
    assert cheap, "no cheap command found"
    for cmd in cheap:
        assert "OpenMM platforms" in _run(cmd, tmp_path, timeout=300)


@pytest.mark.slow
@pytest.mark.openmm
def test_whole_tour_from_an_empty_folder(tmp_path):
    pytest.importorskip("tblite")
    outputs = {}
    for cmd in _tour():
        outputs[cmd] = _run(cmd, tmp_path)
    assert (tmp_path / "ethanol.tmol").is_file()
    log = (tmp_path / "md_nve" / "md.log").read_text()
    assert "threads (md): torch 1" in log and "NVE energy drift" in log


@pytest.mark.slow
@pytest.mark.openmm
def test_checkout_commands(tmp_path):
    """The commands run in the checkout, their outputs sent to a temporary folder."""
    if not (REPO / ".venv" / "bin" / "tensormol").is_file():
        pytest.skip("the checkout has no .venv (these commands are for `make run` set-ups)")
    block = next(b for b in blocks("bash") if ".venv/bin/tensormol" in b)
    away = {".venv/bin/tensormol md": f" -o {tmp_path / 't4'}",
            ".venv/bin/tensormol train": f" --set logging.root={tmp_path}"}
    for cmd in commands(block):
        extra = next((v for k, v in away.items() if cmd.startswith(k)), "")
        _run(cmd + extra, REPO)


def test_free_energy_commands_parse():
    """Every `tensormol fe` command of the README names flags the parser knows (running them is
    minutes of sampling: the fe tests run the same code paths on tiny systems)."""
    import shlex

    from tensormol.cli.main import build_parser

    fe = [c for b in blocks("bash") for c in commands(b) if " fe " in f" {c} "]
    assert len(fe) >= 4, fe
    parser = build_parser()
    for cmd in fe:
        argv = shlex.split(cmd)
        argv = argv[argv.index("fe"):]
        args = parser.parse_args(argv)
        assert callable(args.func), cmd
