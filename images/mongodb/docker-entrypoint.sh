#!/bin/sh
# Runs SecantusDB behind the official mongo image's contract, so Berth treats this image and
# mongo:N alike:
#  - `secantusd [flags]` (the default command; bare flags mean it too) runs the server as the
#    mongodb user on 0.0.0.0:27017 with its files in /data/db, standalone (no replica-set
#    advertisement); the flags are passed on to the server.
#  - MONGO_INITDB_ROOT_USERNAME and MONGO_INITDB_ROOT_PASSWORD, or their _FILE variants (Berth
#    uses the files, so `docker inspect` shows no password), create a root user in `admin` on
#    first start; from then on the server requires auth, with or without the variables.
#  - Any other command is run as given.
set -eu

DATA=/data
# Written by berth-init-root.py only once the root user exists: an interrupted first start is
# redone on the next one.
MARKER="$DATA/.berth-root-user-created"

if [ "${1#-}" != "$1" ]; then set -- secantusd "$@"; fi
if [ "$1" != secantusd ]; then exec "$@"; fi

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$DATA/db"
  # A volume filled elsewhere (or Berth's volume marker, written as root) may hold files the
  # server could not write.
  find "$DATA" ! -user mongodb -exec chown -h mongodb:mongodb {} +
  for f in "${MONGO_INITDB_ROOT_USERNAME_FILE:-}" "${MONGO_INITDB_ROOT_PASSWORD_FILE:-}"; do
    # Berth writes secret files as root, world-readable (the official image reads them as its
    # own user); narrow them to mongodb. A read-only mount stays as it is.
    if [ -n "$f" ] && [ -f "$f" ]; then
      { chown mongodb:mongodb "$f" && chmod 0400 "$f"; } 2>/dev/null || true
    fi
  done
  exec setpriv --reuid=mongodb --regid=mongodb --init-groups "$0" "$@"
fi
shift
# setpriv keeps root's HOME; the server looks for ~/.secantus/secantusd.toml.
export HOME="$DATA"

# The helper reads the credentials itself (a password never appears on a command line) and
# says whether the server must require auth: 0 yes, 3 no credentials were ever given.
set +e
berth-init-root.py "$MARKER"
status=$?
set -e
case "$status" in
  0) set -- --auth "$@" ;;
  3) echo "berth-entrypoint: no MONGO_INITDB_ROOT_USERNAME/PASSWORD: running WITHOUT authentication" >&2 ;;
  *) exit "$status" ;;
esac

# The server needs none of these; a password given as a plain variable goes no further.
unset MONGO_INITDB_ROOT_USERNAME MONGO_INITDB_ROOT_PASSWORD \
      MONGO_INITDB_ROOT_USERNAME_FILE MONGO_INITDB_ROOT_PASSWORD_FILE
# exec: the server is PID 1 and gets `docker stop`'s SIGTERM itself; its handler closes
# WiredTiger cleanly, so acknowledged writes survive a stop.
exec secantusd-py --host 0.0.0.0 --port 27017 --storage-path "$DATA/db" --standalone "$@"
