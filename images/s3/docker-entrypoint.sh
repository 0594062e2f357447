#!/bin/sh
# Starts berth-s3d as the s3 user with data in /data: buckets/ (objects), keys.d/ (one JSON file
# per project key, read while running) and tls/ (a CA made on first start, and a certificate
# for this container's hostname and localhost that it signs, used by stunnel on 9443).
# The admin key comes from RUSTFS_ACCESS_KEY/RUSTFS_SECRET_KEY or their _FILE forms, as with
# the official RustFS image; berth-s3d refuses to start without one.
# Key files in keys.d must be readable by uid 10001 (s3): keys.d itself is 0700, so mode 0644
# exposes them to nobody else.
set -eu

if [ "${1#-}" != "$1" ]; then set -- berth-s3d "$@"; fi

if [ "$1" = berth-s3d ] && [ "$(id -u)" = 0 ]; then
  mkdir -p /data/buckets /data/keys.d /data/tls
  # Not recursive: buckets may hold millions of files, all created by s3 already.
  chown s3:s3 /data /data/buckets /data/keys.d /data/tls
  chmod 0700 /data/keys.d /data/tls
  # Written by Berth as root before the start; only s3 needs to read them.
  for f in "${RUSTFS_ACCESS_KEY_FILE:-}" "${RUSTFS_SECRET_KEY_FILE:-}"; do
    if [ -n "$f" ] && [ -f "$f" ]; then chown s3:s3 "$f"; chmod 0400 "$f"; fi
  done
  exec setpriv --reuid=s3 --regid=s3 --init-groups "$0" "$@"
fi

# Makes sure /data/tls holds a CA and a current server certificate for this hostname. Keys
# are 0600; everything is written to temporary names first, so an interrupted start never
# leaves a key without its certificate.
issue_tls() {
  tls=/data/tls
  host="${HOSTNAME:-$(hostname)}"
  case "$host" in
    '' | *[!A-Za-z0-9.-]*)
      echo "berth-entrypoint: hostname '$host' is not a DNS name; cannot issue a certificate" >&2
      exit 1 ;;
  esac
  # The names live in subjectAltName, which is what clients check; the subjects' common names
  # are fixed because a CN is limited to 64 characters and hostnames reach 63.
  names="DNS:$host,DNS:localhost"
  umask 077
  if [ ! -s "$tls/ca.crt" ] || [ ! -s "$tls/ca.key" ]; then
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout "$tls/ca.key.tmp" -out "$tls/ca.crt.tmp" -days 36500 -subj "/CN=Berth S3 CA" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
      2>/dev/null
    mv "$tls/ca.key.tmp" "$tls/ca.key"
    mv "$tls/ca.crt.tmp" "$tls/ca.crt"
    rm -f "$tls/server.crt"
    echo "berth-entrypoint: made a CA in $tls/ca.crt"
  fi
  # Reissued when the hostname changed or it expires within 30 days (checked at each start).
  if [ ! -s "$tls/server.crt" ] || [ ! -s "$tls/server.key" ] \
     || [ "$(cat "$tls/server.names" 2>/dev/null)" != "$names" ] \
     || ! openssl x509 -checkend 2592000 -noout -in "$tls/server.crt" >/dev/null 2>&1; then
    printf 'subjectAltName=%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' \
      "$names" > "$tls/server.ext"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout "$tls/server.key.tmp" -out "$tls/server.csr" -subj "/CN=berth-s3" 2>/dev/null
    openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" \
      -set_serial "0x$(openssl rand -hex 16)" -days 825 -extfile "$tls/server.ext" \
      -out "$tls/server.crt.tmp" 2>/dev/null
    mv "$tls/server.key.tmp" "$tls/server.key"
    mv "$tls/server.crt.tmp" "$tls/server.crt"
    printf '%s' "$names" > "$tls/server.names"
    rm -f "$tls/server.csr" "$tls/server.ext"
    echo "berth-entrypoint: issued a certificate for $names"
  fi
  chmod 0644 "$tls/ca.crt" "$tls/server.crt"
  umask 022
}

if [ "$1" = berth-s3d ]; then
  issue_tls
  # stunnel stays a child of berth-s3d (exec keeps children), so both go when the container stops.
  stunnel /etc/berth/stunnel.conf &
fi
exec "$@"
