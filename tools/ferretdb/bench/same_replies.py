"""Do two FerretDB builds answer guarded replacements alike?

Usage: python3 tools/ferretdb/bench/same_replies.py FERRETDB_A FERRETDB_B

Needs pymongo (pip install pymongo). Starts each binary with the SQLite handler on a free
port in a temporary directory, stores five documents whose `version` is an int64, a
string, missing, a double and a boolean, then sends both the same update commands of
statements `{q: {_id, version: {$lt: v}}, u: <replacement>, upsert}` (the shape
notification-service sends, which tools/ferretdb/writes-guarded.patch writes without a
read): newer, as new, older without upsert, each odd version type, a missing document,
one _id twice in a command, a duplicate in the middle of an ordered and of an unordered
command, a replacement that changes the _id. Prints SAME or DIFF for each reply (error
messages left out) and for the documents left; exits 1 on any DIFF.
"""

import subprocess
import sys
import tempfile

from pymongo import MongoClient

from sync_updates import free_port  # beside this file


def statement(_id, version, upsert=True):
    return {"q": {"_id": _id, "version": {"$lt": version}}, "u": {"version": version, "b": _id},
            "upsert": upsert}


COMMANDS = [
    ("newer", [statement("1", 6)], False),
    ("as new", [statement("1", 6)], False),
    ("older, no upsert", [statement("1", 3, upsert=False)], False),
    ("a string version", [statement("2", 9)], False),
    ("no version", [statement("3", 9)], False),
    ("a double version", [statement("4", 9)], False),
    ("a boolean version", [statement("5", 9)], False),
    ("no document", [statement("9", 1)], False),
    ("one _id twice", [statement("1", 7), statement("1", 5), statement("10", 1)], False),
    ("ordered, a duplicate in the middle", [statement("11", 1), statement("1", 2), statement("12", 1)], True),
    ("unordered, a duplicate in the middle", [statement("13", 1), statement("1", 2), statement("14", 1)], False),
    ("the _id changed", [{"q": {"_id": "1", "version": {"$lt": 100}}, "u": {"_id": "other", "version": 100},
                          "upsert": True}], False),
]


def replies(binary):
    d = tempfile.mkdtemp()
    port = free_port()
    p = subprocess.Popen(
        [binary, "--handler=sqlite", f"--sqlite-url=file:{d}/", f"--listen-addr=127.0.0.1:{port}",
         f"--state-dir={d}", "--telemetry=disable", "--log-level=error", "--debug-addr=-"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        db = MongoClient(f"mongodb://127.0.0.1:{port}/", serverSelectionTimeoutMS=20000).t
        db.c.insert_many([{"_id": "1", "version": 5, "a": 1}, {"_id": "2", "version": "x"}, {"_id": "3", "a": 2},
                          {"_id": "4", "version": 5.0}, {"_id": "5", "version": True}])
        out = []
        for name, updates, ordered in COMMANDS:
            r = db.command({"update": "c", "updates": updates, "ordered": ordered})
            for e in r.get("writeErrors", []):
                e.pop("errmsg", None)
            out.append((name, {k: v for k, v in r.items() if k in ("n", "nModified", "upserted", "writeErrors", "ok")}))
        out.append(("the documents after", sorted(db.c.find({}), key=lambda doc: doc["_id"])))
        return out
    finally:
        p.terminate()
        p.wait()


def main():
    a, b = replies(sys.argv[1]), replies(sys.argv[2])
    differ = 0
    for (name, x), (_, y) in zip(a, b):
        if x == y:
            print(f"SAME  {name}: {x}")
        else:
            differ += 1
            print(f"DIFF  {name}:\n      {sys.argv[1]}: {x}\n      {sys.argv[2]}: {y}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
