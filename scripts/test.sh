#!/usr/bin/env bash
# The one test command: unit tests, actor-level tests, client tests with librdkafka
# (rdkafka crate), and the Python (confluent-kafka, kafka-python), kcat, Go (Sarama,
# kafka-go) and kafkajs tests. Installs what it needs: kcat, Go and the Go clients' sources
# from Debian's packages, Python packages into .venv, kafkajs into tests/js/node_modules.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }

# apt-get install, as root or through sudo; updates the package lists only when needed.
apt_install() {
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get install -y -qq "$@" >/dev/null 2>&1 || { $sudo apt-get update -qq && $sudo apt-get install -y -qq "$@"; }
}

if ! command -v kcat >/dev/null 2>&1 && ! command -v kafkacat >/dev/null 2>&1; then
  say "installing kcat"
  apt_install kcat
fi

# The Go tests build against Debian's packaged client sources (GOPATH mode, no module proxy).
if ! command -v go >/dev/null 2>&1 || [ ! -d /usr/share/gocode/src/github.com/Shopify/sarama ] \
  || [ ! -d /usr/share/gocode/src/github.com/segmentio/kafka-go ]; then
  say "installing Go with Sarama and kafka-go"
  apt_install golang-go golang-github-shopify-sarama-dev golang-github-segmentio-kafka-go-dev
fi

if ! command -v npm >/dev/null 2>&1; then
  say "installing Node.js and npm"
  apt_install nodejs npm
fi
say "installing kafkajs (tests/js, pinned by package-lock.json)"
(cd tests/js && npm ci --no-audit --no-fund --loglevel=error)

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

say "fuzz targets, briefly (frame, batch, recovery, sasl)"
cargo run -q --example fuzz -- --target all --execs 20000

say "crash loop, briefly (kill -9 while acks=all producers run)"
cargo build -q --example broker-torture
target/debug/examples/broker-torture --cycles 3 --broker target/debug/broker

say "pytest (confluent-kafka, kafka-python, kcat, Sarama, kafka-go, kafkajs)"
BROKER_BIN="$PWD/target/debug/broker" timeout 900 .venv/bin/python -m pytest -q -p no:cacheprovider tests/python

say "all tests passed"
