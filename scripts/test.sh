#!/usr/bin/env bash
# The one test command: unit tests, actor-level tests, client tests with librdkafka
# (rdkafka crate), and the Python (confluent-kafka, kafka-python) and kcat tests.
# Installs what it needs: kcat from Debian's packages, Python packages into .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }

if ! command -v kcat >/dev/null 2>&1 && ! command -v kafkacat >/dev/null 2>&1; then
  say "installing kcat"
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -qq kcat >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq kcat; }
  else
    sudo apt-get install -y -qq kcat >/dev/null 2>&1 || { sudo apt-get update -qq && sudo apt-get install -y -qq kcat; }
  fi
fi

say "preparing the Python environment (.venv)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r tests/python/requirements.txt

say "building"
cargo build --workspace --bins --tests --examples

# Each step is bounded: a test that hangs fails the command instead of holding CI.
say "cargo test (unit, actor-level and librdkafka client tests)"
timeout 1800 cargo test --workspace --no-fail-fast -- --test-threads=2

say "fuzz targets, briefly (frame, batch, recovery)"
cargo run -q --example fuzz -- --target all --execs 20000

say "crash loop, briefly (kill -9 while acks=all producers run)"
cargo build -q --example broker-torture
target/debug/examples/broker-torture --cycles 3 --broker target/debug/broker

say "pytest (confluent-kafka, kafka-python, kcat)"
BROKER_BIN="$PWD/target/debug/broker" timeout 900 .venv/bin/python -m pytest -q -p no:cacheprovider tests/python

say "all tests passed"
