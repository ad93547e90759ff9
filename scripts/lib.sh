# Shared by scripts/dev, scripts/test and scripts/bench: install what is missing, start what is stopped.
# Sourced, not run. Every step is idempotent and quiet on success.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
log() { printf '[crmsync] %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  if [ -z "${CRMSYNC_APT_UPDATED:-}" ]; then
    as_root apt-get update -qq >/dev/null
    export CRMSYNC_APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_rust_tools() {
  command -v cargo >/dev/null || { log "cargo is required (install Rust with rustup)"; exit 1; }
  # rustup brings no C compiler, and ring and aws-lc-sys (rustls's crypto) compile C. On x86_64 and aarch64
  # Linux aws-lc-sys uses its cc builder with pregenerated bindings, so neither cmake nor clang is needed, and
  # its pkg-config probe for a system AWS-LC is optional.
  command -v cc >/dev/null || { log "installing a C compiler (build-essential)"; apt_install build-essential; }
  cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
  cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
}

pg_ready() { psql "$1" -Atqc 'SELECT 1' >/dev/null 2>&1; }

# Exports DATABASE_URL pointing at a server's `postgres` database (tests create their own databases from it).
# Order: an already working DATABASE_URL; the local server on 5432; the packaged cluster, started; a throwaway
# trust-auth cluster in /var/tmp/crmsync-pg on port 55432.
ensure_postgres() {
  if [ -n "${DATABASE_URL:-}" ] && pg_ready "$DATABASE_URL"; then return; fi
  local default="postgres://postgres@127.0.0.1:5432/postgres"
  if ! command -v psql >/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    log "installing PostgreSQL (apt)"
    apt_install postgresql postgresql-client
  fi
  if pg_ready "$default"; then export DATABASE_URL="$default"; return; fi
  if command -v pg_ctlcluster >/dev/null; then
    for version in $(ls /etc/postgresql 2>/dev/null); do
      as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start >/dev/null 2>&1 || true
    done
    if pg_ready "$default"; then export DATABASE_URL="$default"; return; fi
  fi
  local bindir port=55432 data=/var/tmp/crmsync-pg
  bindir="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  local url="postgres://postgres@127.0.0.1:$port/postgres"
  if ! pg_ready "$url"; then
    log "starting a throwaway PostgreSQL cluster in $data on port $port"
    local run=()
    if [ "$(id -u)" = 0 ]; then run=(runuser -u postgres --); fi
    if [ ! -f "$data/PG_VERSION" ]; then
      mkdir -p "$data"
      [ "$(id -u)" = 0 ] && chown postgres "$data"
      "${run[@]}" "$bindir/initdb" -D "$data" -A trust -U postgres >/dev/null
    fi
    "${run[@]}" "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w \
      -o "-p $port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  fi
  export DATABASE_URL="$url"
}

# A Python venv in .venv holding the given PyPI packages (cfn-lint, aws-sam-cli, moto[server], ...).
ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" >/dev/null 2>&1 || { apt_install python3-venv && python3 -m venv "$VENV"; }
  fi
  local missing=()
  for package in "$@"; do
    local name="${package%%[*}"
    "$VENV/bin/python" -m pip show -q "$name" >/dev/null 2>&1 || missing+=("$package")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} into .venv"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${missing[@]}"
  fi
  export PATH="$VENV/bin:$PATH"
}

# Starts moto's SQS-compatible server (from .venv) on 127.0.0.1:${CRMSYNC_MOTO_PORT:-5055} unless one answers
# there, and exports AWS_ENDPOINT_URL plus dummy credentials. The server stops when the calling script exits.
ensure_moto() {
  command -v curl >/dev/null || apt_install curl
  ensure_venv 'moto[server]'
  local port="${CRMSYNC_MOTO_PORT:-5055}"
  export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
  export AWS_REGION="${AWS_REGION:-us-east-1}" AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
  export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
  if curl -s -o /dev/null "$AWS_ENDPOINT_URL/moto-api/" 2>/dev/null; then return; fi
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"${TMPDIR:-/tmp}/crmsync-moto.log" 2>&1 &
  CRMSYNC_MOTO_PID=$!
  trap 'kill "$CRMSYNC_MOTO_PID" 2>/dev/null || true' EXIT
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "$AWS_ENDPOINT_URL/moto-api/" 2>/dev/null && return
    sleep 0.2
  done
  log "moto_server did not start; see ${TMPDIR:-/tmp}/crmsync-moto.log"
  exit 1
}

# Starts PgBouncer (Debian's package) in transaction mode, like Supabase's transaction pooler, in front of the server
# ensure_postgres chose, on 127.0.0.1:${CRMSYNC_PGBOUNCER_PORT:-6543}, and exports CRMSYNC_TEST_PGBOUNCER_URL, where
# TestDb finds it (with CRMSYNC_TEST_THROUGH_POOLER=1 a whole suite runs through it). Any database name is forwarded
# to the server.
ensure_pgbouncer() {
  command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || { log "installing PgBouncer (apt)"; apt_install pgbouncer; }
  local bin port dir server_host server_port
  bin="$(command -v pgbouncer || echo /usr/sbin/pgbouncer)"
  port="${CRMSYNC_PGBOUNCER_PORT:-6543}"
  export CRMSYNC_TEST_PGBOUNCER_URL="postgres://postgres@127.0.0.1:$port/postgres"
  if pg_ready "$CRMSYNC_TEST_PGBOUNCER_URL"; then return; fi
  server_host="$(printf '%s' "$DATABASE_URL" | sed -E 's#^[a-z]+://([^@/]*@)?([^:/?]+).*#\2#')"
  server_port="$(printf '%s' "$DATABASE_URL" | sed -nE 's#^[a-z]+://([^@/]*@)?[^:/?]+:([0-9]+).*#\2#p')"
  server_host="${server_host:-127.0.0.1}"
  dir=/var/tmp/crmsync-pgbouncer
  mkdir -p "$dir"
  # A PgBouncer left from an earlier run that no longer answers (its server moved) is replaced.
  if [ -s "$dir/pgbouncer.pid" ]; then
    kill "$(cat "$dir/pgbouncer.pid")" 2>/dev/null || true
    sleep 0.5
  fi
  cat >"$dir/pgbouncer.ini" <<INI
[databases]
* = host=$server_host port=${server_port:-5432}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
max_client_conn = 2000
default_pool_size = 10
server_reset_query =
ignore_startup_parameters = extra_float_digits
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
  printf '"postgres" ""\n' >"$dir/userlist.txt"
  local run=()
  if [ "$(id -u)" = 0 ]; then chown -R postgres "$dir"; run=(runuser -u postgres --); fi
  log "starting PgBouncer (transaction mode) on 127.0.0.1:$port"
  "${run[@]}" "$bin" -d "$dir/pgbouncer.ini"
  for _ in $(seq 1 50); do
    pg_ready "$CRMSYNC_TEST_PGBOUNCER_URL" && return
    sleep 0.2
  done
  log "PgBouncer did not start; see $dir/pgbouncer.log"
  exit 1
}
