"""The set check of scripts/chaos: every acknowledged write against the copy.

Usage: chaos-check.py WRITE_LOG FAULTS USERS_URL NOTIFICATIONS_URL
                      SINCE_LOAD_END_S TIMEOUT_S OUT_JSON

WRITE_LOG is the load test's LOADTEST_WRITE_LOG (one JSON line per write
attempt: status ok / rejected / refused / unknown). FAULTS has one JSON line
per injected fault. SINCE_LOAD_END_S is how long ago the load's last writes
were sent; `converged_after_s` is timed from then.

First waits (up to TIMEOUT_S) until the copy equals the source, using only the
original contract's fields. Then, for every acknowledged write of user u:
  lost   the source or the copy has no user u, or the source holds an older
         state than the one acknowledged (the write was lost before the copy);
  stale  the copy differs from the source, or is older than the write;
  ok     otherwise: the copy holds this write or a later one.
A write whose answer never came (unknown) must be in both stores or in neither:
a created user's email, an update's email on its user. A mismatch counts as
`unknown_mismatched`.

Prints a summary, writes OUT_JSON, exits 1 when lost, stale or
unknown_mismatched is not zero, or when the stores could not be read at all
within TIMEOUT_S (a clear line, never a traceback).
"""

import json
import sys
import time
import urllib.request
from datetime import datetime


def when(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def get_json(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def state(record):
    return (record["name"], record["email"], when(record["updated_at"]))


def snapshot(users_url, notifications_url):
    source = {u["id"]: state(u) for u in get_json(users_url + "/users")}
    copy = {n["user_id"]: state(n) for n in get_json(notifications_url + "/notifications")}
    return source, copy


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    log_path, faults_path, users_url, notifications_url = sys.argv[1:5]
    since_load_end, timeout, out_path = float(sys.argv[5]), float(sys.argv[6]), sys.argv[7]
    attempts = read_lines(log_path)
    faults = read_lines(faults_path)

    started = time.monotonic()
    source = copy = None
    last_error = None
    while True:
        converged = False
        try:
            source, copy = snapshot(users_url, notifications_url)
            converged = source == copy
        except (OSError, ValueError, KeyError, TypeError) as e:
            # A store that cannot be read (down, a 5xx, a body that is not
            # the contract's) is retried until the timeout, then a FAIL.
            last_error = f"{type(e).__name__}: {e}"
            print(f"cannot read the stores yet: {last_error}", file=sys.stderr)
        if converged or time.monotonic() - started > timeout:
            break
        time.sleep(1)
    converged_after = round(time.monotonic() - started, 1)
    if source is None:
        with open(out_path, "w", encoding="utf-8") as f:
            json.dump({"error": f"could not read the stores for {timeout:.0f} s: {last_error}",
                       "faults": faults}, f, indent=2)
            f.write("\n")
        print(f"FAIL could not read the stores in {timeout:.0f} s: {last_error}")
        sys.exit(1)

    counts = {"ok": 0, "lost": 0, "stale": 0}
    examples = []
    acknowledged = [a for a in attempts if a["status"] == "ok"]
    for a in acknowledged:
        ack = a["acknowledged"]
        uid, at = ack["id"], when(ack["updated_at"])
        s, c = source.get(uid), copy.get(uid)
        if s is None or s[2] < at or c is None:
            verdict = "lost"
        elif c != s or c[2] < at:
            verdict = "stale"
        else:
            verdict = "ok"
        counts[verdict] += 1
        if verdict != "ok" and len(examples) < 10:
            examples.append({"verdict": verdict, "write": a, "source": str(s), "copy": str(c)})

    unknown = [a for a in attempts if a["status"] == "unknown"]
    source_emails = {s[1] for s in source.values()}
    copy_emails = {c[1] for c in copy.values()}
    mismatched = 0
    for a in unknown:
        if a["op"] == "create":
            in_source, in_copy = a["email"] in source_emails, a["email"] in copy_emails
        else:
            s, c = source.get(a["id"]), copy.get(a["id"])
            in_source = s is not None and s[1] == a["email"]
            in_copy = c is not None and c[1] == a["email"]
        if in_source != in_copy:
            mismatched += 1
            if len(examples) < 10:
                examples.append({"verdict": "unknown_mismatched", "write": a})

    # The outbox's promise: while NATS (or MongoDB) is down, user-service
    # still acknowledges writes, and they reach the copy after the outage
    # (the verdicts above). An outage with no acknowledged write in it did
    # not test that.
    during_outages = []
    for f in faults:
        if f["kind"] in ("nats_down", "mongodb_down") and "down_s" in f:
            start, end = f["at_s"] + 2, f["at_s"] + f["down_s"] - 2
            inside = [a for a in acknowledged if start <= a["at_s"] <= end]
            during_outages.append({"kind": f["kind"], "at_s": f["at_s"], "acknowledged": len(inside)})
    quiet_outages = [o for o in during_outages if o["acknowledged"] == 0]

    by_status = {}
    for a in attempts:
        by_status[a["status"]] = by_status.get(a["status"], 0) + 1
    missing = len(source.keys() - copy.keys())
    extra = len(copy.keys() - source.keys())
    stale_users = sum(1 for k in source.keys() & copy.keys() if source[k] != copy[k])
    summary = {
        "acknowledged_writes": len(acknowledged),
        "ok": counts["ok"],
        "lost": counts["lost"],
        "stale": counts["stale"],
        "unknown": len(unknown),
        "unknown_mismatched": mismatched,
        "rejected": by_status.get("rejected", 0),
        "refused": by_status.get("refused", 0),
        "faults": faults,
        "acknowledged_during_outages": during_outages,
        "converged": source == copy,
        "converged_after_s": round(since_load_end + converged_after, 1),
        "consistency": {"checked": len(source), "missing": missing, "stale": stale_users, "extra": extra},
        "examples": examples,
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    for o in during_outages:
        print(f"{o['kind']} at {o['at_s']} s: {o['acknowledged']} writes acknowledged while it was down")
    print(
        f"acknowledged {summary['acknowledged_writes']}: ok {summary['ok']}, lost {summary['lost']}, "
        f"stale {summary['stale']}; unknown {summary['unknown']} (mismatched {mismatched}); "
        f"rejected {summary['rejected']}, refused {summary['refused']}; "
        f"converged {summary['converged']} {summary['converged_after_s']} s after the load; "
        f"users {len(source)} (missing {missing}, stale {stale_users}, extra {extra})"
    )
    bad = summary["lost"] or summary["stale"] or mismatched or not summary["converged"] or quiet_outages
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
