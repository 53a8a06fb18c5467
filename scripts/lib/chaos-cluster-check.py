"""The cluster profile's checks of scripts/chaos --cluster.

Usage: chaos-cluster-check.py OUT_DIR "ROWS DISTINCT UNPUBLISHED" PROMETHEUS_URL LOAD_T0

OUT_DIR holds jsz.json (a node's /jsz?consumers=true after the run),
writes.jsonl (the load test's write log) and faults.jsonl. ROWS, DISTINCT and
UNPUBLISHED count the outbox's rows, their distinct event ids and those not
yet published. LOAD_T0 is when the load started (Unix seconds).

Prints one line per check, "ok ..." or "FAIL ...":
  - the stream holds exactly as many messages as the outbox has events, all
    published: no event lost on the way, none stored twice;
  - every notification-service instance applied events, none more than
    MAX_SHARE of them (Prometheus: increase of sync_events_total, applied);
  - user-service acknowledged writes in every second of each NATS leader
    kill (the window: from the kill until everything was ready again, at
    least WINDOW_S seconds; the writes wait in the outbox, never on NATS).
Exits 1 if any failed.
"""

import collections
import json
import math
import sys
import time
import urllib.parse
import urllib.request

MAX_SHARE = 0.75
WINDOW_S = 10
LEADER_KILLS = ("kill_stream_leader", "kill_consumer_leader", "kill_meta_leader")
FAILED = []


def verdict(ok, text):
    print(("ok " if ok else "FAIL ") + text)
    if not ok:
        FAILED.append(text)


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def stream_messages(jsz):
    for account in jsz.get("account_details") or []:
        for stream in account.get("stream_detail") or []:
            if stream.get("name") == "USER_EVENTS":
                return stream.get("state", {}).get("messages")
    return None


def check_stream(out, rows):
    try:
        with open(f"{out}/jsz.json", encoding="utf-8") as f:
            messages = stream_messages(json.load(f))
        total, distinct, unpublished = (int(n) for n in rows.split())
    except (OSError, ValueError) as e:
        verdict(False, f"stream against outbox: cannot read them ({e}; outbox: {rows!r})")
        return
    ok = messages == total == distinct and unpublished == 0
    verdict(ok, f"the stream holds {messages} messages for {total} outbox events "
                f"({distinct} distinct event ids, {unpublished} unpublished)")


def check_shares(prometheus, load_t0):
    window = math.ceil(time.time() - load_t0) + 15
    query = ('sum by (instance) (increase(sync_events_total'
             f'{{service="notification-service",outcome="applied"}}[{window}s]))')
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            result = json.load(response)["data"]["result"]
        targets_url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode(
            {"query": 'up{service="notification-service"}'})
        with urllib.request.urlopen(targets_url, timeout=30) as response:
            instances = {r["metric"]["instance"] for r in json.load(response)["data"]["result"]}
    except (OSError, ValueError, KeyError) as e:
        verdict(False, f"events applied per instance: Prometheus did not answer ({e})")
        return
    applied = {r["metric"].get("instance", "?"): float(r["value"][1]) for r in result}
    for instance in instances:
        applied.setdefault(instance, 0.0)
    total = sum(applied.values())
    shares = {i: (n / total if total else 0.0) for i, n in applied.items()}
    text = ", ".join(f"{i} {applied[i]:.0f} ({shares[i]:.0%})" for i in sorted(applied))
    ok = len(applied) >= 2 and total > 0 and all(0 < s <= MAX_SHARE for s in shares.values())
    verdict(ok, f"events applied per notification-service instance: {text} "
                f"(each must apply some, none more than {MAX_SHARE:.0%})")


def check_writes_through_kills(out):
    try:
        writes = read_lines(f"{out}/writes.jsonl")
        faults = read_lines(f"{out}/faults.jsonl")
    except (OSError, ValueError) as e:
        verdict(False, f"writes during leader kills: cannot read the logs ({e})")
        return
    per_second = collections.Counter(
        math.floor(w["at_s"]) for w in writes if w.get("status") == "ok")
    kills = [f for f in faults if f["kind"] in LEADER_KILLS]
    if not kills:
        return
    for fault in kills:
        start = math.floor(fault["at_s"])
        length = max(WINDOW_S, math.ceil(fault["recovered_s"] - fault["at_s"]))
        counts = [per_second[s] for s in range(start, start + length)]
        quiet = [start + i for i, n in enumerate(counts) if n == 0]
        verdict(not quiet,
                f"{fault['kind']} ({fault.get('node', '?')}) at {fault['at_s']} s: writes acknowledged "
                f"in every second of {length} (fewest in a second: {min(counts)})"
                + (f"; none in seconds {quiet}" if quiet else ""))


def main():
    out, rows, prometheus, load_t0 = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    check_stream(out, rows)
    check_shares(prometheus, load_t0)
    check_writes_through_kills(out)
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
