#!/usr/bin/env bash
# API contract checks: the served OpenAPI document is valid, a generated
# client works against the real server, and schemathesis finds nothing.
#
# For SQLite (fresh data directory) and then PostgreSQL (fresh database
# created through $ORGBOARD_TEST_POSTGRES_URL, with Redis when
# $ORGBOARD_TEST_REDIS_URL is set) it starts the real binary on a free
# loopback port and:
#   1. validates /api/v1/openapi.json with openapi-spec-validator (3.1);
#   2. generates a Python client with openapi-python-client, imports it and
#      runs .ci/api_client_flow.py (sign up → org → board → list → tasks →
#      list and filter tasks);
#   3. runs schemathesis with every check, all phases (examples, coverage,
#      fuzzing, stateful), positive and negative data, deterministic
#      generation and a bounded number of examples, authenticated as a
#      freshly signed-up user. Any finding fails the script.
#
# The Python tools are pinned and installed into a virtualenv under
# ~/.cache (or $ORGBOARD_CONTRACT_VENV); everything generated goes to a
# temporary directory that is removed at the end.
#
# Run locally: .ci/api-contract.sh   (PostgreSQL part skipped without
# ORGBOARD_TEST_POSTGRES_URL, except under CI where that is an error).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
started=$(date +%s)

log() { printf '\n==> %s\n' "$*"; }
die() { printf '\nAPI CONTRACT ERROR: %s\n' "$*" >&2; exit 1; }

SCHEMATHESIS_VERSION=4.32.5
SPEC_VALIDATOR_VERSION=0.9.0
PYTHON_CLIENT_VERSION=0.29.1
# Test cases per operation and phase: 75 keeps the whole script near three
# minutes for both backends on 2 cores (100: about 4.5). Generation is
# deterministic, so a run repeats the same requests (the ids the server
# makes differ).
MAX_EXAMPLES=${ORGBOARD_CONTRACT_EXAMPLES:-75}
# A ceiling only, should the server hang: examples bound the run. (Not
# `--max-time`: with it schemathesis repeats fuzzing until the time is spent.)
TIMEOUT=${ORGBOARD_CONTRACT_TIMEOUT:-300}

# --- tools ------------------------------------------------------------------
venv=${ORGBOARD_CONTRACT_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/orgboard-api-contract/venv}
pins="schemathesis==$SCHEMATHESIS_VERSION openapi-spec-validator==$SPEC_VALIDATOR_VERSION openapi-python-client==$PYTHON_CLIENT_VERSION"
if [ "$(cat "$venv/.pins" 2>/dev/null)" != "$pins" ]; then
  log "installing $pins into $venv"
  command -v python3 >/dev/null || die "python3 is required"
  python3 -m venv "$venv" || die "cannot create a virtualenv at $venv (Debian: apt-get install python3-venv)"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install -q --disable-pip-version-check $pins || die "pip install $pins failed"
  echo "$pins" >"$venv/.pins"
fi
export PATH="$venv/bin:$PATH" # the client generator formats its output with ruff from there
for tool in schemathesis openapi-spec-validator openapi-python-client; do
  [ -x "$venv/bin/$tool" ] || die "$tool is missing from $venv"
done

log "cargo build --bin orgboard"
cargo build -q --bin orgboard
bin=$root/target/debug/orgboard

work=$(mktemp -d)
server_pid=
pg_admin=
pg_db=
redis_prefix=contract-$$
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [ -n "$pg_db" ]; then
    psql "$pg_admin" -qAtc "DROP DATABASE IF EXISTS \"$pg_db\" WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  # The board-view cache and rate-limit keys of this run, under its prefix.
  if [ -n "${ORGBOARD_TEST_REDIS_URL:-}" ] && command -v redis-cli >/dev/null; then
    redis-cli -u "$ORGBOARD_TEST_REDIS_URL" --scan --pattern "$redis_prefix-*" |
      xargs -r redis-cli -u "$ORGBOARD_TEST_REDIS_URL" del >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_server NAME [DATABASE_URL [REDIS_URL]]: the real binary on a free
# port; sets $base.
start_server() {
  local name=$1 db_url=${2:-} redis_url=${3:-} port
  port=$(free_port)
  base=http://127.0.0.1:$port
  mkdir -p "$work/$name"
  local settings=(
    ORGBOARD_ADDR="127.0.0.1:$port"
    ORGBOARD_DATA_DIR="$work/$name/data"
    ORGBOARD_LOG=warn
    # Generous auth rate limits: schemathesis signs up and logs in thousands
    # of times from one address, and a 429 there would hide the answers under
    # test (the limits themselves are covered by tests/api/http.rs).
    ORGBOARD_RATE_LIMIT_PER_IP=1000000
    ORGBOARD_RATE_LIMIT_PER_ACCOUNT=1000000
    ORGBOARD_API_RATE_LIMIT_PER_USER=1000000
    ORGBOARD_API_RATE_LIMIT_PER_ORG=1000000
    # Cheap argon2: the suite hashes a password on every sign-up it generates.
    ORGBOARD_ARGON2_MEMORY_KIB=1024
    ORGBOARD_ARGON2_ITERATIONS=1
  )
  [ -z "$db_url" ] || settings+=(ORGBOARD_DATABASE_URL="$db_url")
  [ -z "$redis_url" ] || settings+=(ORGBOARD_REDIS_URL="$redis_url" ORGBOARD_REDIS_PREFIX="$redis_prefix-$name")
  env "${settings[@]}" "$bin" serve >"$work/$name/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 60); do
    curl -fsS "$base/readyz" >/dev/null 2>&1 && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.5
  done
  cat "$work/$name/server.log" >&2
  die "the $name server did not become ready at $base"
}

stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
}

check_backend() {
  local name=$1 doc=$work/$1/openapi.json
  log "[$name] openapi-spec-validator on the served document"
  curl -fsS "$base/api/v1/openapi.json" -o "$doc" || die "cannot fetch the document"
  openapi-spec-validator --schema 3.1.0 "$doc" || die "[$name] the OpenAPI document is invalid"

  log "[$name] openapi-python-client: generate, import, run the client flow"
  # `literal_enums`: `time_zone` lists every IANA name, and names such as
  # Etc/GMT+1 and Etc/GMT-1 would make the same Python enum member.
  printf 'literal_enums: true\nproject_name_override: orgboard-client\npackage_name_override: orgboard_client\n' \
    >"$work/$name/client.yml"
  openapi-python-client generate --path "$doc" --config "$work/$name/client.yml" \
    --output-path "$work/$name/client" --meta none >"$work/$name/client.log" 2>&1 \
    || { cat "$work/$name/client.log" >&2; die "[$name] openapi-python-client could not generate a client"; }
  if grep -qi "warning" "$work/$name/client.log"; then
    cat "$work/$name/client.log" >&2
    die "[$name] openapi-python-client warned: some of the client is missing"
  fi
  mkdir -p "$work/$name/pkg" && mv "$work/$name/client" "$work/$name/pkg/orgboard_client"
  PYTHONPATH="$work/$name/pkg" python "$root/.ci/api_client_flow.py" "$base" \
    || die "[$name] the generated client flow failed"

  log "[$name] schemathesis (all checks, all phases, deterministic, $MAX_EXAMPLES examples)"
  local token
  token=$(curl -fsS -X POST "$base/api/v1/auth/signup" -H 'content-type: application/json' \
    -d "{\"email\":\"schemathesis-$name@example.com\",\"password\":\"schemathesis password\",\"name\":\"Schemathesis\"}" |
    python -c 'import json, sys; print(json.load(sys.stdin)["access_token"])') || die "[$name] sign-up failed"
  # `events` is a never-ending stream (SSE or WebSocket), which schemathesis
  # cannot read to its end; tests/api/events.rs covers it over real sockets.
  (cd "$work/$name" && SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="$root/.ci" \
    timeout "$TIMEOUT" schemathesis --config-file "$root/.ci/schemathesis.toml" run "$base/api/v1/openapi.json" \
      --header "Authorization: Bearer $token" \
      --checks all --mode all --phases examples,coverage,fuzzing,stateful \
      --max-examples "$MAX_EXAMPLES" \
      --generation-deterministic --seed 20261205 \
      --exclude-operation-id events \
      --request-timeout 20 --workers 1 --no-color --output-truncate true) \
    || { tail -n 60 "$work/$name/server.log" >&2; die "[$name] schemathesis found problems (above)"; }
  if grep -E "panicked|internal error" "$work/$name/server.log" >&2; then
    die "[$name] the server logged an internal error during the run"
  fi
}

# --- SQLite -----------------------------------------------------------------
start_server sqlite
check_backend sqlite
stop_server

# --- PostgreSQL (+ Redis) ---------------------------------------------------
pg_url=${ORGBOARD_TEST_POSTGRES_URL:-}
if [ -z "$pg_url" ]; then
  [ -z "${CI:-}" ] || die "ORGBOARD_TEST_POSTGRES_URL is not set (required under CI)"
  log "PostgreSQL skipped: ORGBOARD_TEST_POSTGRES_URL is not set"
else
  command -v psql >/dev/null || die "psql is required for the PostgreSQL run"
  pg_admin=$pg_url
  pg_db=orgboard_contract_$(date +%s)_$$
  psql "$pg_admin" -qAtc "CREATE DATABASE \"$pg_db\"" >/dev/null || die "cannot create database $pg_db"
  db_url=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$pg_url" "$pg_db")
  start_server postgres "$db_url" "${ORGBOARD_TEST_REDIS_URL:-}"
  check_backend postgres
  stop_server
fi

log "API contract checks passed in $(($(date +%s) - started)) s"
