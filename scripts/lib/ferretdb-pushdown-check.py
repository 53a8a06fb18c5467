#!/usr/bin/env python3
"""Checks that FerretDB serves finds by _id from its _id index.

Usage: scripts/lib/ferretdb-pushdown-check.py [FERRETDB] [POSTGRESQL_URL]

Starts FERRETDB (default: `ferretdb` on PATH, as ensure_ferretdb puts it
there) on a free port in a temporary directory, with the SQLite handler, or
the PostgreSQL one when a POSTGRESQL_URL is given, fills a collection, and
asserts through FerretDB's `explain` (which plans the very SQL that FerretDB
runs) that `{_id: <string>}` and `{_id: <string>, version: <n>}` filters use
the _id index rather than scanning the table. It also checks that finds and
updates by those filters return what they must (the pushdown is a prefilter).

Stock FerretDB 1.24.2 fails it: its SQLite filter does not match the index
expression (a SCAN) and is not pushed down at all with a second key; its
PostgreSQL filter (`@>`) cannot use the btree index. The build of
scripts/lib/tools.sh (tools/ferretdb/id-pushdown.patch) passes it.

Only the standard library: a minimal BSON codec and one OP_MSG per command.
"""

import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

# --- BSON (just the types these commands and replies use) -------------------


class ObjectId(bytes):
    """A BSON ObjectID (12 bytes); decoded ones come back as their hex."""


def _cstring(s):
    b = s.encode()
    assert b"\0" not in b
    return b + b"\0"


def encode(doc):
    out = bytearray()
    for key, value in doc.items():
        key = _cstring(str(key))
        if isinstance(value, bool):
            out += b"\x08" + key + (b"\x01" if value else b"\x00")
        elif isinstance(value, int):
            if -(2**31) <= value < 2**31:
                out += b"\x10" + key + struct.pack("<i", value)
            else:
                out += b"\x12" + key + struct.pack("<q", value)
        elif isinstance(value, float):
            out += b"\x01" + key + struct.pack("<d", value)
        elif isinstance(value, str):
            b = value.encode()
            out += b"\x02" + key + struct.pack("<i", len(b) + 1) + b + b"\0"
        elif isinstance(value, ObjectId):
            assert len(value) == 12
            out += b"\x07" + key + value
        elif value is None:
            out += b"\x0a" + key
        elif isinstance(value, dict):
            out += b"\x03" + key + encode(value)
        elif isinstance(value, (list, tuple)):
            out += b"\x04" + key + encode({str(i): v for i, v in enumerate(value)})
        else:
            raise TypeError(f"cannot encode {value!r}")
    return struct.pack("<i", len(out) + 5) + bytes(out) + b"\0"


def decode(data, pos=0, array=False):
    (size,) = struct.unpack_from("<i", data, pos)
    end, pos, out = pos + size - 1, pos + 4, {}
    while pos < end:
        kind = data[pos]
        nul = data.index(b"\0", pos + 1)
        key, pos = data[pos + 1 : nul].decode(), nul + 1
        if kind == 0x01:
            (value,), pos = struct.unpack_from("<d", data, pos), pos + 8
        elif kind in (0x02, 0x0D, 0x0E):
            (n,) = struct.unpack_from("<i", data, pos)
            value, pos = data[pos + 4 : pos + 3 + n].decode(), pos + 4 + n
        elif kind in (0x03, 0x04):
            (n,) = struct.unpack_from("<i", data, pos)
            value, pos = decode(data, pos, kind == 0x04), pos + n
        elif kind == 0x05:
            (n,) = struct.unpack_from("<i", data, pos)
            value, pos = bytes(data[pos + 5 : pos + 5 + n]), pos + 5 + n
        elif kind == 0x07:
            value, pos = bytes(data[pos : pos + 12]).hex(), pos + 12
        elif kind == 0x08:
            value, pos = data[pos] == 1, pos + 1
        elif kind in (0x0A, 0x06, 0x7F, 0xFF):
            value = None
        elif kind == 0x10:
            (value,), pos = struct.unpack_from("<i", data, pos), pos + 4
        elif kind in (0x09, 0x11, 0x12):
            (value,), pos = struct.unpack_from("<q", data, pos), pos + 8
        elif kind == 0x13:
            value, pos = bytes(data[pos : pos + 16]), pos + 16
        else:
            raise ValueError(f"BSON type {kind:#x} not supported here")
        out[key] = value
    return list(out.values()) if array else out


# --- the wire protocol ------------------------------------------------------


class Client:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.request_id = 0

    def _recv(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("connection closed")
            buf += chunk
        return bytes(buf)

    def command(self, db, cmd, check=True):
        self.request_id += 1
        body = b"\0\0\0\0" + b"\x00" + encode({**cmd, "$db": db})  # flags, kind 0
        header = struct.pack("<iiii", 16 + len(body), self.request_id, 0, 2013)
        self.sock.sendall(header + body)
        (length,) = struct.unpack("<i", self._recv(4))
        reply = self._recv(length - 4)
        _, _, opcode = struct.unpack_from("<iii", reply, 0)
        assert opcode == 2013 and reply[16] == 0, "unexpected reply"
        doc = decode(reply, 17)
        if check and doc.get("ok") != 1:
            raise RuntimeError(f"{cmd}: {doc}")
        return doc


# --- the check ----------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(ferretdb, work, pg_url):
    port = free_port()
    args = [
        ferretdb,
        f"--listen-addr=127.0.0.1:{port}",
        f"--state-dir={work}",
        "--telemetry=disable",
        "--debug-addr=-",
        "--log-level=warn",
    ]
    if pg_url:
        args += ["--handler=postgresql", f"--postgresql-url={pg_url}"]
    else:
        os.mkdir(os.path.join(work, "data"))
        args += ["--handler=sqlite", f"--sqlite-url=file:{work}/data/"]
    log = open(os.path.join(work, "ferretdb.log"), "wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            client = Client(port)
            client.command("admin", {"ping": 1})
            return proc, client
        except (OSError, RuntimeError, ConnectionError):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                sys.exit(f"ferretdb did not start; its log: {work}/ferretdb.log")
            time.sleep(0.2)


def uses_index(explained, pg):
    """Whether the plan FerretDB reports reads the table through an index."""
    plan = repr(explained.get("queryPlanner"))
    if pg:
        return "Index Scan" in plan and "Seq Scan" not in plan
    return "USING INDEX" in plan and "SCAN " not in plan.replace("SCAN CONSTANT", "")


def main():
    ferretdb = sys.argv[1] if len(sys.argv) > 1 else shutil.which("ferretdb")
    pg_url = sys.argv[2] if len(sys.argv) > 2 else None
    if not ferretdb:
        sys.exit("no ferretdb (run ensure_ferretdb from scripts/lib/tools.sh first)")
    work = tempfile.mkdtemp(prefix="ferretdb-pushdown-")
    db = "pushdown_check_" + str(os.getpid())
    proc, client = start(ferretdb, work, pg_url)
    failures = []

    def expect(ok, what):
        print(("ok      " if ok else "FAILED  ") + what)
        if not ok:
            failures.append(what)

    try:
        # _ids whose JSON text has escapes or non-ASCII: the SQL compares JSON text.
        odd = ['a"b', "a\\b", "<&>", "a/b", "é ü 日本 🦀", "tab\there", "\x01\x1f", "\u2028", ""]
        oid = ObjectId(bytes.fromhex("65a1b2c3d4e5f60718293a4b"))
        docs = [{"_id": f"u{i}", "version": i % 7, "n": i} for i in range(3000)]
        docs += [{"_id": s, "version": 1, "n": -1} for s in odd]
        docs.append({"_id": oid, "version": 1, "n": -2})
        docs.append({"_id": 42, "version": 1, "n": 42})
        for i in range(0, len(docs), 500):
            client.command(db, {"insert": "c", "documents": docs[i : i + 500]})

        filters = {
            "{_id}": {"_id": "u1234"},
            "{_id, version}": {"_id": "u1234", "version": 1234 % 7},
            "{version, _id}": {"version": 1234 % 7, "_id": "u1234"},
            "{_id: {$eq}}": {"_id": {"$eq": "u1234"}},
        }
        for name, flt in filters.items():
            res = client.command(db, {"explain": {"find": "c", "filter": flt}})
            if name == "{_id: {$eq}}" and not pg_url:
                continue  # SQLite pushes down only {_id: <value>}: not checked
            expect(res.get("filterPushdown") is True, f"find {name}: filterPushdown")
            expect(uses_index(res, pg_url), f"find {name}: the plan uses the _id index")

        def find(flt):
            res = client.command(db, {"find": "c", "filter": flt, "batchSize": 10000})
            return sorted(d["n"] for d in res["cursor"]["firstBatch"])

        # The pushdown only preselects: the whole filter still decides.
        expect(find({"_id": "u1234"}) == [1234], "find {_id} returns the document")
        expect(find({"_id": "u1234", "version": 1234 % 7}) == [1234], "find {_id, version}")
        expect(find({"_id": "u1234", "version": 99}) == [], "find {_id, wrong version}")
        expect(find({"_id": "u1234", "n": {"$gt": 5000}}) == [], "find {_id, n: {$gt}}")
        expect(find({"_id": "nope", "version": 1}) == [], "find {unknown _id, version}")
        expect(find({"_id": 42, "version": 1}) == [42], "find {numeric _id, version}")
        expect(
            find({"_id": "u1", "$or": [{"version": 1}, {"n": 7}]}) == [1],
            "find {_id, $or}",
        )
        for s in odd:
            expect(find({"_id": s}) == [-1], f"find {{_id: {s!r}}}")
            expect(find({"_id": s, "version": 1}) == [-1], f"find {{_id: {s!r}, version}}")
        expect(find({"_id": oid}) == [-2], "find {_id: ObjectId}")
        expect(find({"_id": oid, "version": 1}) == [-2], "find {_id: ObjectId, version}")
        res = client.command(db, {"explain": {"find": "c", "filter": {"_id": oid, "version": 1}}})
        expect(uses_index(res, pg_url), "find {_id: ObjectId, version}: the plan uses the _id index")

        res = client.command(
            db,
            {
                "update": "c",
                "updates": [
                    {"q": {"_id": "u5", "version": 5}, "u": {"$set": {"version": 6}}},
                    {"q": {"_id": "u6", "version": 0}, "u": {"$set": {"version": 7}}},
                ],
            },
        )
        expect(res.get("n") == 1 and res.get("nModified") == 1, "update by {_id, version}")
        expect(find({"_id": "u5", "version": 6}) == [5], "the update is visible")
        res = client.command(
            db, {"delete": "c", "deletes": [{"q": {"_id": "u7", "version": 0}, "limit": 1}]}
        )
        expect(res.get("n") == 1 and find({"_id": "u7"}) == [], "delete by {_id, version}")
        res = client.command(db, {"count": "c", "query": {}})
        expect(res.get("n") == len(docs) - 1, "nothing else was touched")
    finally:
        try:
            client.command(db, {"dropDatabase": 1}, check=False)
        except OSError:
            pass
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)

    if failures:
        sys.exit(f"{len(failures)} check(s) failed: {ferretdb} does not serve finds by _id from its index")
    print(f"{ferretdb}: finds by _id use the _id index")


if __name__ == "__main__":
    main()
