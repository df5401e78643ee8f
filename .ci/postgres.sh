# Sourced by .ci/run: use the PostgreSQL on 127.0.0.1:5432 when one answers, else install
# Debian's and start a throwaway cluster on a free port (trust auth, torn down on exit).
start_postgres() {
  export PLOM_DATABASE_HOSTNAME=127.0.0.1 PLOM_DATABASE_USER=postgres PLOM_DATABASE_PASSWORD=postgres
  if command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; then
    export PLOM_DATABASE_PORT=5432 PGPORT=5432
    return
  fi
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
  fi
  local bin port data
  bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  data=$(mktemp -d)
  chown postgres "$data"
  su postgres -c "$bin/initdb -D $data -A trust -U postgres" >/dev/null
  su postgres -c "$bin/pg_ctl -D $data -o '-p $port -k /tmp -c listen_addresses=127.0.0.1' -l $data/log -w start" >/dev/null
  trap "su postgres -c '$bin/pg_ctl -D $data -m fast stop' >/dev/null 2>&1 || true" EXIT
  export PLOM_DATABASE_PORT=$port PGPORT=$port
}
