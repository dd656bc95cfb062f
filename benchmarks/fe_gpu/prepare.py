"""Prepare the explicit-water ATM runs for a GPU machine without tensormol or AmberTools.

    python benchmarks/fe_gpu/prepare.py OUTDIR [--only cb7|t4]

Builds, on this machine (tensormol, AmberTools, RDKit, OpenMM), the legs of
``configs/fe_cb7.yaml`` and ``configs/fe_t4_l99a.yaml`` with the ``standard`` preset (TIP3P,
0.15 M NaCl, PME, HMR 3 amu, 4 fs) and writes, per leg, everything ``run_atm.py`` needs:

    OUTDIR/<system>/<leg>/system.xml.gz   the full System: MM + ATMForce + restraints
    OUTDIR/<system>/<leg>/state.npz       positions (nm), box (nm), minimised at state 0
    OUTDIR/<system>/<leg>/leg.json        states (ATMForce parameters), ATMForce index, kind,
                                          temperature, standard-state term, ligands

The folder stays small (gzip'd XML; a few MB per leg). Run the legs on the GPU with
``run_atm.py`` (needs only openmm and numpy).
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {"cb7": ROOT / "configs" / "fe_cb7.yaml", "t4": ROOT / "configs" / "fe_t4_l99a.yaml"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir")
    ap.add_argument("--only", choices=sorted(CONFIGS), help="prepare one system only")
    args = ap.parse_args(argv)
    import openmm

    from tensormol.fe._atm import ATMSettings, RestraintSettings, atm_states, site_standard_state_kT
    from tensormol.fe._binding import build_leg_system, prepare_binding
    from tensormol.fe._config import load_binding_config

    out = Path(args.outdir)
    for key, cfg_path in CONFIGS.items():
        if args.only and key != args.only:
            continue
        work = out / "_work" / key
        cfg = load_binding_config(cfg_path, ["preset=standard", f"output={work}"])
        leg_dirs = prepare_binding(cfg, work)
        for leg_dir in leg_dirs:
            system, pos, box, meta, idx = build_leg_system(leg_dir)
            dest = out / key / leg_dir.name
            dest.mkdir(parents=True, exist_ok=True)
            xml = openmm.XmlSerializer.serialize(system)
            with gzip.open(dest / "system.xml.gz", "wt") as fh:
                fh.write(xml)
            np.savez(dest / "state.npz", positions_nm=pos,
                     box_nm=np.zeros((3, 3)) if box is None else box)
            atm = ATMSettings(**meta["atm"])
            t = cfg.sampling.temperature_K
            leg = {
                "name": meta["name"], "kind": meta["kind"], "ligands": meta["ligands"],
                "atm_force_index": idx, "states": atm_states(atm),
                "temperature_K": t, "timestep_fs": 4.0, "friction_per_ps": 1.0,
                "standard_state_kT": site_standard_state_kT(
                    t, RestraintSettings(**meta["restraints"])),
                "n_particles": system.getNumParticles(),
                "experimental_kcal": {str(k): float(v) for k, v in
                                      cfg.experimental_kcal.items()},
                "atm_settings": dataclasses.asdict(atm),
            }
            (dest / "leg.json").write_text(json.dumps(leg, indent=1))
            size = sum(f.stat().st_size for f in dest.iterdir()) / 1e6
            print(f"{key}/{leg_dir.name}: {system.getNumParticles()} particles, {size:.1f} MB",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
