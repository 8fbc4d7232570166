#!/usr/bin/env bash
# Runs FedAvg, FedProx and FedCMI over several seeds on one experiment and
# prints the mean +- std table (the README's results tables come from here).
#
#   scripts/compare.sh OUT_DIR [fedcmi simulate flags...]
#
# e.g. scripts/compare.sh runs/mfeat -c configs/mfeat.yaml
set -euo pipefail
out=${1:?usage: scripts/compare.sh OUT_DIR [simulate flags...]}
shift
export GOEXPERIMENT=simd
go build -o "$out/fedcmi" ./cmd/fedcmi
for method in ${METHODS:-fedavg fedprox fedcmi}; do
  for seed in ${SEEDS:-1 2 3}; do
    "$out/fedcmi" simulate "$@" -out_dir "$out" -method "$method" -seed "$seed" -name "$method-seed$seed" -overwrite >/dev/null
  done
done
"$out/fedcmi" table "$out"/*-seed*/
