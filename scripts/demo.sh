#!/usr/bin/env bash
# `make run`: serves the models with a demo tenant, the web chat and the usage and host pages.
# The first run creates the demo ledger (DIR/demo-ledger.db) with one tenant and a price, its
# key in DIR/demo-key.txt and an admin key in DIR/demo-admin-key.txt (both mode 0600). Then it
# starts `corral serve` on 127.0.0.1:8080 (the next free port when that one is busy) and, once
# the model is loaded, prints three lines: the chat URL, the dashboard URL and a curl command.
# Ctrl-C (or SIGTERM) stops the server cleanly.
# Each model is served under its file's stem; the first is the one the curl line calls.
# Usage: scripts/demo.sh CORRAL_BIN DIR MODEL.gguf [MODEL.gguf ...]
set -euo pipefail
bin=$(realpath "$1")
dir=$(realpath "$2")
shift 2
[ $# -ge 1 ] || { echo "usage: scripts/demo.sh CORRAL_BIN DIR MODEL.gguf [MODEL.gguf ...]" >&2; exit 2; }
port=${DEMO_PORT:-8080}
serve_models=()
ids=()
for m in "$@"; do
  ids+=("$(basename "$m" .gguf)")
  serve_models+=(-m "$(basename "$m" .gguf)=$(realpath "$m")")
done
id=${ids[0]}
ledger="sqlite:$dir/demo-ledger.db"
key_file="$dir/demo-key.txt"
admin_file="$dir/demo-admin-key.txt"
umask 077

if [ ! -s "$key_file" ] || [ ! -s "$admin_file" ] || [ ! -f "$dir/demo-ledger.db" ]; then
  rm -f "$dir/demo-ledger.db" "$dir/demo-ledger.db-wal" "$dir/demo-ledger.db-shm"
  out=$("$bin" tenant add demo --ledger "$ledger" --json)
  key=$(printf '%s' "$out" | sed -n 's/.*"api_key":"\([^"]*\)".*/\1/p')
  [ -n "$key" ] || { echo "demo: could not create the demo tenant: $out" >&2; exit 1; }
  printf '%s\n' "$key" > "$key_file"
  od -An -tx1 -N24 /dev/urandom | tr -d ' \n' > "$admin_file"
  echo >> "$admin_file"
  for i in "${ids[@]}"; do "$bin" price set "$i" --input 0.10 --output 0.40 --ledger "$ledger" > /dev/null; done
  "$bin" share set llama3 --percent 10 --ledger "$ledger" > /dev/null
  echo "demo: created the demo tenant in $dir/demo-ledger.db (key in $key_file)" >&2
fi
chmod 600 "$key_file" "$admin_file"

# The first free port from $port on.
while (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null; do port=$((port + 1)); done

log="$dir/demo-serve.log"
: > "$log"
"$bin" serve "${serve_models[@]}" --host 127.0.0.1 --port "$port" --ledger "$ledger" \
  --admin-key-file "$admin_file" --instance demo 2> >(trap '' INT TERM; exec tee "$log" >&2) &
pid=$!
stop() {
  kill -TERM "$pid" 2> /dev/null || true
  wait "$pid" 2> /dev/null || true
  exit 0
}
trap stop INT TERM
for _ in $(seq 1 600); do
  grep -q '^ready' "$log" 2> /dev/null && break
  kill -0 "$pid" 2> /dev/null || { wait "$pid"; exit 1; }
  sleep 0.1
done
grep -q '^ready' "$log" || { echo "demo: the server did not become ready" >&2; stop; }
url="http://127.0.0.1:$port"
echo "chat:      $url/"
echo "dashboard: $url/usage"
echo "curl -s $url/v1/chat/completions -H \"Authorization: Bearer \$(cat $key_file)\" -H 'Content-Type: application/json' -d '{\"model\": \"$id\", \"messages\": [{\"role\": \"user\", \"content\": \"Once upon a time\"}], \"max_tokens\": 40}'"
wait "$pid"
