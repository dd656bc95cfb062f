"""Run every side-by-side benchmark and assemble benchmarks/RESULTS.md from their result files.

Usage:
    python benchmarks/run_all.py            # run all, then assemble
    python benchmarks/run_all.py --assemble # only rebuild RESULTS.md from benchmarks/results/*.md

Each script writes its own table to benchmarks/results/<name>.md (with the command that made it);
RESULTS.md is their concatenation under one header, so every figure keeps its command.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: (script, result file, section title), in the order RESULTS.md shows them.
BENCHMARKS = (
    ("bench_sh.py", "sh.md", "Spherical harmonics: tensormol vs e3nn"),
    ("bench_neighbors.py", "neighbors.md", "Neighbour lists: tensormol vs brute force vs ASE"),
    ("bench_gaunt.py", "gaunt.md", "Gaunt tensor product vs e3nn"),
    ("bench_tensornet.py", "tensornet_speed.md", "TensorNet vs TorchMD-Net"),
    ("bench_accuracy.py", "tensornet_accuracy.md",
     "Trained accuracy: TensorNet (tensormol, TorchMD-Net) and GauntNet"),
    ("bench_diagrams.py", "diagrams.md", "Group-equivariant layers: fast vs dense"),
    ("bench_md.py", "md.md", "MD: OpenMM coupling, ns/day, openmm-ml TorchMD-Net route"),
)


def assemble() -> Path:
    parts = ["# Benchmark results", "",
             "Assembled by `python benchmarks/run_all.py --assemble` from `benchmarks/results/`. "
             "Every section names the command that produced it. Machines: 2-core x86-64 VMs, "
             "CPU only; absolute times are noisy there, ratios measured in one run less so.", ""]
    for script, result, title in BENCHMARKS:
        path = HERE / "results" / result
        parts.append(f"## {title}")
        parts.append("")
        if path.is_file():
            parts.append(f"Script: `benchmarks/{script}`")
            parts.append("")
            parts.append(path.read_text().strip())
        else:
            parts.append(f"Not yet measured (`python benchmarks/{script}`).")
        parts.append("")
    extra = sorted(p for p in (HERE / "results").glob("*.md")
                   if p.name not in {r for _, r, _ in BENCHMARKS})
    for p in extra:
        parts += [f"## {p.stem}", "", p.read_text().strip(), ""]
    out = HERE / "RESULTS.md"
    out.write_text("\n".join(parts))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assemble", action="store_true", help="only rebuild RESULTS.md")
    args = ap.parse_args()
    if not args.assemble:
        for script, _, title in BENCHMARKS:
            t = time.perf_counter()
            print(f"== {title}: {script}", flush=True)
            subprocess.run([sys.executable, str(HERE / script)], check=True)
            print(f"   done in {time.perf_counter() - t:.0f} s", flush=True)
    print(f"wrote {assemble()}")


if __name__ == "__main__":
    main()
