#!/usr/bin/env bash
# TLS against plaintext on one broker (docs/PERFORMANCE.md, "TLS"): a release broker with
# a PLAINTEXT and an SSL listener, and examples/throughput producing then consuming
# COUNT records of SIZE bytes (3 partitions, acks=1) on each, alternating, RUNS times.
# Each line gives MB/s and the CPU seconds the client (librdkafka), its busiest thread and
# the broker used in that phase: on one machine they share the cores, so the client's own
# TLS work counts, and librdkafka encrypts in its one thread per broker connection.
# Ends with the medians and TLS / plaintext per phase.
#
# Build first: cargo build --release --bin broker --example throughput
# Needs openssl (for examples/secure/make-certs.sh). Environment: RUNS (3), COUNT
# (600000), SIZE (1024), OUT (a temp dir: certs, data, broker log, results; deleted at
# the end unless KEEP=1).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BROKER=$(realpath "${BROKER:-$ROOT/target/release/broker}")
THROUGHPUT=$(realpath "${THROUGHPUT:-$ROOT/target/release/examples/throughput}")
RUNS=${RUNS:-3}
COUNT=${COUNT:-600000}
SIZE=${SIZE:-1024}
OUT=${OUT:-$(mktemp -d /tmp/bench-tls.XXXXXX)}

for bin in "$BROKER" "$THROUGHPUT"; do
  [[ -x $bin ]] || { echo "missing $bin: build the release binaries first" >&2; exit 1; }
done

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

BROKER_PID=
cleanup() {
  if [[ -n $BROKER_PID ]]; then
    kill "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
  fi
  [[ ${KEEP:-0} == 1 ]] || rm -rf "$OUT"
}
trap cleanup EXIT

mkdir -p "$OUT"
sh "$ROOT/examples/secure/make-certs.sh" "$OUT/certs" >/dev/null
PLAIN=$(free_port)
TLS=$(free_port)
METRICS=$(free_port)
cat >"$OUT/broker.toml" <<EOF
data_dir = "$OUT/data"
listeners = "PLAINTEXT://127.0.0.1:$PLAIN,SSL://127.0.0.1:$TLS"
metrics_listen = "127.0.0.1:$METRICS"
ssl_keystore_certificate_chain = "$OUT/certs/broker.pem"
ssl_keystore_key = "$OUT/certs/broker-key.pem"
EOF
"$BROKER" --config "$OUT/broker.toml" >"$OUT/broker.log" 2>&1 &
BROKER_PID=$!

# Bounded wait until both listeners accept connections.
deadline=$((SECONDS + 30))
until (exec 3<>"/dev/tcp/127.0.0.1/$PLAIN") 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$TLS") 2>/dev/null; do
  (( SECONDS < deadline )) || { echo "the broker did not listen within 30 s" >&2; cat "$OUT/broker.log" >&2; exit 1; }
  sleep 0.2
done
echo "broker pid $BROKER_PID: PLAINTEXT :$PLAIN, SSL :$TLS; $COUNT records of $SIZE B, $RUNS runs each"

run() {
  local mode=$1
  local args=(--bootstrap "127.0.0.1:$PLAIN")
  if [[ $mode == tls ]]; then
    args=(--bootstrap "127.0.0.1:$TLS" --ssl-ca "$OUT/certs/ca.pem")
  fi
  "$THROUGHPUT" "${args[@]}" --count "$COUNT" --size "$SIZE" --broker-pid "$BROKER_PID" |
    sed "s/^/$mode /" | tee -a "$OUT/results"
}

for _ in $(seq "$RUNS"); do
  run plaintext
  run tls
done

# Medians of MB/s and of CPU per phase and mode; then TLS / plaintext. Shares of a core
# are CPU seconds over the phase's duration (the bytes over the rate).
python3 - "$OUT/results" "$COUNT" "$SIZE" <<'PY'
import re, statistics, sys
megabytes = int(sys.argv[2]) * int(sys.argv[3]) / 1e6
rows = {}
for line in open(sys.argv[1]):
    mode, rest = line.split(" ", 1)
    phase = "produce" if rest.startswith("produce") else "consume"
    mbs = float(re.search(r"([\d.]+) MB/s", rest).group(1))
    client = float(re.search(r"client ([\d.]+) s", rest).group(1))
    thread = float(re.search(r"busiest thread \S+ ([\d.]+) s", rest).group(1))
    broker = float(re.search(r"broker ([\d.]+) s", rest).group(1))
    secs = megabytes / mbs
    rows.setdefault((phase, mode), []).append((mbs, client, broker, thread / secs, broker / secs))
for phase in ("produce", "consume"):
    med = {}
    for mode in ("plaintext", "tls"):
        runs = rows[(phase, mode)]
        med[mode] = [statistics.median(r[i] for r in runs) for i in range(5)]
        m = med[mode]
        print(f"{phase} {mode}: MB/s {' '.join(f'{r[0]:.1f}' for r in runs)}; "
              f"median {m[0]:.1f} MB/s, CPU client {m[1]:.2f} s, broker {m[2]:.2f} s; "
              f"busiest client thread {100 * m[3]:.0f} % of a core, broker {100 * m[4]:.0f} %")
    print(f"{phase}: TLS / plaintext {100 * med['tls'][0] / med['plaintext'][0]:.0f} %")
PY
