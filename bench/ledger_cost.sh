#!/usr/bin/env bash
# The cost of exact metering: 16 streams through `corral bench-serve` against three servers on
# the same model, alternated: no tenants (nothing metered), a metered tenant on SQLite, and (with
# a PostgreSQL DSN) a metered tenant on PostgreSQL. Prints each run's aggregate tok/s.
# Usage: bench/ledger_cost.sh CORRAL MODEL.gguf ROUNDS [postgresql://...] [--ledger-sync normal]
set -euo pipefail
corral=$1 model=$2 rounds=$3 pg=${4:-} sync=${5:-full}
dir=$(mktemp -d)
start() {  # DSN PORT -> pid
  "$corral" serve -m "m=$model" --port "$2" --parallel 16 --ledger "$1" --ledger-sync "$sync" --instance "bench-$2" \
    > "$dir/log-$2" 2>&1 &
  echo $!
  for _ in $(seq 300); do curl -sf "localhost:$2/v1/models" > /dev/null 2>&1 && break; sleep 0.2; done
}
"$corral" tenant add metered --ledger "sqlite:$dir/metered.db" --json > "$dir/t1.json"
key1=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['api_key'])" "$dir/t1.json")
p0=$(start "sqlite:$dir/open.db" 18301)
p1=$(start "sqlite:$dir/metered.db" 18302)
servers=("open 18301 -" "sqlite 18302 $key1")
if [ -n "$pg" ]; then
  "$corral" tenant add metered --ledger "$pg" --json > "$dir/t2.json"
  key2=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['api_key'])" "$dir/t2.json")
  p2=$(start "$pg" 18303)
  servers+=("postgresql 18303 $key2")
fi
for r in $(seq "$rounds"); do
  for s in "${servers[@]}"; do
    set -- $s
    args=(--concurrency 16 --requests ${REQUESTS:-48} --max-tokens 64 --prompt-tokens 32 --json)
    [ "$3" != "-" ] && args+=(--api-key "$3")
    out=$("$corral" bench-serve "http://127.0.0.1:$2" "${args[@]}")
    echo "round $r $1: $(echo "$out" | python3 -c "import json,sys; j=json.load(sys.stdin); print(round(j['generated_tok_s'], 1), 'tok/s, itl p99', round(j['itl_p99_s'] * 1000, 1), 'ms, failed', j['failed'])")"
  done
done
kill $p0 $p1 ${p2:-} 2>/dev/null || true
wait 2>/dev/null || true
rm -rf "$dir"
