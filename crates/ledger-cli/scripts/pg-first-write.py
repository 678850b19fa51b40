#!/usr/bin/env python3
"""First write after a restart of `ledger serve --store postgres://…` for a partner with a
long history (BENCHMARKS.md, "Scale out"): what a node pays for a partner's state when it
comes up, with and without snapshots on the store.

    crates/ledger-cli/scripts/pg-first-write.py LEDGER_BINARY POSTGRES_URL [HISTORY_LINES]

One partner with 100 customers; HISTORY_LINES billing lines (default 100,000) in batches of
1,000 over six months, each closed once its lines are in (as `ledger bench ingest` does);
then SIGTERM, a restart on the same store, and the first one-line batch into an open month,
timed from the client, and a second one (the state then cached) for reference. Everything
runs in a schema made for the run (and its read models' schema), dropped after it.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

TOKEN = "bench-admin-token"
MASTER_KEY = "bench-master-key-0123456789abcdef0123456789abcdef"
MONTHS = ["2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06"]


def start(binary, data, store):
    env = dict(os.environ, LEDGER_ADMIN_TOKEN=TOKEN, LEDGER_STORE=store, LEDGER_MASTER_KEY=MASTER_KEY)
    env.pop("LEDGER_READMODELS", None)
    child = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", "--data", data], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in child.stdout:
        if line.startswith("ledger listening on "):
            return child, line.strip()[len("ledger listening on "):]
    raise SystemExit("the server ended before it printed its address")


def post(base, path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"X-Auth-Token": TOKEN, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read() or b"null")


def line(n, month):
    return {"record_id": f"L{n:09}", "customer_id": f"BC{n % 100}", "product": "ECS",
            "amount": f"{10 + n % 900}.{n % 100:02}", "currency": "CNY",
            "consumed_at": f"{month}-10T02:00:00Z", "settled_at": f"{month}-11T02:00:00Z"}


def batch(base, records):
    t = time.monotonic()
    answer = post(base, "/v1/consumption", {"records": records})
    elapsed = time.monotonic() - t
    stored = sum(1 for r in answer["results"] if r["status"] == "stored")
    assert stored == len(records), answer["results"][:3]
    return elapsed * 1000


def main():
    binary, url = sys.argv[1], sys.argv[2]
    history = int(sys.argv[3]) if len(sys.argv) > 3 else 100_000
    schema = f"bench_first_write_{os.getpid()}"
    store = f"{url}{'&' if '?' in url else '?'}schema={schema}"
    data = tempfile.mkdtemp(prefix="ledger-first-write-", dir=os.environ.get("TMPDIR"))
    try:
        child, base = start(binary, data, store)
        post(base, "/v1/policies", {"effective_month": "2026-01", "currency": "CNY",
                                    "rates": [{"product": "ECS", "rate": "0.05"}]})
        post(base, "/v1/partners", {"partner_id": "B0", "name": "Bench 0", "kind": "solution_provider"})
        for c in range(100):
            post(base, "/v1/customers", {"customer_id": f"BC{c}", "partner_id": "B0",
                                         "association_type": "referral", "effective_at": "2025-12-01T00:00:00Z"})
        n, per_month, t = 0, history // len(MONTHS), time.monotonic()
        for month in MONTHS:
            end = n + per_month
            while n < end:
                take = min(1000, end - n)
                batch(base, [line(k, month) for k in range(n, n + take)])
                n += take
            post(base, f"/v1/incentive-months/B0/{month}/close", None)
        fill = time.monotonic() - t
        time.sleep(2)  # snapshots are saved off the writes' path
        child.send_signal(signal.SIGTERM)
        child.wait()
        restarted = time.monotonic()
        child, base = start(binary, data, store)
        up = (time.monotonic() - restarted) * 1000
        first = batch(base, [line(n, "2026-11")])
        second = batch(base, [line(n + 1, "2026-11")])
        child.send_signal(signal.SIGTERM)
        child.wait()
        print(f"history {n} lines (filled in {fill:.1f} s); restart -> listening {up:.0f} ms; "
              f"first write after restart {first:.1f} ms; second write {second:.1f} ms")
    finally:
        shutil.rmtree(data, ignore_errors=True)
        subprocess.run(["psql", url, "-q", "-c", "SET client_min_messages = warning", "-c", f'DROP SCHEMA IF EXISTS "{schema}" CASCADE; '
                        f'DROP SCHEMA IF EXISTS "{schema}_readmodels" CASCADE'], check=False)


if __name__ == "__main__":
    main()
