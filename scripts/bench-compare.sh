#!/usr/bin/env bash
# The performance targets' workloads with broker-bench, against this broker and, when
# OTHER_CMD is given, against another Kafka-compatible broker started the same way, one
# after the other in the same session. Prints one table; JSON and SVG files go to $OUT.
#
#   cargo build --release --bins -p broker -p broker-bench
#   scripts/bench-compare.sh
#   OTHER_NAME=tansu OTHER_CMD='tansu broker --listener-url tcp://127.0.0.1:$PORT \
#     --advertised-listener-url tcp://127.0.0.1:$PORT --storage-engine memory://tansu/' \
#     scripts/bench-compare.sh
#
# OTHER_CMD is run with $PORT set to a free port; it must listen there in 30 s.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=${BENCH:-target/release/broker-bench}
BROKER=${BROKER:-target/release/broker}
OUT=${OUT:-$(mktemp -d)}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
mkdir -p "$OUT"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_listening() {
  local port=$1 pid=$2
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || { echo "the broker exited at start" >&2; return 1; }
    sleep 0.1
  done
  echo "nothing listening on $port after 30 s" >&2
  return 1
}

# broker_fsyncs_total from this broker's /metrics (METRICS_PORT), or nothing.
fsyncs() {
  [ -n "${METRICS_PORT:-}" ] || return 0
  python3 -c 'import sys, urllib.request
page = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
print(sum(float(l.split()[-1]) for l in page.splitlines() if l.startswith("broker_fsyncs_total")))' "$METRICS_PORT"
}

# The broker's CPU time (ms) while one workload runs: measured NAME FILE -- COMMAND...
measured() {
  local name=$1 file=$2
  shift 3
  local t0 t1
  t0=$(awk '{print $14+$15}' "/proc/$BROKER_PID/stat")
  "$@" >/dev/null
  t1=$(awk '{print $14+$15}' "/proc/$BROKER_PID/stat")
  echo $(( (t1 - t0) * 10 )) > "$OUT/$name-$file.cpu_ms"
}

# run_all NAME PORT: every workload against the broker on PORT.
run_all() {
  local name=$1 port=$2
  local b=(--bootstrap "127.0.0.1:$port" --progress-secs 0)
  measured "$name" produce-100 -- "$BENCH" "${b[@]}" produce --acks 1 --message-size 100 --partitions 3 \
    --duration "$SECONDS_PER_RUN" --json "$OUT/$name-produce-100.json" --svg "$OUT/$name-produce-100.svg"
  measured "$name" produce-1k -- "$BENCH" "${b[@]}" produce --acks 1 --message-size 1024 --partitions 3 \
    --duration "$SECONDS_PER_RUN" --json "$OUT/$name-produce-1k.json"
  # The fill is produced first; only the read is measured.
  "$BENCH" "${b[@]}" produce --acks 1 --message-size 100 --partitions 3 --count 3000000 \
    --topic "consume-$name" >/dev/null
  measured "$name" consume-100 -- "$BENCH" "${b[@]}" consume --count 3000000 --message-size 100 \
    --topic "consume-$name" --json "$OUT/$name-consume-100.json"
  local before after
  before=$(fsyncs)
  measured "$name" acks-all-16 -- "$BENCH" "${b[@]}" produce --acks all --producers 16 --linger-ms 1 \
    --message-size 100 --partitions 3 --duration "$SECONDS_PER_RUN" --json "$OUT/$name-acks-all-16.json"
  after=$(fsyncs)
  if [ -n "$before" ]; then
    python3 -c "import json,sys; r=json.load(open(sys.argv[3])); print(f'{(float(sys.argv[2])-float(sys.argv[1]))/r[\"duration_secs\"]:.0f}')" \
      "$before" "$after" "$OUT/$name-acks-all-16.json" > "$OUT/$name-fsyncs-per-sec.txt"
  fi
  measured "$name" latency -- "$BENCH" "${b[@]}" latency --rate 1000 --acks 1 --message-size 100 \
    --duration "$SECONDS_PER_RUN" --json "$OUT/$name-latency.json" --svg "$OUT/$name-latency.svg"
}

# Ours: the default config on a free port and a temporary data dir.
PORT=$(free_port)
METRICS_PORT=$(free_port)
DATA=$(mktemp -d)
printf 'listen = "127.0.0.1:%s"\ndata_dir = "%s/data"\nmetrics_listen = "127.0.0.1:%s"\n' \
  "$PORT" "$DATA" "$METRICS_PORT" > "$DATA/config.toml"
"$BROKER" --config "$DATA/config.toml" 2>"$OUT/broker.log" &
PID=$!
BROKER_PID=$PID
trap 'kill $PID 2>/dev/null || true; rm -rf "$DATA"' EXIT
wait_listening "$PORT" "$PID"
START_TICKS=$(awk '{print $14+$15}' "/proc/$PID/stat")
run_all broker "$PORT"
END_TICKS=$(awk '{print $14+$15}' "/proc/$PID/stat")
RSS=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status")
kill "$PID"; wait "$PID" || true
echo "broker: $(( (END_TICKS - START_TICKS) * 10 )) ms of CPU over all runs, peak RSS $((RSS / 1024)) MB" > "$OUT/broker.cpu"
rm -rf "$DATA/data" # the runs write several GB
NAMES=(broker)
METRICS_PORT=

if [ -n "${OTHER_CMD:-}" ]; then
  OTHER_NAME=${OTHER_NAME:-other}
  PORT=$(free_port)
  export PORT
  bash -c "exec $OTHER_CMD" >"$OUT/$OTHER_NAME.log" 2>&1 &
  PID=$!
  BROKER_PID=$PID
  wait_listening "$PORT" "$PID"
  START_TICKS=$(awk '{print $14+$15}' "/proc/$PID/stat")
  run_all "$OTHER_NAME" "$PORT" || echo "$OTHER_NAME: a workload failed; see its JSON and log" >&2
  END_TICKS=$(awk '{print $14+$15}' "/proc/$PID/stat")
  RSS=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status")
  kill "$PID"; wait "$PID" || true
  echo "$OTHER_NAME: $(( (END_TICKS - START_TICKS) * 10 )) ms of CPU over all runs, peak RSS $((RSS / 1024)) MB" > "$OUT/$OTHER_NAME.cpu"
  NAMES+=("$OTHER_NAME")
fi

python3 - "$OUT" "${NAMES[@]}" <<'EOF'
import json, os, sys
out, names = sys.argv[1], sys.argv[2:]
rows = [
    ("produce 100 B acks=1, 3 partitions", "produce-100", "msgs_per_sec", "msg/s"),
    ("produce 1 KiB acks=1, 3 partitions", "produce-1k", "mb_per_sec", "MB/s"),
    ("consume 100 B from the beginning", "consume-100", "msgs_per_sec", "msg/s"),
    ("acks=all, 16 producers, 100 B", "acks-all-16", "msgs_per_sec", "msg/s"),
    ("end-to-end latency p99 at 1000 msg/s", "latency", "p99", "ms"),
    ("end-to-end latency p50 at 1000 msg/s", "latency", "p50", "ms"),
]
def value(name, file, key):
    path = os.path.join(out, f"{name}-{file}.json")
    try:
        r = json.load(open(path))
    except (OSError, ValueError):
        return None
    if not r.get("complete", True) or r.get("errors", 0):
        return None
    if key in ("p99", "p50"):
        return r["latency_us"][key] / 1000.0
    return r[key]
header = f"{'workload':40}" + "".join(f"{n:>16}" for n in names) + ("    ratio" if len(names) > 1 else "")
print(header)
for label, file, key, unit in rows:
    vals = [value(n, file, key) for n in names]
    cells = "".join(f"{v:>12.1f} {unit:<3}" if v is not None else f"{'failed':>16}" for v in vals)
    ratio = ""
    if len(vals) > 1 and None not in vals and vals[1]:
        ratio = f"  {vals[0] / vals[1]:6.2f}x" if key not in ("p99", "p50") else f"  {vals[1] / vals[0]:6.2f}x"
    print(f"{label:40}{cells}{ratio}")
print()
print("broker CPU per million messages (ms), from /proc/<pid>/stat while each workload ran:")
print(f"{'workload':40}" + "".join(f"{n:>16}" for n in names))
for label, file, key, unit in rows[:4]:
    cells = ""
    for n in names:
        try:
            ms = float(open(os.path.join(out, f"{n}-{file}.cpu_ms")).read())
            msgs = json.load(open(os.path.join(out, f"{n}-{file}.json")))["messages"]
            cells += f"{ms / msgs * 1e6:>13.0f} ms" if msgs else f"{'-':>16}"
        except (OSError, ValueError, KeyError):
            cells += f"{'-':>16}"
    print(f"{label:40}{cells}")
for n in names:
    print(open(os.path.join(out, f"{n}.cpu")).read().strip())
    try:
        per_sec = open(os.path.join(out, f"{n}-fsyncs-per-sec.txt")).read().strip()
        print(f"{n}: {per_sec} fsyncs/s during the acks=all run")
    except OSError:
        pass
print(f"results: {out}")
EOF
