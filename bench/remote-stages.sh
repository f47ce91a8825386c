#!/usr/bin/env bash
# What the stages cost: smtp-bridge under Bun alone, with one milter (OpenDKIM signing), with
# rspamd over HTTP, with a Postfix policy service (policyd-spf), with its built-in mail
# authentication (DKIM signing with RSA-2048 or Ed25519, `--verify` with DNS from dnsmasq), and
# Postfix with the same OpenDKIM as its milter (and Postfix alone), at 1 KiB x 20 sessions; then
# one 50 MiB message through the bridge with and without the milter (peak RSS: the body must stay
# streamed). The built-in rows sit beside the remote ones so that signing in process and signing
# through OpenDKIM are measured in the same window (issue 16's targets are shares of bridge-bun:
# signing >= 70 %, verify >= 50 %; the summary prints each row's share).
#
#   bench/remote-stages.sh                       # 3 interleaved repetitions of 2000 messages
#   REPS=1 MESSAGES=200 bench/remote-stages.sh   # a smoke run: every row once
#   ROWS="bridge-bun bridge-bun+opendkim" LARGE=0 bench/remote-stages.sh
#   (also SIZE SESSIONS MESSAGES LARGE_SIZE LARGE_ROWS RSPAMD_WORKERS TIME_LIMIT OUT BENCH_DIR KEEP_TMP:
#   see bench/README.md)
#
# Uses the shared harness the way bench/run.sh does (a writable copy of ../shared/bench, one
# `smtp-bench.sh` run per row: smtp-source -> server -> smtp-sink, the server started fresh each
# run). The stage daemons (dnsmasq, OpenDKIM, rspamd, policyd-spf) are started once by this
# script on free loopback ports, with private config in a temporary directory, and stopped by
# their PID at the end. Before measuring, one message goes through each configured stage to a
# dumping smtp-sink and must come back signed / scanned / SPF-checked, so a stage that silently
# does nothing fails the script instead of producing flattering figures.
#
# Results: JSON lines in $OUT (default bench/results/remote-stages.jsonl, git-ignored), each with
# this invocation's run_id, and a median table of this invocation on stdout.
# Peak RSS is the server's process tree only (bridge, or Postfix's master and children): the
# stage daemons are not in it; their own peak (VmHWM) is printed once at the end.
set -u
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# ../shared/bench next to the project; a git worktree under wt/ looks one level higher.
SHARED="${SHARED:-$ROOT/../shared/bench}"
[ -d "$SHARED" ] || SHARED="$ROOT/../../shared/bench"
B="${BENCH_DIR:-/tmp/smtp-bridge-bench}"
REPS="${REPS:-3}"
SIZE="${SIZE:-1024}"
SESSIONS="${SESSIONS:-20}"
MESSAGES="${MESSAGES:-2000}"
LARGE="${LARGE:-1}"                       # 0: skip the 50 MiB rows
LARGE_SIZE="${LARGE_SIZE:-52428800}"
ROWS="${ROWS:-bridge-bun bridge-bun+dkim-rsa bridge-bun+dkim-ed25519 bridge-bun+verify bridge-bun+opendkim bridge-bun+rspamd bridge-bun+policyd-spf postfix+opendkim postfix}"
LARGE_ROWS="${LARGE_ROWS:-bridge-bun bridge-bun+opendkim}"
[ "$LARGE" = 1 ] || LARGE_ROWS=""
RSPAMD_WORKERS="${RSPAMD_WORKERS:-$(nproc)}"   # rspamd's default: one normal worker per CPU
OUT="${OUT:-$ROOT/bench/results/remote-stages.jsonl}"
OUT="$(realpath -m "$OUT")"
mkdir -p "$(dirname "$OUT")" "$ROOT/bench/results"
LOG="$ROOT/bench/results/remote-stages.log"
RUN_ID="$(date -u +%Y%m%dT%H%M%SZ)-$$"

# The shared folder may be read-only: the harness runs from a writable copy (as bench/run.sh).
if [ ! -x "$B/smtp-bench.sh" ]; then mkdir -p "$B" && cp -r "$SHARED/." "$B/" && chmod -R u+w "$B"; fi
command -v smtp-source >/dev/null || { echo "smtp-source missing: run $B/setup-peers.sh first" >&2; exit 1; }
for tool in opendkim opendkim-genkey rspamd dnsmasq policyd-spf postfix postconf openssl; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || { echo "$tool is not installed (see .ci/packages)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "needs root (Postfix, OpenDKIM and rspamd run as root here)" >&2; exit 1; }
export PATH="$ROOT/node_modules/.bin:/usr/sbin:$PATH"
LIB="$B/lib/benchlib.py"
CLI="$ROOT/src/cli.ts"
SERVE="serve --listen 127.0.0.1:{port} --relay smtp://127.0.0.1:{sink} --trust 127.0.0.0/8 --max-size 104857600"

T="$(mktemp -d /tmp/sb-remote-stages.XXXXXX)"
chmod 711 "$T"   # the preflight's smtp-sink runs as nobody and dumps into a folder below
DAEMONS=()   # "name pid" of everything started here, stopped in reverse order
log() { echo "[remote-stages $(date +%T)] $*" >&2; }
freeport() { python3 "$LIB" freeport; }
stop_pid() { # PID: the benchlib.py run wrapper forwards TERM to its tree, KILLs leftovers after 5 s
  local pid="$1"
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do [ -e "/proc/$pid" ] || break; sleep 0.1; done
  for p in $(python3 "$LIB" tree "$pid" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
  wait "$pid" 2>/dev/null
  return 0
}
cleanup() {
  local i
  for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do stop_pid "${DAEMONS[$i]#* }"; done
  DAEMONS=()
  if [ "${KEEP_TMP:-0}" = 1 ]; then log "kept $T"; else rm -rf "$T"; fi
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT
die() { log "$*"; exit 1; }

# daemon NAME 'COMMAND': runs it in the foreground under benchlib's subreaper wrapper, logging
# to $T/NAME.log; records its PID in DAEMONS and $PID.
daemon() {
  python3 "$LIB" run "$2" >"$T/$1.log" 2>&1 </dev/null &
  PID=$!
  DAEMONS+=("$1 $PID")
}
wait_port() { # PORT NAME PID SECONDS
  local deadline=$(($(date +%s) + $4))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    [ -e "/proc/$3" ] || break
    sleep 0.2
  done
  log "$2 is not listening on 127.0.0.1:$1; its log:"; tail -30 "$T/$2.log" >&2
  return 1
}

needs() { case " $ROWS $LARGE_ROWS " in *"$1"*) return 0;; esac; return 1; }

# ------------------------------------------------------------------ DNS for rspamd, policyd-spf, --verify
# dnsmasq answers alone for the bench's domains (smtp-source sends a@example.com -> b@example.net);
# example.com publishes an SPF record allowing loopback and a DMARC record (p=none). Every other
# name is REFUSED: no query leaves the machine. Its answers carry a 60 s TTL: the bridge's own
# DNS cache keeps them (a TTL of 0, dnsmasq's default for its local records, would send every
# lookup of every message to dnsmasq: that measures a cache that may not cache).
if needs rspamd || needs policyd-spf || needs verify; then
  DNS_PORT="$(freeport)"
  cat >"$T/dnsmasq.conf" <<EOF
local=/example.com/
local=/example.net/
local-ttl=60
txt-record=example.com,"v=spf1 ip4:127.0.0.0/8 -all"
txt-record=_dmarc.example.com,"v=DMARC1; p=none"
EOF
  daemon dnsmasq "exec dnsmasq --keep-in-foreground --port=$DNS_PORT --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts --log-facility=- --conf-file=$T/dnsmasq.conf --pid-file=$T/dnsmasq.pid"; DNS_PID=$PID
  wait_port "$DNS_PORT" dnsmasq "$DNS_PID" 10 || die "dnsmasq failed"
fi

# ------------------------------------------------------------------ OpenDKIM (signing, Mode s)
if needs opendkim; then
  DKIM_PORT="$(freeport)"
  mkdir -p "$T/opendkim"
  opendkim-genkey -b 2048 -d example.com -s bench -D "$T/opendkim" || die "opendkim-genkey failed"
  cat >"$T/opendkim/opendkim.conf" <<EOF
Syslog no
Background no
Domain example.com
Selector bench
KeyFile $T/opendkim/bench.private
Mode s
Canonicalization relaxed/relaxed
SignHeaders From,To,Subject,Date,Message-ID
InternalHosts 127.0.0.1
PidFile $T/opendkim/opendkim.pid
Socket inet:$DKIM_PORT@127.0.0.1
RequireSafeKeys no
EOF
  daemon opendkim "exec opendkim -f -x $T/opendkim/opendkim.conf"; DKIM_PID=$PID
  wait_port "$DKIM_PORT" opendkim "$DKIM_PID" 20 || die "opendkim failed"
fi

# ------------------------------------------------------------------ built-in DKIM signing keys
# The bridge signs mail from example.com (the bench's sender) from unauthenticated loopback
# clients (`--dkim-trusted-from`); one RSA-2048 key, one Ed25519 key.
if needs dkim-; then
  mkdir -p "$T/dkim"
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/dkim/rsa.pem" 2>/dev/null || die "openssl: no RSA key"
  openssl genpkey -algorithm ed25519 -out "$T/dkim/ed25519.pem" 2>/dev/null || die "openssl: no Ed25519 key"
fi

# ------------------------------------------------------------------ rspamd (normal worker, HTTP)
# Debian's rules (/etc/rspamd) with a private LOCAL_CONFDIR, run, db and log directory; no
# controller, proxy or fuzzy worker and no Redis (the modules that need it stay off). fuzzy_check
# is off: its servers are on the internet (their names would be resolved at start).
if needs rspamd; then
  RSPAMD_PORT="$(freeport)"
  mkdir -p "$T/rspamd/local.d" "$T/rspamd/override.d"
  echo "enabled = false;" >"$T/rspamd/local.d/fuzzy_check.conf"
  cat >"$T/rspamd/rspamd.conf" <<EOF
.include "\$CONFDIR/common.conf"
options {
  pidfile = "\$RUNDIR/rspamd.pid";
  .include "\$CONFDIR/options.inc"
  dns { nameserver = ["127.0.0.1:$DNS_PORT"]; timeout = 1s; retransmits = 1; }
}
logging { type = "console"; level = "error"; }
worker "normal" {
  bind_socket = "127.0.0.1:$RSPAMD_PORT";
  .include "\$CONFDIR/worker-normal.inc"
  count = $RSPAMD_WORKERS;
}
EOF
  daemon rspamd "exec rspamd -f -i -u root -g root -c $T/rspamd/rspamd.conf --var=CONFDIR=/etc/rspamd --var=LOCAL_CONFDIR=$T/rspamd --var=RUNDIR=$T/rspamd --var=DBDIR=$T/rspamd --var=LOGDIR=$T/rspamd"; RSPAMD_PID=$PID
  # Loading Debian's rules takes seconds, more on a busy machine.
  wait_port "$RSPAMD_PORT" rspamd "$RSPAMD_PID" 180 || die "rspamd failed"
fi

# ------------------------------------------------------------------ policy service: policyd-spf
# Chosen over postgrey: with the bench's client whitelisted, postgrey would answer DUNNO without
# work, while policyd-spf does what a policy service costs in practice (a DNS query, an SPF
# evaluation, an answer per RCPT). example.com's SPF allows 127.0.0.0/8, so every RCPT gets
# "PREPEND Received-SPF: Pass" (an accept). Postfix runs it through spawn(8), one process per
# connection; bench/policy-spawn.py is that listener. Debian's defaults, except loopback is not
# skipped (Debian skips it, and the bench's client is on loopback) and TestOnly stays on.
if needs policyd-spf; then
  POLICY_PORT="$(freeport)"
  mkdir -p "$T/policyd-spf"
  printf '%s\n' "debugLevel = 1" "TestOnly = 1" "HELO_reject = Fail" "Mail_From_reject = Fail" \
    "PermError_reject = False" "TempError_Defer = False" "skip_addresses = 192.0.2.255/32" >"$T/policyd-spf/policyd-spf.conf"
  daemon policyd-spf "exec /usr/bin/python3 $ROOT/bench/policy-spawn.py $POLICY_PORT $DNS_PORT $T/policyd-spf/policyd-spf.conf"; POLICY_PID=$PID
  wait_port "$POLICY_PORT" policyd-spf "$POLICY_PID" 10 || die "policyd-spf listener failed"
fi

# ------------------------------------------------------------------ Postfix with the milter
# The shared peer script, copied into the writable harness copy with one extra step before it
# starts Postfix: `postconf -e $POSTFIX_EXTRA` (milter settings). Its instance directory is its
# own (.peers/postfix-stages), not the one bench/run.sh uses.
if needs postfix; then
  sed '/^exec postfix /i [ -z "${POSTFIX_EXTRA:-}" ] || postconf -c "$PF/etc" -e $POSTFIX_EXTRA' \
    "$B/peers/postfix-start.sh" >"$B/peers/postfix-stages-start.sh"
  chmod +x "$B/peers/postfix-stages-start.sh"
  grep -q 'POSTFIX_EXTRA' "$B/peers/postfix-stages-start.sh" || die "peers/postfix-start.sh changed: no 'exec postfix' line to add the milter before"
  PF_DIR="$B/.peers/postfix-stages"
fi

declare -A START=(
  [bridge-bun]="bun $CLI $SERVE"
  [bridge-bun+opendkim]="bun $CLI $SERVE --milter inet:127.0.0.1:${DKIM_PORT:-0}"
  [bridge-bun+rspamd]="bun $CLI $SERVE --rspamd http://127.0.0.1:${RSPAMD_PORT:-0}"
  [bridge-bun+policyd-spf]="bun $CLI $SERVE --policy inet:127.0.0.1:${POLICY_PORT:-0}"
  [bridge-bun+dkim-rsa]="bun $CLI $SERVE --dkim-sign example.com:rsa:$T/dkim/rsa.pem --dkim-trusted-from '127.0.0.0/8=*'"
  [bridge-bun+dkim-ed25519]="bun $CLI $SERVE --dkim-sign example.com:ed:$T/dkim/ed25519.pem --dkim-trusted-from '127.0.0.0/8=*'"
  [bridge-bun+verify]="bun $CLI $SERVE --verify --dns 127.0.0.1:${DNS_PORT:-0}"
  [postfix]="POSTFIX_INSTANCE_DIR=${PF_DIR:-} peers/postfix-stages-start.sh {port} {sink}"
  [postfix+opendkim]="POSTFIX_INSTANCE_DIR=${PF_DIR:-} POSTFIX_EXTRA='smtpd_milters=inet:127.0.0.1:${DKIM_PORT:-0} non_smtpd_milters=inet:127.0.0.1:${DKIM_PORT:-0} milter_default_action=tempfail' peers/postfix-stages-start.sh {port} {sink}"
)
declare -A STOP=(
  [postfix]="postfix -c ${PF_DIR:-}/etc stop"
  [postfix+opendkim]="postfix -c ${PF_DIR:-}/etc stop"
)
for name in $ROWS $LARGE_ROWS; do [ -n "${START[$name]:-}" ] || die "unknown row $name (known: ${!START[*]})"; done

# ------------------------------------------------------------------ preflight: each stage works
# One message through NAME to an smtp-sink that dumps it; every pattern must be in the dump.
preflight() { # NAME PATTERN...
  local name="$1"; shift
  local d="$T/preflight-$name" port sink sink_pid server_pid cmd file pat ok=0
  mkdir -p "$d/dump" && chmod 777 "$d/dump"
  port="$(freeport)"; sink="$(freeport)"
  smtp-sink -u nobody -d "$d/dump/" "127.0.0.1:$sink" 64 >"$d/sink.log" 2>&1 &
  sink_pid=$!
  cmd="${START[$name]//\{port\}/$port}"; cmd="${cmd//\{sink\}/$sink}"
  (cd "$B" && exec python3 "$LIB" run "$cmd") >"$d/server.log" 2>&1 </dev/null &
  server_pid=$!
  if python3 "$LIB" banner "$port" 60 >/dev/null &&
    smtp-source -s 1 -m 1 -l "$SIZE" -f a@example.com -t b@example.net "127.0.0.1:$port" >"$d/source.log" 2>&1; then
    for _ in $(seq 1 100); do file="$(find "$d/dump" -type f | head -1)"; [ -n "$file" ] && [ -s "$file" ] && break; sleep 0.1; done
    sleep 0.2
    if [ -n "$file" ]; then
      ok=1
      for pat in "$@"; do grep -Eq "$pat" "$file" || { ok=0; log "preflight $name: no /$pat/ in the delivered message"; }; done
      [ "$ok" = 1 ] || sed -n '1,/^\r\{0,1\}$/p' "$file" | head -40 >&2
    else
      log "preflight $name: nothing delivered"
    fi
  else
    log "preflight $name: the message was not accepted"; tail -n 5 "$d/source.log" "$d/server.log" >&2
  fi
  [ -n "${STOP[$name]:-}" ] && (cd "$B" && timeout 20 bash -c "${STOP[$name]}") >>"$d/server.log" 2>&1
  stop_pid "$server_pid"
  kill -TERM "$sink_pid" 2>/dev/null; wait "$sink_pid" 2>/dev/null
  [ "$ok" = 1 ] && log "preflight $name: ok"
  [ "$ok" = 1 ]
}
declare -A EXPECT=(
  [bridge-bun+opendkim]='^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example\.com;'
  [postfix+opendkim]='^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example\.com;'
  [bridge-bun+rspamd]='^X-Spam-Action: no action'
  [bridge-bun+policyd-spf]='^Received-SPF: Pass \(mailfrom\)'
  [bridge-bun+dkim-rsa]='^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example\.com; s=rsa;'
  [bridge-bun+dkim-ed25519]='^DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example\.com; s=ed;'
  [bridge-bun+verify]='^Authentication-Results: '
)
# --verify must have asked the DNS (SPF passes for loopback, DMARC passes aligned): more patterns.
declare -A EXPECT_MORE=(
  [bridge-bun+verify]='spf=pass \(|dmarc=pass \('
)
for name in $(printf '%s\n' $ROWS $LARGE_ROWS | sort -u); do
  [ -n "${EXPECT[$name]:-}" ] || continue
  more=()
  [ -n "${EXPECT_MORE[$name]:-}" ] && IFS='|' read -ra more <<<"${EXPECT_MORE[$name]}"
  preflight "$name" "${EXPECT[$name]}" "${more[@]+"${more[@]}"}" || die "preflight $name failed: not measuring a stage that does not work"
done

# ------------------------------------------------------------------ measure
RAW="$T/runs.jsonl"; : >"$RAW"
run() { # NAME harness-args...
  local name="$1"; shift
  local before after stop=()
  [ -n "${STOP[$name]:-}" ] && stop=(--stop "${STOP[$name]}")
  before=$(wc -l <"$RAW" 2>/dev/null || echo 0)
  (cd "$B" && ./smtp-bench.sh --name "$name" --start "${START[$name]}" "${stop[@]+"${stop[@]}"}" --out "$RAW" \
    --time-limit "${TIME_LIMIT:-120}" --drain-timeout 60 "$@") 2>>"$LOG"
  after=$(wc -l <"$RAW" 2>/dev/null || echo 0)
  # Tag this invocation's lines and append them to $OUT as they come (an interrupted run keeps them).
  [ "$after" -gt "$before" ] && tail -n +"$((before + 1))" "$RAW" |
    python3 -c 'import json,sys
for l in sys.stdin:
    if l.strip(): d = json.loads(l); d["run_id"] = sys.argv[1]; print(json.dumps(d))' "$RUN_ID" >>"$OUT"
  return 0
}
log "run $RUN_ID: REPS=$REPS, $SIZE B x $SESSIONS sessions x $MESSAGES messages; rows: $ROWS; large: ${LARGE_ROWS:-off}; harness log: $LOG"
for rep in $(seq 1 "$REPS"); do
  for name in $ROWS; do
    log "rep $rep/$REPS: $name"
    run "$name" --size "$SIZE" --sessions "$SESSIONS" --messages "$MESSAGES"
  done
  for name in $LARGE_ROWS; do
    log "rep $rep/$REPS: $name, one $LARGE_SIZE-byte message"
    run "$name" --mode large --large-size "$LARGE_SIZE"
  done
done

echo
python3 "$ROOT/bench/remote-stages-summary.py" "$OUT" "$RUN_ID"; STATUS=$?   # 1: a run was not ok
echo "stage daemons' peak RSS over the whole run (VmHWM, summed over each daemon's processes):"
for entry in "${DAEMONS[@]}"; do
  printf '  %-12s %s MiB\n' "${entry% *}" "$(BENCH_EXCLUDE_ROOT=1 python3 "$LIB" once "${entry#* }" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["hwm_sum_kb"] / 1024))')"
done
echo "JSON lines: $OUT (run_id $RUN_ID)"
exit "$STATUS"
