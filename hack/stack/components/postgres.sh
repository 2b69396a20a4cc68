#!/usr/bin/env bash
# PostgreSQL from Debian, on 127.0.0.1 and the bridge (pods use password auth there). It
# refuses to run as root: as root, it runs as the `postgres` user (setpriv execs, so the
# recorded PID is the server's own).

PG_BIN="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}"
PG_AS=()
[ "$(id -u)" = 0 ] && PG_AS=(setpriv --reuid=postgres --regid=postgres --init-groups)

postgres_up() {
  step "PostgreSQL 127.0.0.1:$POSTGRES_PORT and $LP_BRIDGE_IP:$POSTGRES_PORT"
  already postgres && return
  [ -x "$PG_BIN/postgres" ] || die "PostgreSQL is not installed (no $PG_BIN/postgres): run make tools"
  port_free "$POSTGRES_PORT"
  local dir="$LP_RUN_DIR/postgres"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    rm -rf "$dir" && mkdir -p "$dir/data" "$dir/socket"
    cp "$PKI/postgres.password" "$dir/pwfile"
    [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$dir"
    chmod 700 "$dir/data"
    run_logged "$LP_RUN_DIR/logs/postgres-initdb.log" "${PG_AS[@]}" "$PG_BIN/initdb" -D "$dir/data" -U postgres \
      --pwfile="$dir/pwfile" --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8
    rm -f "$dir/pwfile"
    # Pods connect from the bridge network: password auth there too.
    echo "host all all $LP_BRIDGE_IP/$LP_BRIDGE_PREFIX scram-sha-256" >>"$dir/data/pg_hba.conf"
  fi
  launch postgres "${PG_AS[@]}" "$PG_BIN/postgres" -D "$dir/data" -p "$POSTGRES_PORT" \
    -c listen_addresses="127.0.0.1,$LP_BRIDGE_IP" -c unix_socket_directories="$dir/socket" \
    -c max_connections=200 -c shared_buffers=256MB -c fsync=on -c logging_collector=off
  postgres_wait
  done_step
}
postgres_wait() { wait_for postgres 60 postgres_status; }
postgres_status() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$POSTGRES_PORT"; }
# PostgreSQL's fast shutdown is SIGINT.
postgres_down() { stop_process postgres INT; }
postgres_version() { "$PG_BIN/postgres" --version 2>/dev/null | awk '{print $3}'; }
postgres_address() { echo "127.0.0.1:$POSTGRES_PORT, $LP_BRIDGE_IP:$POSTGRES_PORT"; }
