#!/bin/sh
# Honours the official postgres image's env contract so Berth treats this image and
# postgres:NN alike: POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (one is required; Berth uses
# the file, so `docker inspect` shows no password), POSTGRES_USER (default postgres),
# POSTGRES_DB (default $POSTGRES_USER), PGDATA. Values are passed to initdb and psql as
# data (files and psql variables), never spliced into SQL or shell.
set -eu

if [ -n "${POSTGRES_PASSWORD_FILE:-}" ] && [ -n "${POSTGRES_PASSWORD:-}" ]; then
  echo "berth-entrypoint: both POSTGRES_PASSWORD and POSTGRES_PASSWORD_FILE are set (but are exclusive)" >&2
  exit 1
fi

if [ "${1#-}" != "$1" ]; then set -- postgres "$@"; fi

if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA"
  chown postgres:postgres "$PGDATA"
  chmod 700 "$PGDATA"
  # Written by Berth as root, world-readable (the official image reads it as its own postgres
  # user); here only postgres needs it.
  if [ -n "${POSTGRES_PASSWORD_FILE:-}" ] && [ -f "$POSTGRES_PASSWORD_FILE" ]; then
    chown postgres:postgres "$POSTGRES_PASSWORD_FILE"
    chmod 0400 "$POSTGRES_PASSWORD_FILE"
  fi
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  user="${POSTGRES_USER:-postgres}"
  db="${POSTGRES_DB:-$user}"
  if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
    if [ ! -r "$POSTGRES_PASSWORD_FILE" ]; then
      echo "berth-entrypoint: POSTGRES_PASSWORD_FILE $POSTGRES_PASSWORD_FILE is not readable" >&2
      exit 1
    fi
    # initdb reads the password from the file's first line itself.
    pwfile="$POSTGRES_PASSWORD_FILE"
  else
    : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE must be set}"
    pwfile="$(mktemp)"
    printf '%s' "$POSTGRES_PASSWORD" > "$pwfile"
  fi
  initdb -D "$PGDATA" --username="$user" --pwfile="$pwfile" \
         --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  if [ "$pwfile" != "${POSTGRES_PASSWORD_FILE:-}" ]; then rm -f "$pwfile"; fi
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
