#!/usr/bin/env bash
# Start a local PostgreSQL on 127.0.0.1 (trust auth) for the campaign-log tests.
#
#   eval "$(bash .ci/postgres.sh)"     # or: source .ci/postgres.sh
#
# Progress goes to stderr; stdout is only the line
#   export ALOOP_TEST_POSTGRES_URL=postgresql+psycopg2://postgres@127.0.0.1:PORT/postgres
# Idempotent (a server already answering is reused) and tolerant: when apt or the
# server is unavailable it says why on stderr, prints nothing on stdout and succeeds,
# so the PostgreSQL test cases skip instead of failing the run.
# Environment: ALOOP_PG_PORT (default 5432).

_aloop_pg_say() { echo "postgres.sh: $*" >&2; }

_aloop_pg_ready() {  # $1 = port; true when postgres@127.0.0.1 accepts a query
    command -v psql >/dev/null 2>&1 || return 1
    PGCONNECT_TIMEOUT=3 psql -h 127.0.0.1 -p "$1" -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1
}

_aloop_pg_as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"; else return 1; fi
}

_aloop_pg_install() {
    ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && return 0
    command -v apt-get >/dev/null 2>&1 || { _aloop_pg_say "apt-get not found"; return 1; }
    _aloop_pg_say "installing postgresql from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    _aloop_pg_as_root apt-get install -y -q postgresql >&2 \
        || { _aloop_pg_as_root apt-get update -q >&2 && _aloop_pg_as_root apt-get install -y -q postgresql >&2; } \
        || { _aloop_pg_say "apt-get install postgresql failed"; return 1; }
}

_aloop_pg_start_debian() {  # $1 = port; a cluster "aloop_PORT" made with the Debian cluster tools
    local port=$1 ver name conf
    ver=$(ls /usr/lib/postgresql | sort -V | tail -1)
    name="aloop_$port"
    if ! pg_lsclusters -h 2>/dev/null | awk '{print $1, $2}' | grep -qx "$ver $name"; then
        _aloop_pg_as_root pg_createcluster "$ver" "$name" -p "$port" >&2 || return 1
    fi
    conf=/etc/postgresql/$ver/$name
    if ! grep -q '# aloop-ci' "$conf/pg_hba.conf"; then
        # First matching line wins: trust loopback TCP for the tests, keep the rest.
        _aloop_pg_as_root sed -i '1i host all all 127.0.0.1/32 trust # aloop-ci' "$conf/pg_hba.conf" || return 1
        _aloop_pg_as_root sed -i "s/^#\?listen_addresses = .*/listen_addresses = '127.0.0.1'/" "$conf/postgresql.conf"
    fi
    if pg_lsclusters -h | awk '{print $1, $2, $4}' | grep -qx "$ver $name online"; then
        _aloop_pg_as_root pg_ctlcluster "$ver" "$name" restart >&2
    else
        _aloop_pg_as_root pg_ctlcluster "$ver" "$name" start >&2
    fi
}

_aloop_pg_start_plain() {  # $1 = port; initdb + pg_ctl as the postgres user
    local port=$1 bin data=/tmp/aloop-ci-postgres
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    id postgres >/dev/null 2>&1 || _aloop_pg_as_root useradd --system postgres || return 1
    if [ ! -s "$data/PG_VERSION" ]; then
        _aloop_pg_as_root install -d -o postgres -m 700 "$data" || return 1
        _aloop_pg_as_root runuser -u postgres -- "$bin/initdb" -D "$data" -U postgres --auth=trust >&2 || return 1
    fi
    _aloop_pg_as_root runuser -u postgres -- "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w \
        -o "-p $port -c listen_addresses=127.0.0.1 -k /tmp" start >&2
}

_aloop_pg_main() {
    local port=${ALOOP_PG_PORT:-5432} url i
    url="postgresql+psycopg2://postgres@127.0.0.1:$port/postgres"
    if _aloop_pg_ready "$port"; then
        _aloop_pg_say "reusing the server on 127.0.0.1:$port"
        echo "export ALOOP_TEST_POSTGRES_URL=$url"
        return 0
    fi
    _aloop_pg_install || { _aloop_pg_say "PostgreSQL unavailable; its test cases will skip"; return 0; }
    if command -v pg_ctlcluster >/dev/null 2>&1; then
        _aloop_pg_start_debian "$port" || _aloop_pg_say "pg_ctlcluster could not start the server"
    else
        _aloop_pg_start_plain "$port" || _aloop_pg_say "pg_ctl could not start the server"
    fi
    for i in $(seq 1 30); do
        if _aloop_pg_ready "$port"; then
            _aloop_pg_say "server ready on 127.0.0.1:$port"
            echo "export ALOOP_TEST_POSTGRES_URL=$url"
            return 0
        fi
        sleep 1
    done
    _aloop_pg_say "no server answers on 127.0.0.1:$port; PostgreSQL test cases will skip"
    return 0
}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
    _aloop_pg_line=$(_aloop_pg_main)
    [ -n "$_aloop_pg_line" ] && eval "$_aloop_pg_line"
    unset _aloop_pg_line
    return 0
fi
_aloop_pg_main
exit 0
