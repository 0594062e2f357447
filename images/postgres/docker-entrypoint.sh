#!/bin/sh
# Honours the official postgres image's env contract so Berth treats this image and
# postgres:NN alike: POSTGRES_PASSWORD (required), POSTGRES_USER (default postgres),
# POSTGRES_DB (default $POSTGRES_USER), PGDATA. Values are passed to initdb and psql as
# data (files and psql variables), never spliced into SQL or shell.
set -eu

if [ "${1#-}" != "$1" ]; then set -- postgres "$@"; fi

if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA"
  chown postgres:postgres "$PGDATA"
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
  user="${POSTGRES_USER:-postgres}"
  db="${POSTGRES_DB:-$user}"
  pwfile="$(mktemp)"
  printf '%s' "$POSTGRES_PASSWORD" > "$pwfile"
  initdb -D "$PGDATA" --username="$user" --pwfile="$pwfile" \
         --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  printf '\nhost all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
  # Socket-only server while initialising: nothing can connect over TCP until init is done,
  # so "accepts TCP connections" means "ready".
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
  if [ "$db" != postgres ]; then
    # psql interpolates :"db" (as a quoted identifier) only in script input, not in -c.
    echo 'CREATE DATABASE :"db";' |
      psql -v ON_ERROR_STOP=1 --username="$user" --dbname=postgres -v db="$db" >/dev/null
  fi
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "berth-entrypoint: initialised $PGDATA"
fi

if [ "$1" = postgres ]; then
  shift
  exec postgres -c listen_addresses='*' "$@"
fi
exec "$@"
