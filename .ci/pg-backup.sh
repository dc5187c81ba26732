#!/usr/bin/env bash
# The README's PostgreSQL backup lines, run once: data written through a
# real server survives pg_dump → a new database → pg_restore, and a server
# runs on the restored database. Needs ORGBOARD_TEST_POSTGRES_URL (a user
# with CREATEDB), pg_dump/pg_restore, python3, and target/debug/orgboard.
set -euo pipefail
cd "$(dirname "$0")/.."
pg_url=${ORGBOARD_TEST_POSTGRES_URL:?set ORGBOARD_TEST_POSTGRES_URL}
bin=target/debug/orgboard
[ -x "$bin" ] || cargo build -q -p orgboard
base=${pg_url%/*}
src=orgboard_backup_$$
dst=orgboard_restored_$$
work=$(mktemp -d)
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  psql "$pg_url" -qc "DROP DATABASE IF EXISTS $src WITH (FORCE)" >/dev/null 2>&1 || true
  psql "$pg_url" -qc "DROP DATABASE IF EXISTS $dst WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

start() { # $1: database
  ORGBOARD_DATABASE_URL="$base/$1" ORGBOARD_ADDR=127.0.0.1:$port ORGBOARD_DATA_DIR="$work/data" \
    ORGBOARD_SECRET=pg-backup-check-secret-0123456789abcdef ORGBOARD_LOG=warn \
    "$bin" serve >>"$work/server.log" 2>&1 &
  server=$!
  for _ in $(seq 1 100); do
    python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/readyz', timeout=1)" 2>/dev/null && return
    sleep 0.1
  done
  cat "$work/server.log"; echo "server on $1 did not get ready" >&2; exit 1
}
stop() { kill "$server"; wait "$server" || true; server=; }

api() { # method path token body → JSON on stdout
  python3 - "$port" "$@" <<'PY'
import json, sys, urllib.request
port, method, path, token, body = sys.argv[1:6]
req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
    data=body.encode() if body else None, headers={"Content-Type": "application/json"})
if token:
    req.add_header("Authorization", f"Bearer {token}")
with urllib.request.urlopen(req, timeout=10) as r:
    print(r.read().decode())
PY
}
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

psql "$pg_url" -qc "CREATE DATABASE $src" >/dev/null
start "$src"
token=$(api POST /api/v1/auth/signup "" '{"email":"backup@example.com","password":"correct horse battery","name":"B"}' | field '["access_token"]')
org=$(api GET /api/v1/orgs "$token" "" | field '["items"][0]["id"]')
board=$(api POST "/api/v1/orgs/$org/boards" "$token" '{"name":"Kept"}' | field '["id"]')
list=$(api POST "/api/v1/orgs/$org/boards/$board/lists" "$token" '{"name":"Todo"}' | field '["id"]')
api POST "/api/v1/orgs/$org/lists/$list/tasks" "$token" '{"title":"survives pg_dump"}' >/dev/null
stop

# The README's lines.
pg_dump --format=custom --file="$work/orgboard.dump" "$base/$src"
psql "$pg_url" -qc "CREATE DATABASE $dst" >/dev/null
pg_restore --exit-on-error --dbname="$base/$dst" "$work/orgboard.dump"

start "$dst"
token=$(api POST /api/v1/auth/login "" '{"email":"backup@example.com","password":"correct horse battery"}' | field '["access_token"]')
titles=$(api GET "/api/v1/orgs/$org/tasks" "$token" "" | field '[ "items" ]' )
case "$titles" in
  *"survives pg_dump"*) echo "pg_dump/pg_restore: the restored database serves the data written before the dump" ;;
  *) echo "the restored database lacks the task: $titles" >&2; exit 1 ;;
esac
stop
