"""NATS's permissions in the cluster profile, checked from outside with the
raw client protocol (standard library only).

Usage: nats-auth-check.py CREDENTIALS_ENV CLIENT_PORT [CLIENT_PORT...] -- ROUTE_PORT [...]

CREDENTIALS_ENV is <data dir>/nats-cluster/credentials.env (scripts/lib/nats-auth.sh).
Each client port is checked for:
  - a client without credentials, or with a wrong password, is refused;
  - notification-service and notification-replay cannot publish an event on
    user.events (a forged event) nor delete the stream USER_EVENTS;
  - user-service cannot delete the stream either;
  - and, so that the checks above can tell a refusal from a dead connection,
    user-service and notification-service do get the stream's info.
Each route port refuses a node that brings no credentials.
Prints one line per check ("ok ..." or "FAIL ..."), then a summary; exits 1
if any check failed.
"""

import json
import socket
import sys

FAILED = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        FAILED.append(what)


def read_until(sock, predicate, timeout=3.0):
    """Reads until predicate(text) holds, the connection closes or time runs out."""
    sock.settimeout(timeout)
    data = b""
    try:
        while not predicate(data.decode("utf-8", "replace")):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    return data.decode("utf-8", "replace")


def session(port, user=None, password=None, commands="", route=False):
    """Connects, sends CONNECT (with the credentials given), then COMMANDS and a
    PING; returns what the server said after its INFO."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=3)
    try:
        read_until(sock, lambda t: "\r\n" in t)
        connect = {"verbose": False, "pedantic": False, "protocol": 1, "headers": True,
                   "name": "nats-auth-check"}
        if user is not None:
            connect.update({"user": user, "pass": password})
        sock.sendall(f"CONNECT {json.dumps(connect)}\r\n{commands}PING\r\n".encode())
        return read_until(sock, lambda t: "PONG" in t or "Authorization Violation" in t)
    finally:
        sock.close()


def stream_info(port, user, password):
    commands = ("SUB _INBOX.auth-check 1\r\n"
                "PUB $JS.API.STREAM.INFO.USER_EVENTS _INBOX.auth-check 0\r\n\r\n")
    sock = socket.create_connection(("127.0.0.1", port), timeout=3)
    try:
        read_until(sock, lambda t: "\r\n" in t)
        connect = {"verbose": False, "pedantic": False, "protocol": 1, "user": user, "pass": password}
        sock.sendall(f"CONNECT {json.dumps(connect)}\r\n{commands}".encode())
        return read_until(sock, lambda t: '"config"' in t or "-ERR" in t, timeout=5)
    finally:
        sock.close()


def main():
    args = sys.argv[1:]
    if "--" in args:
        split = args.index("--")
        args, route_ports = args[:split], [int(p) for p in args[split + 1:]]
    else:
        route_ports = []
    credentials_path, client_ports = args[0], [int(p) for p in args[1:]]
    env = {}
    with open(credentials_path, encoding="utf-8") as f:
        for line in f:
            if "=" in line:
                key, value = line.strip().split("=", 1)
                env[key] = value
    password = {
        "user-service": env["NATS_USER_SERVICE_PASSWORD"],
        "notification-service": env["NATS_NOTIFICATION_SERVICE_PASSWORD"],
        "notification-replay": env["NATS_REPLAY_PASSWORD"],
    }
    event = '{"type":"user_updated","payload":{"id":1,"name":"forged","email":"f@example.com"}}'
    forged = f"PUB user.events {len(event)}\r\n{event}\r\n"
    delete = "PUB $JS.API.STREAM.DELETE.USER_EVENTS _INBOX.auth-check 0\r\n\r\n"
    for port in client_ports:
        said = session(port)
        check("Authorization Violation" in said, f":{port} refuses a client without credentials")
        said = session(port, "user-service", "not-the-password")
        check("Authorization Violation" in said, f":{port} refuses a wrong password")
        for user in ("notification-service", "notification-replay"):
            said = session(port, user, password[user], forged)
            check('Permissions Violation for Publish to "user.events"' in said,
                  f":{port} refuses {user} publishing an event on user.events")
            said = session(port, user, password[user], delete)
            check("Permissions Violation for Publish to \"$JS.API.STREAM.DELETE.USER_EVENTS\"" in said,
                  f":{port} refuses {user} deleting the stream")
        said = session(port, "user-service", password["user-service"], delete)
        check("Permissions Violation for Publish to \"$JS.API.STREAM.DELETE.USER_EVENTS\"" in said,
              f":{port} refuses user-service deleting the stream")
        for user in ("user-service", "notification-service"):
            said = stream_info(port, user, password[user])
            check('"name":"USER_EVENTS"' in said.replace(" ", ""),
                  f":{port} answers {user}'s look-up of the stream (it still exists)")
    for port in route_ports:
        said = session(port, route=True)
        check("Authorization Violation" in said and "PONG" not in said,
              f"route port :{port} refuses a node without credentials")
    print(f"{len(FAILED)} of the checks failed" if FAILED
          else "forged events, stream deletion and clients without credentials refused")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
