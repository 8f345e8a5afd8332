#!/usr/bin/env bash
# Replication figures on a three-broker cluster on one machine (docs/PERFORMANCE.md,
# "Replication (RF=3)"):
#   1. produce acks=all throughput, RF=1 against RF=3 (min.insync.replicas 2), at 100 B and
#      1 KiB, with broker-bench;
#   2. idle cost: 1,000 partitions at RF=3 over the three brokers, every ISR full, nothing
#      produced; each broker's CPU from /proc/PID/stat (utime+stime) as % of one core.
#
# The brokers run from examples/cluster/node{1,2,3}.toml in temp dirs, so they use that
# example's ports: clients on 127.0.0.1:9192-9194, Raft on 9292-9294 (must be free).
# They are killed on exit.
#
# Build first: cargo build --release --bin broker --bin broker-bench -p broker -p broker-bench
#
# Environment: DURATION (s per produce run, 10), PRODUCERS (4), IDLE_PARTITIONS (1000),
# IDLE_SECS (seconds sampled, 30), PRODUCE (0: skip the produce runs), OUT (where results and broker logs go, a temp dir).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BROKER=${BROKER:-$ROOT/target/release/broker}
BENCH=${BENCH:-$ROOT/target/release/broker-bench}
DURATION=${DURATION:-10}
PRODUCERS=${PRODUCERS:-4}
IDLE_PARTITIONS=${IDLE_PARTITIONS:-1000}
IDLE_SECS=${IDLE_SECS:-30}
OUT=${OUT:-$(mktemp -d /tmp/bench-cluster.XXXXXX)}
BOOTSTRAP=127.0.0.1:9192,127.0.0.1:9193,127.0.0.1:9194
TICKS=$(getconf CLK_TCK)
BROKER=$(realpath "$BROKER")
BENCH=$(realpath "$BENCH")

for bin in "$BROKER" "$BENCH"; do
  [[ -x $bin ]] || { echo "missing $bin: build the release binaries first" >&2; exit 1; }
done
command -v kcat >/dev/null || { echo "kcat is needed to read ISRs from metadata" >&2; exit 1; }

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

mkdir -p "$OUT"
for n in 1 2 3; do
  dir="$OUT/node$n"
  mkdir -p "$dir"
  (cd "$dir" && exec "$BROKER" --config "$ROOT/examples/cluster/node$n.toml") \
    >"$dir/broker.log" 2>&1 &
  PIDS+=($!)
done
echo "brokers: pids ${PIDS[*]}, logs and results in $OUT"

# Bounded wait until all three brokers are listed by Metadata.
deadline=$((SECONDS + 60))
until [[ $(kcat -L -b "$BOOTSTRAP" -J -m 5 2>/dev/null |
           python3 -c 'import json,sys; print(len(json.load(sys.stdin)["brokers"]))' 2>/dev/null) == 3 ]]; do
  (( SECONDS < deadline )) || { echo "the cluster did not list 3 brokers within 60 s" >&2; exit 1; }
  sleep 0.5
done

# ISR summary of a topic: "partitions full_isr leaders_per_broker".
isr_summary() {
  kcat -L -b "$BOOTSTRAP" -t "$1" -J -m 15 2>/dev/null | python3 -c '
import json, sys, collections
md = json.load(sys.stdin)
t = next((t for t in md["topics"] if t["topic"] == sys.argv[1]), None)
parts = t["partitions"] if t else []
full = sum(1 for p in parts if len(p["isrs"]) == len(p["replicas"]) and p["leader"] >= 0)
leaders = collections.Counter(p["leader"] for p in parts)
print(len(parts), full, "/".join(str(leaders[b]) for b in sorted(leaders)))' "$1"
}

wait_full_isr() { # topic partitions timeout_s
  local deadline=$((SECONDS + $3)) s
  while :; do
    s=$(isr_summary "$1" || true)
    read -r parts full _ <<<"${s:-0 0 -}"
    [[ $parts == "$2" && $full == "$2" ]] && { echo "$s"; return 0; }
    (( SECONDS < deadline )) || { echo "topic $1: ISRs not full within $3 s ($s)" >&2; return 1; }
    sleep 1
  done
}

msgs() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(round(r["msgs_per_sec"]), round(r["mb_per_sec"],1))' "$1"; }

if [[ ${PRODUCE:-1} != 0 ]]; then
echo
echo "== produce acks=all, $PRODUCERS producers, 3 partitions, ${DURATION} s each"
declare -A RATE MB
for size in 100 1024; do
  for rf in 1 3; do
    topic="rf$rf-$size"
    extra=()
    (( rf > 1 )) && extra=(--min-insync-replicas 2)
    # Created first with no load, so every ISR is full when the run starts.
    "$BENCH" produce --bootstrap "$BOOTSTRAP" --topic "$topic" --partitions 3 \
      --replication-factor "$rf" "${extra[@]}" --count 1 --progress-secs 0 >/dev/null
    wait_full_isr "$topic" 3 60 >/dev/null
    "$BENCH" produce --bootstrap "$BOOTSTRAP" --topic "$topic" --acks all \
      --producers "$PRODUCERS" --message-size "$size" --duration "$DURATION" \
      --progress-secs 0 --json "$OUT/$topic.json" >"$OUT/$topic.txt"
    read -r RATE[$rf-$size] MB[$rf-$size] < <(msgs "$OUT/$topic.json")
  done
done
printf '\n| Record | RF=1 acks=all | RF=3 acks=all, min.insync 2 | RF=3 / RF=1 |\n|---|---|---|---|\n'
for size in 100 1024; do
  ratio=$(python3 -c "print(f'{${RATE[3-$size]}/${RATE[1-$size]}:.2f}')")
  printf '| %s B | %s msg/s (%s MB/s) | %s msg/s (%s MB/s) | %s |\n' "$size" \
    "${RATE[1-$size]}" "${MB[1-$size]}" "${RATE[3-$size]}" "${MB[3-$size]}" "$ratio"
done
fi

echo
echo "== idle: $IDLE_PARTITIONS partitions at RF=3, nothing produced"
"$BENCH" produce --bootstrap "$BOOTSTRAP" --topic idle --partitions "$IDLE_PARTITIONS" \
  --replication-factor 3 --count 1 --progress-secs 0 >/dev/null ||
  echo "creating the topic passed the client's timeout (a slow or debug build); waiting for its ISRs"
t0=$SECONDS
summary=$(wait_full_isr idle "$IDLE_PARTITIONS" 180)
echo "all $IDLE_PARTITIONS ISRs full after $((SECONDS - t0)) s; leaders per broker: ${summary##* }"
# Let the load of creating them (and the one record) settle before sampling.
sleep 5
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Voluntary context switches over the process's threads: its wake-ups.
csw() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches/ {s += $2} END {print s}'; }
declare -A C0 W0
for pid in "${PIDS[@]}"; do C0[$pid]=$(cpu "$pid"); W0[$pid]=$(csw "$pid"); done
start=$(date +%s.%N)
sleep "$IDLE_SECS"
end=$(date +%s.%N)
printf '\n| Broker | CPU over %s s | %% of a core | wake-ups |\n|---|---|---|---|\n' "$IDLE_SECS"
n=1
for pid in "${PIDS[@]}"; do
  ticks=$(( $(cpu "$pid") - C0[$pid] ))
  sw=$(( $(csw "$pid") - W0[$pid] ))
  python3 -c "t=$ticks/$TICKS; print(f'| node$n | {t:.2f} s | {100*t/($end-$start):.2f} % | {$sw/($end-$start):.0f}/s |')"
  n=$((n + 1))
done
