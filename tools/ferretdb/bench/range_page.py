"""A page of copies against the whole list, on one FerretDB build.

Usage: python3 tools/ferretdb/bench/range_page.py FERRETDB_BINARY [DOCUMENTS]

Needs pymongo (pip install pymongo). Starts the binary with the SQLite handler on a
free port in a temporary directory, inserts DOCUMENTS copies (default 108000) shaped
as notification-service stores them, with its unique user_id index, and prints the
times of notification-service's queries: the whole list (once), and (best of three) pages
(`user_id > N`, sorted, limit 10000) of the last 10 000 and the last 1 000 copies, and
windows of 10 000 user ids read as the list of their keys (`_id: {$in: [...]}`, as
`GET /notifications?after_id=&before_id=` does) at the start and at the end.
Compare two builds (e.g. the cached ones in ~/.cache/user-sync/tools) in one session.
"""

import shutil
import socket
import subprocess
import sys
import tempfile
import time

from pymongo import MongoClient
binary = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 108000
d = tempfile.mkdtemp()
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
p = subprocess.Popen([binary, "--handler=sqlite", f"--sqlite-url=file:{d}/", f"--listen-addr=127.0.0.1:{port}", f"--state-dir={d}", "--telemetry=disable", "--log-level=error"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    c = MongoClient(f"mongodb://127.0.0.1:{port}/", serverSelectionTimeoutMS=20000)
    coll = c.db.user_notifications
    coll.create_index("user_id", unique=True, name="user_id_unique")
    batch = []
    for i in range(1, n + 1):
        batch.append({"_id": str(i), "user_id": i, "name": f"Load {i}", "email": f"load-{i}@x.example", "updated_at": "2026-12-03T02:00:00.123456Z", "version": 1, "deleted": False, "event_id": "0190e0c0-0000-7000-8000-000000000000"})
        if len(batch) == 1000:
            coll.insert_many(batch); batch = []
    if batch: coll.insert_many(batch)
    def timed(label, f, reps=3):
        best = 1e9
        for _ in range(reps):
            t = time.perf_counter(); r = f(); best = min(best, time.perf_counter() - t)
        print(f"{label}: {best*1000:.0f} ms ({r} docs)")
    timed("whole list", lambda: len(list(coll.find({"deleted": {"$ne": True}}).sort("user_id", 1))), 1)
    timed("page of last 10000", lambda: len(list(coll.find({"user_id": {"$gt": n - 10000}, "deleted": {"$ne": True}}).sort("user_id", 1).limit(10000))))
    timed("page of last 1000", lambda: len(list(coll.find({"user_id": {"$gt": n - 1000}, "deleted": {"$ne": True}}).sort("user_id", 1).limit(10000))))
    def window(after):
        keys = [str(i) for i in range(after + 1, after + 10001)]
        return len(list(coll.find({"_id": {"$in": keys}, "deleted": {"$ne": True}}).sort("user_id", 1).limit(10000)))
    timed("window of the first 10000 ids by key", lambda: window(0))
    timed("window of the last 10000 ids by key", lambda: window(n - 10000))
finally:
    p.terminate()
    p.wait()
    shutil.rmtree(d, ignore_errors=True)
