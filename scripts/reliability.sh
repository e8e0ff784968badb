#!/usr/bin/env bash
# The long reliability suite (README: "Benchmarks and reliability"): the same
# tests CI runs, with more trials, more events and more fuzz cases. Prints one
# table row per scenario and writes the raw figures, one JSON object a line,
# to $SLUICE_RELIABILITY_REPORT (default target/reliability.jsonl under the
# cargo target dir). RELIABILITY.md is written from its output.
#
# Needs the Kafka broker of scripts/kafka.sh (started here if none is given)
# and, for the full dataset, $SLUICE_DATA/olist-ecommerce.
#
# Knobs (defaults in brackets):
#   SLUICE_CRASH_TRIALS      kill -9 trials of sluice run               [20]
#   SLUICE_BROKER_RESTARTS   kill -9 + restart of a broker of its own   [3]
#   SLUICE_SHUTDOWN_TRIALS   SIGTERM trials under load                  [5]
#   SLUICE_RELIABILITY_EVENTS events of the full Olist dataset to feed  [40000]
#   SLUICE_FUZZ_CASES        proptest cases per fuzz target             [100000]
#
# Arguments, if any, replace the list of test filters (e.g. `fuzz::`).
#   SLUICE_CRASH_SEED        fixes the kill points of the crash trials  [random]
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/sluice/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export SLUICE_CRASH_TRIALS="${SLUICE_CRASH_TRIALS:-20}"
export SLUICE_BROKER_RESTARTS="${SLUICE_BROKER_RESTARTS:-3}"
export SLUICE_SHUTDOWN_TRIALS="${SLUICE_SHUTDOWN_TRIALS:-5}"
export SLUICE_RELIABILITY_EVENTS="${SLUICE_RELIABILITY_EVENTS:-40000}"
export SLUICE_FUZZ_CASES="${SLUICE_FUZZ_CASES:-100000}"

if [ -z "${SLUICE_KAFKA_BOOTSTRAP:-}" ]; then
  scripts/kafka.sh start >/dev/null
  export SLUICE_KAFKA_BOOTSTRAP="$(scripts/kafka.sh bootstrap)"
fi
if [ -z "${SLUICE_DATA:-}" ] && [ -d ../shared/data ]; then
  export SLUICE_DATA="$(cd ../shared/data && pwd)"
fi
[ -e "${SLUICE_DATA:-/nonexistent}/olist-ecommerce/olist_orders_dataset.csv" ] ||
  echo "note: no \$SLUICE_DATA/olist-ecommerce; the scenarios feed the demo slice instead" >&2

report="${SLUICE_RELIABILITY_REPORT:-$CARGO_TARGET_DIR/reliability.jsonl}"
mkdir -p "$(dirname "$report")"
: >"$report"
export SLUICE_RELIABILITY_REPORT="$report"
log="${report%.jsonl}.log"

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "broker: $SLUICE_KAFKA_BOOTSTRAP; crash trials $SLUICE_CRASH_TRIALS, broker restarts $SLUICE_BROKER_RESTARTS," \
  "shutdown trials $SLUICE_SHUTDOWN_TRIALS, events $SLUICE_RELIABILITY_EVENTS, fuzz cases $SLUICE_FUZZ_CASES"

cargo test --release -p sluice --test it --no-run 2>&1 | tail -n 1
# One at a time: the scenarios kill processes and time shutdowns, and must
# not compete with each other for two cores.
filters=(crash:: failover:: shutdown:: bad_records:: fuzz:: config::bad_configs config::every_bad_config)
[ $# -gt 0 ] && filters=("$@")
started=$(date +%s)
status=0
for filter in "${filters[@]}"; do
  t0=$(date +%s)
  if cargo test --release -p sluice --test it -- --test-threads=1 "$filter" >>"$log" 2>&1; then
    result=ok
  else
    result=FAILED
    status=1
  fi
  echo "$filter: $result in $(($(date +%s) - t0)) s"
done
echo "total: $(($(date +%s) - started)) s; test output in $log"

echo
echo "| scenario | trials | events | lost | duplicated | dead-lettered | out-of-order keys | host crashes |"
echo "|---|---|---|---|---|---|---|---|"
jq -r 'select(.findings == null) | "| \(.scenario) | \(.trials) | \(.events) | \(.lost) | \(.duplicated) | \(.dead_lettered) | \(.out_of_order_keys // "-") | \(.host_crashes // "-") |"' "$report"
echo
echo "| fuzz target | cases | findings | time (ms) |"
echo "|---|---|---|---|"
jq -r 'select(.findings != null) | "| \(.scenario | ltrimstr("fuzz-")) | \(.trials) | \(.findings) | \(.took_ms) |"' "$report"
echo
echo "raw figures: $report"
exit $status
