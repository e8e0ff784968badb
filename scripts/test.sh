#!/usr/bin/env bash
# The test command (README: "Run the tests"). Installs what the tests need,
# starts the Kafka broker, and runs formatting, lints and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# Builds are cached outside the clone so that repeated runs stay fast.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/sluice/target}"
mkdir -p "$CARGO_TARGET_DIR" 2>/dev/null || export CARGO_TARGET_DIR="$HOME/.cache/sluice/target"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# The shared datasets sit beside the repository.
if [ -z "${SLUICE_DATA:-}" ] && [ -d ../shared/data ]; then
  export SLUICE_DATA="$(cd ../shared/data && pwd)"
fi

step() { printf '\n==> %s\n' "$*"; }

step "toolchain (rust-toolchain.toml pins the version and the wasm32-wasip2 target)"
command -v cargo >/dev/null || { echo "cargo not found: install rustup from https://rustup.rs" >&2; exit 1; }
rustup show active-toolchain
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

step "headless Chromium (the status page test renders /)"
if ! command -v chromium >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then
    sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium not found and apt-get unavailable: install Chromium (the status page test needs it in CI)" >&2
  fi
fi
command -v chromium >/dev/null && chromium --version 2>/dev/null || true

step "formatting"
cargo fmt --all -- --check
(cd plugins && cargo fmt --all -- --check)

step "lints"
cargo clippy --workspace --all-targets --release -- -D warnings
(cd plugins && CARGO_TARGET_DIR="$CARGO_TARGET_DIR/plugins-native" cargo clippy --all-targets -- -D warnings)

step "plugin unit tests (native, through the SDK harness)"
(cd plugins && CARGO_TARGET_DIR="$CARGO_TARGET_DIR/plugins-native" cargo test)

step "Kafka broker (Apache Kafka 4.x from Maven Central, cached)"
if [ -z "${SLUICE_KAFKA_BOOTSTRAP:-}" ]; then
  scripts/kafka.sh start >/dev/null
  export SLUICE_KAFKA_BOOTSTRAP="$(scripts/kafka.sh bootstrap)"
fi
echo "broker: $SLUICE_KAFKA_BOOTSTRAP"


step "host, SDK and integration tests"
cargo test --workspace --release
