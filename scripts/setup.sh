#!/usr/bin/env bash
# Installs and starts what dualwrite needs on a Debian/Ubuntu machine, and
# does nothing (quietly) when everything is already in place.
#
#   scripts/setup.sh          PostgreSQL (wal_level=logical) and Redis
#   scripts/setup.sh --tests  also what the test suite needs: OpenSSL
#                             headers, chromium (renders the HTML report
#                             headless in tests/html.rs), tmux (runs the live
#                             view on a terminal in tests/live.rs), the tansu
#                             broker (built once with cargo, ~20 minutes on 2
#                             cores, then reused), and confluent-kafka from
#                             PyPI in target/py (the independent console
#                             consumer of tests/recount.py)
set -euo pipefail

tests=0
[[ "${1:-}" == "--tests" ]] && tests=1

say() { echo "setup: $*" >&2; }
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

# ── packages ─────────────────────────────────────────────────────────────
missing=()
command -v pg_ctlcluster >/dev/null 2>&1 || missing+=(postgresql postgresql-contrib)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
# pgbench, for the fault proxy's throughput benchmark (`/usr/bin/pgbench` is
# only a wrapper; the program comes with the server packages).
pgbench --version >/dev/null 2>&1 || missing+=(postgresql-contrib)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
dpkg -s zlib1g-dev >/dev/null 2>&1 || missing+=(zlib1g-dev)
if [[ $tests -eq 1 ]]; then
  dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v tmux >/dev/null 2>&1 || missing+=(tmux)
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
fi
if [[ ${#missing[@]} -gt 0 ]]; then
  say "installing ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null 2> >(grep -v '^debconf' >&2)
fi

# ── PostgreSQL: running, reachable over TCP, wal_level=logical ───────────
pg_version=$(ls /etc/postgresql | sort -n | tail -1)
pg() { psql -h 127.0.0.1 -U postgres -d postgres -tAqX "$@"; }
pg_start() { as_root pg_ctlcluster --skip-systemctl-redirect "$pg_version" main "$1" >/dev/null; }
if ! as_root pg_lsclusters -h | awk -v v="$pg_version" '$1==v && $2=="main"' | grep -q online; then
  say "starting PostgreSQL $pg_version"
  pg_start start
fi
if ! pg -c 'SELECT 1' >/dev/null 2>&1; then
  # A fresh Debian install only trusts local peers; dualwrite connects over
  # TCP as postgres with no password (like compose.yaml), so trust loopback.
  hba=/etc/postgresql/$pg_version/main/pg_hba.conf
  say "allowing passwordless loopback connections in $hba"
  as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nhost replication all 127.0.0.1/32 trust' "$hba"
  pg_start reload
fi
if [[ $(pg -c 'SHOW wal_level') != logical || $(pg -c 'SHOW max_connections') -lt 500 ||
      $(pg -c 'SHOW max_prepared_transactions') -lt 64 ]]; then
  # Logical decoding (the CDC strategies) needs wal_level=logical, which only
  # takes effect after a restart. Tests run many runs in parallel, each with
  # about ten connections, and the CDC ones with a slot and a WAL sender.
  # two-phase needs PREPARE TRANSACTION, which PostgreSQL refuses while
  # max_prepared_transactions is 0 (its default); also a restart.
  say "setting wal_level=logical, max_prepared_transactions (and room for parallel runs) and restarting PostgreSQL"
  pg -c "ALTER SYSTEM SET wal_level = logical" \
     -c "ALTER SYSTEM SET max_prepared_transactions = 64" \
     -c "ALTER SYSTEM SET max_connections = 500" \
     -c "ALTER SYSTEM SET max_replication_slots = 64" \
     -c "ALTER SYSTEM SET max_wal_senders = 64" >/dev/null
  pg_start restart
  for _ in $(seq 50); do pg -c 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done
  [[ $(pg -c 'SHOW wal_level') == logical ]] || { say "PostgreSQL did not come back with wal_level=logical"; exit 1; }
fi

# ── Redis ────────────────────────────────────────────────────────────────
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  say "starting Redis"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/dualwrite.log
  for _ in $(seq 50); do redis-cli ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

# ── tansu, a real Kafka-API broker for the broker test suite ─────────────
if [[ $tests -eq 1 ]]; then
  tansu_bin=$(command -v tansu || echo "$HOME/.cargo/bin/tansu")
  if [[ ! -x $tansu_bin ]] || ! "$tansu_bin" --version 2>/dev/null | grep -q '0\.6\.0'; then
    say "building the tansu broker once (cargo install, about 20 minutes on 2 cores)"
    cargo install tansu --version 0.6.0 --locked --features dynostore --quiet
  fi
fi

# ── confluent-kafka, the tests' independent console consumer ─────────────
# A Kafka client that shares no code with dualwrite (tests/recount.py), in a
# virtualenv of the repository's own: Debian's Python refuses system-wide
# pip installs.
if [[ $tests -eq 1 ]]; then
  venv="$(cd "$(dirname "$0")/.." && pwd)/target/py"
  py=$venv/bin/python3
  if ! "$py" -c 'import confluent_kafka' >/dev/null 2>&1; then
    say "installing confluent-kafka (PyPI) into target/py"
    python3 -m venv "$venv"
    "$py" -m pip install --quiet --disable-pip-version-check 'confluent-kafka==2.16.1'
  fi
fi
exit 0
