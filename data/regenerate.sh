#!/usr/bin/env bash
# Regenerates the bundled data sets exactly (GFN2-xTB via tblite 0.8.0, one OpenMP thread).
# Usage: data/regenerate.sh [molecules|water|all]   (from the repository root)
# Each command resumes from its checkpoint if interrupted; pass --overwrite to start afresh.
set -euo pipefail
export OMP_NUM_THREADS=1
TM="${TENSORMOL:-python -m tensormol.cli._data}"   # same as `tensormol data`
what="${1:-all}"
MD="--temperature 500 --timestep 0.5 --friction 10 --save-every 20 --equilibration 2000 --chunk 100 --seed 0"
if [[ "$what" == molecules || "$what" == all ]]; then
  $TM generate --smiles 'CCO' -o data/ethanol.xyz.gz -n 2000 $MD
  $TM generate --smiles 'O/C=C\C=O' -o data/malonaldehyde.xyz.gz -n 2000 $MD
  $TM generate --smiles 'CC(=O)Oc1ccccc1C(=O)O' -o data/aspirin.xyz.gz -n 2000 $MD
fi
if [[ "$what" == water || "$what" == all ]]; then
  $TM generate --smiles 'O' --copies 32 --density 1.0 -o data/water32.xyz.gz -n 200 \
    --temperature 300 --timestep 1.0 --hydrogen-mass 2.0 --friction 20 --save-every 2 \
    --equilibration 100 --relax-steps 10 --chunk 5 --seed 0
fi
