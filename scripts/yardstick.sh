#!/usr/bin/env bash
# Times fedcmi's model benchmarks against PyTorch at the same shapes, in one
# run, and prints a Markdown table: for each, the best of COUNT rounds, a
# round timing every fedcmi benchmark and then PyTorch with 1 and with 2
# threads (interleaved, so that both see the same machine load).
#
#   scripts/yardstick.sh [COUNT]      (default 3)
#
# PyTorch is Debian's python3-torch (installed here when missing, apt-get
# exists and we are root); the yardstick is ../shared/bench/torch_step.py.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd
count=${1:-3}
torch=../shared/bench/torch_step.py
if [ ! -f "$torch" ]; then
	echo "yardstick: $torch not found" >&2
	exit 1
fi
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
	if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch >/dev/null
	else
		echo "yardstick: PyTorch missing (Debian: apt-get install python3-torch)" >&2
		exit 1
	fi
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/model.test" ./model/
pairs=("BenchmarkCNNStep/small small" "BenchmarkCNNStep/small-stem2 small-stem2"
	"BenchmarkCNNStep/large large" "BenchmarkCNNStep/large-stem2 large-stem2" "BenchmarkStep/fedcmi mlp")
for r in $(seq "$count"); do
	echo "round $r of $count" >&2
	(cd model && "$tmp/model.test" -test.run XXX -test.bench 'BenchmarkCNNStep|BenchmarkStep/fedcmi' -test.benchtime 10x) >>"$tmp/go.txt"
	for pair in "${pairs[@]}"; do
		set -- $pair
		for t in 1 2; do
			/usr/bin/python3 "$torch" "$2" "$t" >>"$tmp/torch.txt"
		done
	done
done
best_go() { # benchmark name -> best ms/op
	awk -v n="$1" '$1 ~ "^"n"(-[0-9]+)?$" { v = $3 / 1e6; if (best == "" || v < best) best = v } END { printf "%.2f", best }' "$tmp/go.txt"
}
best_torch() { # shape -> best ms/step over 1 and 2 threads
	awk -v n="$1" '$1 == n { v = $3 + 0; if (best == "" || v < best) best = v } END { printf "%.2f", best }' \
		<(sed -E 's/^([^ ]+) threads=[0-9]+: ([0-9.]+) ms.*/\1 x \2/' "$tmp/torch.txt")
}
echo "| benchmark | PyTorch 1.13 (ms) | fedcmi (ms) | fedcmi / PyTorch |"
echo "| --- | --- | --- | --- |"
for pair in "${pairs[@]}"; do
	set -- $pair
	g=$(best_go "$1")
	p=$(best_torch "$2")
	echo "| $1 | $p | $g | $(awk -v g="$g" -v p="$p" 'BEGIN { printf "%.2f", g / p }') |"
done
