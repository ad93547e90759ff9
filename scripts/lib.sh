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
