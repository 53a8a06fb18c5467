"""FerretDB's CPU per update as notification-service sends them at a steady rate.

Usage: python3 tools/ferretdb/bench/sync_updates.py FERRETDB_BINARY [--per-command K]
           [--clients C] [--updates N] [--documents D] [--profile SECONDS] [--set]

Needs pymongo (pip install pymongo). Starts the binary with the SQLite handler on a
free port in a temporary directory, inserts D copies (default 20000) shaped as
notification-service stores them, then C clients (default 8, the consumer's workers)
send N guarded updates in all (default 6000), K statements to an update command
(default 1: at 300 writes/s a worker's batch is one or two events), each
`{q: {_id, version: {$lt: v}}, u: <the whole copy>, upsert: true}`, `ordered: false`, write
concern majority, as `NotificationStore::update_newer` sends them (with --set, `u: {$set:
<the copy>}`, as it did before tools/ferretdb/writes-guarded.patch). Prints wall time and
FerretDB's CPU time (user + system, from /proc) per update. With --profile S it also
writes a Go CPU profile of S seconds taken during the updates (FerretDB's
--debug-addr) to ./ferretdb-updates.pprof: `go tool pprof -top BINARY FILE`.
Compare two builds in one session.
"""

import argparse
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

from pymongo import MongoClient, WriteConcern


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--per-command", type=int, default=1)
    ap.add_argument("--set", action="store_true", help="send {$set: copy} instead of the copy")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--updates", type=int, default=6000)
    ap.add_argument("--documents", type=int, default=20000)
    ap.add_argument("--profile", type=int, default=0)
    a = ap.parse_args()

    d = tempfile.mkdtemp()
    port, debug = free_port(), free_port()
    p = subprocess.Popen(
        [a.binary, "--handler=sqlite", f"--sqlite-url=file:{d}/", f"--listen-addr=127.0.0.1:{port}",
         f"--debug-addr=127.0.0.1:{debug}", f"--state-dir={d}", "--telemetry=disable", "--log-level=error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        c = MongoClient(f"mongodb://127.0.0.1:{port}/", serverSelectionTimeoutMS=20000)
        db = c.notifications_db
        coll = db.user_notifications
        coll.create_index("user_id", unique=True, name="user_id_unique")
        batch = []
        for i in range(1, a.documents + 1):
            batch.append({"_id": str(i), "user_id": i, "name": f"Load {i}", "email": f"load-{i}@x.example",
                          "updated_at": "2026-12-03T02:00:00.123456Z", "version": 1, "deleted": False,
                          "event_id": "0190e0c0-0000-7000-8000-000000000000",
                          "synced_at": "2026-12-03T02:00:00.200Z"})
            if len(batch) == 1000:
                coll.insert_many(batch)
                batch = []
        if batch:
            coll.insert_many(batch)

        per_client = a.updates // a.clients
        errors = []

        def client(k):
            # Each client its own users (the consumer's workers are chosen by user id),
            # each update one version above the last.
            cc = MongoClient(f"mongodb://127.0.0.1:{port}/")
            cdb = cc.notifications_db
            version = {}
            users = list(range(1 + k, a.documents + 1, a.clients))
            n = 0
            while n < per_client:
                statements = []
                for _ in range(min(a.per_command, per_client - n)):
                    u = users[(n * 7919) % len(users)]
                    v = version.get(u, 1) + 1
                    version[u] = v
                    copy = {"user_id": u, "name": f"Load {u} v{v}", "email": f"load-{u}@x.example",
                            "updated_at": "2026-12-03T02:00:01.123456Z", "version": v,
                            "deleted": False, "event_id": "0190e0c0-0000-7000-8000-000000000001",
                            "synced_at": "2026-12-03T02:00:01.200Z"}
                    statements.append({
                        "q": {"_id": str(u), "version": {"$lt": v}},
                        "u": {"$set": copy} if a.set else copy,
                        "upsert": True,
                    })
                    n += 1
                r = cdb.command({"update": "user_notifications", "updates": statements, "ordered": False,
                                 "writeConcern": {"w": "majority"}})
                if r.get("writeErrors") or r.get("nModified", 0) != len(statements):
                    errors.append(r)
            cc.close()

        threads = [threading.Thread(target=client, args=(k,)) for k in range(a.clients)]
        profile = None
        if a.profile:
            def take():
                url = f"http://127.0.0.1:{debug}/debug/pprof/profile?seconds={a.profile}"
                with urllib.request.urlopen(url, timeout=a.profile + 30) as r, open("ferretdb-updates.pprof", "wb") as f:
                    shutil.copyfileobj(r, f)
            profile = threading.Thread(target=take)
        cpu0, t0 = cpu_seconds(p.pid), time.perf_counter()
        for t in threads:
            t.start()
        if profile:
            profile.start()
        for t in threads:
            t.join()
        wall, cpu = time.perf_counter() - t0, cpu_seconds(p.pid) - cpu0
        if profile:
            profile.join()
        total = per_client * a.clients
        print(f"{total} updates, {a.per_command} per command, {a.clients} clients, {a.documents} documents: "
              f"{wall / total * 1000:.3f} ms wall, {cpu / total * 1000:.3f} ms FerretDB CPU per update"
              f"{'' if not errors else f'; {len(errors)} commands with errors, first: {errors[0]}'}")
    finally:
        p.terminate()
        p.wait()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
