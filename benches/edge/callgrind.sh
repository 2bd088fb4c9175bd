#!/bin/bash
# callgrind.sh <edge-bench-binary> <out-dir>: user-space instructions per
# request of berth's edge, hyper alone and the upstream alone (the
# in-process setups of `cargo bench --bench edge`), exact whatever the
# machine's load. The binary is target/release/deps/edge-<hash> after
# `cargo bench --bench edge --no-run`. See docs/edge-performance.md.
# Each setup: warmed up with wrk, then instrumented only while
# `wrk -t1 -c8 -d${SECS:-10}s` runs, dumped to <out-dir>/cg.out.N;
# instructions per request = the dump's `totals` / wrk's request count.
# Compare two dumps with `callgrind_annotate <dump>`.
set -eu
bin="$1"
out="$2"
mkdir -p "$out"
rm -f "$out/stdin"
mkfifo "$out/stdin"
BERTH_BENCH_ONLY=serve valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$out/cg.out" "$bin" <"$out/stdin" >"$out/serve.txt" 2>"$out/valgrind.txt" &
vg=$!
# Holds the bench's stdin open; closing it ends the bench.
exec 7>"$out/stdin"
until grep -q "serve: upstream" "$out/serve.txt" 2>/dev/null; do sleep 1; done
for setup in "berth http" "hyper alone" "upstream"; do
    name="${setup// /-}"
    url=$(grep "serve: $setup" "$out/serve.txt" | awk '{print $NF}')
    wrk -t1 -c8 -d3s "$url" >/dev/null
    callgrind_control -i on "$vg" >/dev/null 2>&1
    wrk -t1 -c8 -d"${SECS:-10}"s "$url" >"$out/wrk-$name.txt"
    callgrind_control -i off "$vg" >/dev/null 2>&1
    callgrind_control -d "$name" "$vg" >/dev/null 2>&1
    requests=$(awk '/requests in/{print $1}' "$out/wrk-$name.txt")
    dump=$(grep -l "Trigger: dump $name" "$out"/cg.out.* | tail -n1)
    totals=$(awk '/^totals:/{print $2}' "$dump")
    echo "$setup: $requests requests, $((totals / requests)) instructions per request ($dump)"
done
exec 7>&-
wait "$vg" || true
