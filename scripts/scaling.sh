#!/usr/bin/env bash
# Round time and peak memory of the simulation against clients per round and
# total clients (the default FedCMI model on synthetic data, 6 samples per
# client, 3 rounds); prints a Markdown table.
#
#   scripts/scaling.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/fedcmi" ./cmd/fedcmi
echo "| total clients | clients per round | samples | round time (s, mean of rounds 2-3) | peak memory (MB) |"
echo "| --- | --- | --- | --- | --- |"
for total in 1000 100000; do
	for per in 10 100 1000; do
		dir="$bin/runs"
		/usr/bin/time -f "%M" -o "$bin/mem" "$bin/fedcmi" simulate -out_dir "$dir" -name scale -overwrite \
			-rounds 3 -clients "$total" -clients_per_round "$per" -data.partition iid -data.min_size 1 \
			-data.synthetic.train_per_class "$total" >/dev/null 2>"$bin/log" || { cat "$bin/log" >&2; exit 1; }
		secs=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "seconds") c = i; next }
			NR > 2 { s += $c; n++ } END { printf "%.2f", s / n }' "$dir/scale/metrics.csv")
		echo "| $total | $per | $((total * 6)) | $secs | $(( $(cat "$bin/mem") / 1024 )) |"
	done
done
