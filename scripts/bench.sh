#!/usr/bin/env bash
# The benchmark suite of issue 6 in one command: builds sluice-bench, sets up
# the Python peer's venv, starts Kafka if needed, runs every end-to-end case
# (B0, H1, H2, the peer; latency; reload), then the criterion
# microbenchmarks, and writes everything under $SLUICE_BENCH_OUT
# (default /var/cache/sluice/bench): report.md, report.json, criterion.txt.
#
#   scripts/bench.sh            # the full suite (about 13 minutes on 2 cores)
#   scripts/bench.sh --quick    # smaller counts, loads of 25 and 50%, short criterion runs
#   scripts/bench.sh --no-micro # the end-to-end suite only
#
# Settings (SLUICE_BENCH_SIZES, _PARTITIONS, _BROKERS, ...) are listed in
# BENCHMARKS.md; an explicit setting wins over --quick.
set -euo pipefail

quick=0 micro=1
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    --no-micro) micro=0 ;;
    *) echo "bench: unknown argument $arg (--quick, --no-micro)" >&2; exit 2 ;;
  esac
done

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/sluice/target}"
export SLUICE_KAFKA_BOOTSTRAP="${SLUICE_KAFKA_BOOTSTRAP:-127.0.0.1:19092}"
out_dir="${SLUICE_BENCH_OUT:-/var/cache/sluice/bench}"
mkdir -p "$out_dir"

if ((quick)); then
  export SLUICE_BENCH_SIZES="${SLUICE_BENCH_SIZES:-100:50000,1024:25000,4096:10000}"
  export SLUICE_BENCH_OLIST_EVENTS="${SLUICE_BENCH_OLIST_EVENTS:-20000}"
  export SLUICE_BENCH_LATENCY_SECS="${SLUICE_BENCH_LATENCY_SECS:-2}"
  export SLUICE_BENCH_LATENCY_WARMUP="${SLUICE_BENCH_LATENCY_WARMUP:-1}"
  export SLUICE_BENCH_RELOADS="${SLUICE_BENCH_RELOADS:-3}"
  export SLUICE_BENCH_LATENCY_LOADS="${SLUICE_BENCH_LATENCY_LOADS:-25,50}"
  criterion_args=(--warm-up-time 1 --measurement-time 2)
else
  criterion_args=(--warm-up-time 2 --measurement-time 5)
fi

# The peer's confluent-kafka lives in a venv outside the repository.
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
    "python $("$SLUICE_BENCH_PYTHON" -c 'import confluent_kafka, platform; print(platform.python_version(), "confluent-kafka", confluent_kafka.version()[0], "librdkafka", confluent_kafka.libversion()[0])')"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "started: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} | tee "$out_dir/machine.txt" >&2
"$CARGO_TARGET_DIR/release/sluice-bench" suite --out "$out_dir/report.md"
echo "bench: report in $out_dir/report.md" >&2

if ((micro)); then
  cargo bench -p sluice --bench plugin_call -- "${criterion_args[@]}" 2>&1 | tee "$out_dir/criterion.txt"
fi
echo "finished: $(date -u +%Y-%m-%dT%H:%M:%SZ)" | tee -a "$out_dir/machine.txt" >&2
