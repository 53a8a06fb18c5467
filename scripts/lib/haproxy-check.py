"""The cluster profile's HAProxy: which requests it sends to the other instance.

Usage: python3 scripts/lib/haproxy-check.py   (scripts/haproxy-test runs it)

Starts scripts/stack/haproxy (the configuration the cluster profile runs) on
free ports in a temporary data directory, in front of two stand-in instances
for each service: one answers every request, the other answers its health
check (/healthz) and closes the connection on any other request without an
answer, as an instance killed while serving it does. Round robin sends some
of each kind of request to the closing one first. Checks that a GET (to either service) is
answered by the other instance; that a POST, a PUT and a DELETE are not sent
twice (HAProxy answers 502: the write may have committed, so only its client
may decide to send it again); and that a request whose connection is refused
goes to the other instance, whatever its method.

Prints one line per check and `haproxy: N passed, M failed`; exits 1 if any
check failed.
"""

import http.client
import os
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

# Requests of each kind.
ROUNDS = 4

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Instance(socketserver.ThreadingTCPServer):
    """A stand-in service instance: answers /healthz; other requests are
    answered (`serves`) or dropped without an answer. Counts the requests
    it read, by method."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, name, serves):
        self.name = name
        self.serves = serves
        self.seen = {}
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self):
        return self.server_address[1]

    def count(self, method):
        with self.lock:
            return self.seen.get(method, 0)


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        # One request a connection: read its head and body, then answer
        # (and close) or close without an answer.
        line = self.rfile.readline().decode("latin-1")
        if not line:
            return
        method, path = line.split()[:2]
        length = 0
        while True:
            header = self.rfile.readline().decode("latin-1").strip()
            if not header:
                break
            name, _, value = header.partition(":")
            if name.lower() == "content-length":
                length = int(value.strip())
        if length:
            self.rfile.read(length)
        server = self.server
        if path == "/healthz":
            self.answer("ok")
            return
        with server.lock:
            server.seen[method] = server.seen.get(method, 0) + 1
        if server.serves:
            self.answer(server.name)
        # else: close without an answer

    def answer(self, body):
        data = body.encode()
        self.wfile.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            + b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data
        )


def request(port, method, path, body=None):
    """(status, body) of one request on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


def wait_until_up(health_port, servers, timeout=20):
    """Until HAProxy's stats list every one of `servers` UP."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, csv = request(health_port, "GET", "/stats;csv")
            up = {line.split(",")[1] for line in csv.splitlines() if ",UP" in line}
            if servers <= up:
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def main():
    results = []

    def check(ok, what):
        results.append(ok)
        print(("ok     " if ok else "FAIL   ") + what, flush=True)

    user_closing, user_serving = Instance("user-closing", False), Instance("user-serving", True)
    notif_closing, notif_serving = Instance("notif-closing", False), Instance("notif-serving", True)
    ports = {
        "USER_SERVICE_PORT": free_port(),
        "NOTIFICATION_SERVICE_PORT": free_port(),
        "HAPROXY_HEALTH_PORT": free_port(),
        "USER_SERVICE_PORT_1": user_closing.port,
        "USER_SERVICE_PORT_2": user_serving.port,
        "NOTIFICATION_SERVICE_PORT_1": notif_closing.port,
        "NOTIFICATION_SERVICE_PORT_2": notif_serving.port,
    }
    data = tempfile.mkdtemp(prefix="user-sync-haproxy.")
    env = dict(os.environ, USER_SYNC_DATA_DIR=data, **{k: str(v) for k, v in ports.items()})
    log = open(os.path.join(data, "haproxy.log"), "w")
    proxy = subprocess.Popen([os.path.join(ROOT, "scripts/stack/haproxy")], env=env,
                             stdout=log, stderr=subprocess.STDOUT)
    user, notif = ports["USER_SERVICE_PORT"], ports["NOTIFICATION_SERVICE_PORT"]
    try:
        up = wait_until_up(ports["HAPROXY_HEALTH_PORT"],
                           {"user-service-1", "user-service-2",
                            "notification-service-1", "notification-service-2"})
        check(up, "HAProxy up, both instances of each service passing their health checks")
        if not up:
            return 1

        # Round robin over the two instances: of ROUNDS requests, some go
        # first to the one that closes without an answer, whatever the
        # retries do to the rotation.
        def send(port, method, path, body=None):
            return [request(port, method, path, body) for _ in range(ROUNDS)]

        def retried(service, answers, closing, serving, method):
            check(all(a == (200, serving.name) for a in answers) and closing.count(method) >= 1
                  and serving.count(method) == ROUNDS,
                  f"{service}: every {method} its instance dropped is answered by the other "
                  f"(statuses {sorted(s for s, _ in answers)}; dropped {closing.count(method)}, "
                  f"answered {serving.count(method)} of {ROUNDS})")

        def not_retried(answers, closing, serving, method):
            dropped = [s for s, _ in answers if s != 200]
            check(bool(dropped) and all(s == 502 for s in dropped)
                  and closing.count(method) == len(dropped)
                  and closing.count(method) + serving.count(method) == ROUNDS,
                  f"user-service: a {method} its instance dropped is not sent again, HAProxy "
                  f"answers 502 (statuses {sorted(s for s, _ in answers)}; read by the instances "
                  f"{closing.count(method)} + {serving.count(method)} times for {ROUNDS} requests)")

        retried("notification-service", send(notif, "GET", "/notifications/user/1"),
                notif_closing, notif_serving, "GET")
        retried("user-service", send(user, "GET", "/users"), user_closing, user_serving, "GET")
        not_retried(send(user, "POST", "/users", '{"name":"a","email":"a@b.co"}'), user_closing,
                    user_serving, "POST")
        not_retried(send(user, "PUT", "/users/1", '{"name":"a","email":"a@b.co"}'), user_closing,
                    user_serving, "PUT")
        not_retried(send(user, "DELETE", "/users/1"), user_closing, user_serving, "DELETE")

        # The closing instance gone: connections to it are refused until the
        # health checks take it out, and a refused request of any method goes
        # to the other instance.
        user_closing.shutdown()
        user_closing.server_close()
        before = user_serving.count("POST")
        answers = send(user, "POST", "/users", '{"name":"b","email":"b@b.co"}')
        check(all(a == (200, "user-serving") for a in answers)
              and user_serving.count("POST") - before == ROUNDS,
              f"user-service: every POST whose connection is refused goes to the other instance "
              f"(statuses {sorted(s for s, _ in answers)})")
    finally:
        proxy.terminate()
        try:
            proxy.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proxy.kill()
            proxy.wait()
        log.close()
        if all(results):
            shutil.rmtree(data, ignore_errors=True)
        else:
            print(f"HAProxy's configuration and log kept in {data}")
    passed = sum(results)
    print(f"haproxy: {passed} passed, {len(results) - passed} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
