#!/usr/bin/env bash
# One command: build orgboard (release-like profile), start it on a fresh
# SQLite data directory, and measure the web application in headless
# Chromium (Debian's chromium + chromium-driver): bytes of the first page,
# login page to interactive, opening boards of 1 000 and 10 000 cards, and
# how fast a drag in one browser shows in another.
#   bash bench/web/run.sh [--profile release|profiling] [-- extra measure.py args]
set -euo pipefail
cd "$(dirname "$0")/../.."
profile=profiling
if [ "${1:-}" = "--profile" ]; then profile=$2; shift 2; fi
[ "${1:-}" = "--" ] && shift
command -v chromedriver >/dev/null || { echo "needs chromedriver (apt-get install chromium chromium-driver)" >&2; exit 1; }
cargo build -q --profile "$profile" --bin orgboard
bin=target/$profile/orgboard
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
env -u ORGBOARD_DATABASE_URL -u ORGBOARD_REDIS_URL ORGBOARD_DATA_DIR="$data" \
  ORGBOARD_ADDR=127.0.0.1:$port ORGBOARD_LOG=warn \
  ORGBOARD_RATE_LIMIT_PER_IP=100000 ORGBOARD_RATE_LIMIT_PER_ACCOUNT=100000 "$bin" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
python3 bench/web/measure.py --url "http://127.0.0.1:$port" "$@"
