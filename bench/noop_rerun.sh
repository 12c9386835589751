#!/usr/bin/env bash
# Benchmark: a no-op rerun's time to the first test result (warm cache, nothing to build).
# Usage: bench/noop_rerun.sh   (run the main job once first)
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s.%N)
./kbtf pytest suites/ -n 0 -q -x -k test_vmlinux_has_btf >/dev/null
end=$(date +%s.%N)
echo "no-op rerun to first test result: $(echo "$end - $start" | bc) s"
