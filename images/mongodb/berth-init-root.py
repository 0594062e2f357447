#!/opt/secantus/bin/python3
"""First start of Berth's MongoDB-compatible image: creates the root user.

SecantusDB has no MONGO_INITDB_ROOT_* of its own and no localhost exception, so, like the
official image's entrypoint, this starts the server without auth on 127.0.0.1 only (unreachable
through published ports, which Docker forwards to the container's own address), creates the
user in `admin`, stops the server cleanly and only then writes the marker. A start interrupted
anywhere before the marker is redone: a user left by it is updated to the given password.

Usage: berth-init-root.py MARKER. Exit status: 0 the server must run with --auth (the marker
exists, now or from an earlier start); 3 no credentials were given and there is no marker (run
without auth, as the official image does); anything else is an error.
"""

import os
import subprocess
import sys
import time

from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

NO_AUTH = 3
DB_PATH = "/data/db"
PORT = 27017
READY_TIMEOUT_S = 120
STOP_TIMEOUT_S = 60
USER_EXISTS = 51003


def fail(message):
    print(f"berth-init-root: {message}", file=sys.stderr)
    sys.exit(1)


def setting(name):
    """The official image's `file_env`: NAME or the contents of the file NAME_FILE names."""
    value = os.environ.get(name, "")
    path = os.environ.get(name + "_FILE", "")
    if value and path:
        fail(f"both {name} and {name}_FILE are set (but are exclusive)")
    if not path:
        return value
    try:
        with open(path, encoding="utf-8") as f:
            # Like the shell's $(< file): trailing newlines are not part of the value.
            return f.read().rstrip("\n")
    except OSError as e:
        fail(f"{name}_FILE: cannot read {path}: {e.strerror}")


def wait_ready(server, client):
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if server.poll() is not None:
            fail(f"the server exited with status {server.returncode} while bootstrapping")
        try:
            client.admin.command("ping")
            return
        except PyMongoError:
            if time.monotonic() > deadline:
                fail(f"the server did not answer within {READY_TIMEOUT_S} s")
            time.sleep(0.2)


def create_root(client, user, password):
    # SCRAM-SHA-1 too: the stand-in stores only SHA-256 unless asked, and old drivers need SHA-1.
    spec = {
        "pwd": password,
        "roles": [{"role": "root", "db": "admin"}],
        "mechanisms": ["SCRAM-SHA-256", "SCRAM-SHA-1"],
    }
    try:
        client.admin.command({"createUser": user, **spec})
    except OperationFailure as e:
        if e.code != USER_EXISTS:
            raise
        # Left by an interrupted first start: converge to the given password and role.
        client.admin.command({"updateUser": user, **spec})
    found = client.admin.command({"usersInfo": {"user": user, "db": "admin"}})["users"]
    if not found:
        fail("the root user is missing right after createUser")


def bootstrap(user, password):
    server = subprocess.Popen(
        ["secantusd-py", "--host", "127.0.0.1", "--port", str(PORT),
         "--storage-path", DB_PATH, "--standalone"],
    )
    try:
        client = MongoClient(host="127.0.0.1", port=PORT, directConnection=True,
                             serverSelectionTimeoutMS=2000, connectTimeoutMS=2000)
        try:
            wait_ready(server, client)
            create_root(client, user, password)
        except PyMongoError as e:
            # The server's reply, never the command (which carries the password).
            fail(f"creating the root user failed: {type(e).__name__}: {e}")
        finally:
            client.close()
    except BaseException:
        server.kill()
        server.wait()
        raise
    server.terminate()
    try:
        status = server.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        fail("the server did not stop after bootstrapping")
    if status != 0:
        fail(f"the server stopped with status {status} after bootstrapping")


def write_marker(marker, user):
    tmp = marker + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f"root user {user!r} created in admin\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, marker)
    directory = os.open(os.path.dirname(marker), os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def main():
    marker = sys.argv[1]
    user = setting("MONGO_INITDB_ROOT_USERNAME")
    password = setting("MONGO_INITDB_ROOT_PASSWORD")
    if bool(user) != bool(password):
        fail("MONGO_INITDB_ROOT_USERNAME and MONGO_INITDB_ROOT_PASSWORD (or their _FILE variants) "
             "must be set together")
    if os.path.exists(marker):
        return 0
    if not user:
        return NO_AUTH
    print(f"berth-init-root: creating root user in admin ({DB_PATH})", file=sys.stderr)
    bootstrap(user, password)
    write_marker(marker, user)
    print("berth-init-root: done", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
