#!/usr/bin/env bash
# Runs every go test -fuzz target for FUZZTIME each (default 10s).
# Usage: scripts/fuzz.sh   (or: make fuzz FUZZTIME=1m)
set -euo pipefail
cd "$(dirname "$0")/.."
t=${FUZZTIME:-10s}
git grep -l '^func Fuzz' -- '*_test.go' | xargs -n1 dirname | sort -u | while read -r dir; do
	for f in $(grep -h '^func Fuzz' "$dir"/*_test.go | sed -E 's/^func (Fuzz[A-Za-z0-9_]+).*/\1/'); do
		echo "== $dir $f ($t)"
		go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" "./$dir"
	done
done
