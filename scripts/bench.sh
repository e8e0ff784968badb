#!/usr/bin/env bash
# The benchmark suite of issue 6 in one command: builds sluice-bench, sets up
# the Python peer's venv, starts Kafka if needed, runs every case, and writes
# the report to $SLUICE_BENCH_OUT/report.md (default /var/cache/sluice/bench;
# raw figures in report.json).
#
#   scripts/bench.sh              # the full suite (about 10 minutes on 2 cores)
#   scripts/bench.sh --micro      # also the criterion microbenchmarks
#
# Settings (SLUICE_BENCH_SIZES, _PARTITIONS, _BROKERS, ...) are listed in
# BENCHMARKS.md.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/sluice/target}"
export SLUICE_KAFKA_BOOTSTRAP="${SLUICE_KAFKA_BOOTSTRAP:-127.0.0.1:19092}"
out_dir="${SLUICE_BENCH_OUT:-/var/cache/sluice/bench}"
mkdir -p "$out_dir"

venv="${SLUICE_BENCH_VENV:-/var/cache/sluice/bench-venv}"
if [[ -z "${SLUICE_BENCH_PYTHON:-}" ]]; then
  if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import confluent_kafka' 2>/dev/null; then
    echo "bench: installing confluent-kafka into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet confluent-kafka
  fi
  export SLUICE_BENCH_PYTHON="$venv/bin/python"
fi

if [[ "${SLUICE_BENCH_BROKERS:-kafka,embedded}" == *kafka* ]] && ! scripts/kafka.sh status >/dev/null 2>&1; then
  scripts/kafka.sh start
fi

cargo build --release -p sluice-bench
{
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')," \
    "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r), $(rustc -V)," \
    "librdkafka from rdkafka-sys, python $("$SLUICE_BENCH_PYTHON" -c 'import confluent_kafka, platform; print(platform.python_version(), "confluent-kafka", confluent_kafka.version()[0])')"
  echo "started: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} | tee "$out_dir/machine.txt" >&2
cargo run --release --quiet -p sluice-bench -- suite --out "$out_dir/report.md"
echo "bench: report in $out_dir/report.md" >&2

if [[ "${1:-}" == "--micro" ]]; then
  cargo bench -p sluice --bench plugin_call -- --warm-up-time 1 --measurement-time 3 2>&1 | tee "$out_dir/criterion.txt"
fi
