#!/usr/bin/env bash
# One command: build orgboard (release-like profile), start it on a fresh
# SQLite data directory with its default settings, flood it with 300
# concurrent logins from ten loopback addresses, print the report, stop it.
#   bash bench/abuse/run.sh [--profile release|profiling] [-- extra login_flood.py args]
set -euo pipefail
cd "$(dirname "$0")/../.."
profile=profiling
if [ "${1:-}" = "--profile" ]; then profile=$2; shift 2; fi
[ "${1:-}" = "--" ] && shift
cargo build -q --profile "$profile" --bin orgboard
bin=target/$profile/orgboard
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
env -u ORGBOARD_DATABASE_URL -u ORGBOARD_REDIS_URL ORGBOARD_DATA_DIR="$data" \
  ORGBOARD_ADDR=127.0.0.1:$port ORGBOARD_LOG=warn "$bin" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
sleep 1  # the dummy hash is computed off the start-up path
python3 bench/abuse/login_flood.py --url "http://127.0.0.1:$port" --pid $pid "$@"
