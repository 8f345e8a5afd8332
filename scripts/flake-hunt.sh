#!/usr/bin/env bash
# Runs every Rust test (unit, actor-level, librdkafka client tests) and the Python client
# tests RUNS times (default 5) while `stress-ng --cpu N` keeps every core busy, then prints
# each test that failed at least once with its count. A test that passes on an idle machine
# and fails here depends on timing, not on events: fix its cause, not its timeout.
#
#   bash scripts/flake-hunt.sh [RUNS]
#
# Logs of every run stay in target/flake-hunt/ (run-N-rust.log, run-N-python.log).
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${1:-5}"
case "$runs" in '' | *[!0-9]*) echo "usage: $0 [RUNS]" >&2; exit 2 ;; esac
cpus="${FLAKE_HUNT_CPUS:-$(nproc)}"

say() { printf '\n== %s\n' "$*"; }

install() {
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -qq "$@" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$@"; }
  else
    sudo apt-get install -y -qq "$@" >/dev/null 2>&1 || { sudo apt-get update -qq && sudo apt-get install -y -qq "$@"; }
  fi
}
command -v stress-ng >/dev/null 2>&1 || { say "installing stress-ng"; install stress-ng; }
command -v kcat >/dev/null 2>&1 || command -v kafkacat >/dev/null 2>&1 || { say "installing kcat"; install kcat; }
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r tests/python/requirements.txt

say "building (before the load starts)"
cargo build --workspace --bins --tests --examples

out=target/flake-hunt
rm -rf "$out"
mkdir -p "$out"

say "stress-ng --cpu $cpus for the whole hunt"
stress-ng --cpu "$cpus" --timeout 0 --quiet &
stress_pid=$!
trap 'kill "$stress_pid" 2>/dev/null || true; wait "$stress_pid" 2>/dev/null || true' EXIT

started=$SECONDS
for i in $(seq 1 "$runs"); do
  say "run $i of $runs"
  t0=$SECONDS
  rust_rc=0
  timeout 1800 cargo test --workspace --no-fail-fast -- --test-threads=2 >"$out/run-$i-rust.log" 2>&1 || rust_rc=$?
  BROKER_BIN="$PWD/target/debug/broker" timeout 900 .venv/bin/python -m pytest -q -rf -p no:cacheprovider \
    tests/python >"$out/run-$i-python.log" 2>&1 || true
  # libtest: "test path::name ... FAILED"; pytest's short summary: "FAILED file::name - why".
  {
    grep -h '^test .* \.\.\. FAILED$' "$out/run-$i-rust.log" | sed -e 's/^test //' -e 's/ \.\.\. FAILED$//' || true
    grep -h '^FAILED ' "$out/run-$i-python.log" | sed -e 's/^FAILED //' -e 's/ - .*$//' || true
  } >"$out/run-$i-failed.txt"
  # A test binary that crashed (a signal, an abort) names no test: count the binary.
  if [ "$rust_rc" != 0 ] && [ ! -s "$out/run-$i-failed.txt" ]; then
    echo "cargo-test-exited-$rust_rc-without-a-failed-test" >>"$out/run-$i-failed.txt"
  fi
  passed=$(grep -h -o '[0-9]* passed' "$out/run-$i-rust.log" "$out/run-$i-python.log" | awk '{s+=$1} END {print s+0}')
  echo "run $i: $passed passed, $(wc -l <"$out/run-$i-failed.txt") failed, $((SECONDS - t0)) s"
done

say "flake hunt: $runs runs under stress-ng --cpu $cpus in $((SECONDS - started)) s"
failures=$(cat "$out"/run-*-failed.txt | sort | uniq -c | sort -rn)
if [ -z "$failures" ]; then
  echo "no test failed in $runs runs"
  exit 0
fi
echo "runs failed  test"
echo "$failures" | awk '{printf "%11s  %s\n", $1, $2}'
exit 1
