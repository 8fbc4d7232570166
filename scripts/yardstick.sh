#!/usr/bin/env bash
# Times fedcmi's model benchmarks against PyTorch at the same shapes, in one
# run, and prints a Markdown table (best of -count runs for fedcmi, best of
# 1 and 2 threads for PyTorch).
#
#   scripts/yardstick.sh [COUNT]
#
# PyTorch is Debian's python3-torch (installed here when missing, apt-get
# exists and we are root); the yardstick is ../shared/bench/torch_step.py.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd
count=${1:-5}
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
out=$(mktemp)
trap 'rm -f "$out"' EXIT
go test -run XXX -bench 'BenchmarkCNNStep|BenchmarkStep/fedcmi' -benchtime 10x -count "$count" ./model/ | tee "$out" >&2
best_go() { # benchmark name -> best ms/op
	awk -v n="$1" '$1 ~ "^"n"(-[0-9]+)?$" { v = $3 / 1e6; if (best == "" || v < best) best = v } END { printf "%.2f", best }' "$out"
}
best_torch() { # shape -> best ms/step over 1 and 2 threads
	local best=""
	for t in 1 2; do
		for _ in 1 2; do
			v=$(/usr/bin/python3 "$torch" "$1" "$t" | sed -E 's/.*: ([0-9.]+) ms.*/\1/')
			best=$(awk -v a="$best" -v b="$v" 'BEGIN { if (a == "" || b < a) print b; else print a }')
		done
	done
	printf "%s" "$best"
}
echo
echo "| benchmark | PyTorch (ms) | fedcmi (ms) | fedcmi / PyTorch |"
echo "| --- | --- | --- | --- |"
for pair in "BenchmarkCNNStep/small small" "BenchmarkCNNStep/small-stem2 small-stem2" \
	"BenchmarkCNNStep/large large" "BenchmarkCNNStep/large-stem2 large-stem2" "BenchmarkStep/fedcmi mlp"; do
	set -- $pair
	g=$(best_go "$1")
	p=$(best_torch "$2")
	echo "| $1 | $p | $g | $(awk -v g="$g" -v p="$p" 'BEGIN { printf "%.2f", g / p }') |"
done
