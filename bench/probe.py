#!/usr/bin/env python3
"""Write probe: inserts one row every 10 ms through the current primary, found as HAProxy would, by asking
`GET /primary` of every member's REST API (discovery runs whenever there is no connection or a write failed).

    probe.py --members pg1=127.0.0.1:28001/127.0.0.1:25431,pg2=... --etcd http://127.0.0.1:23791 \
             --leader-key /service/bench/leader --out probe.log

Writes one line per attempt, "<unix time> ok|fail <member or ->", and one line per observed change of the DCS
leader key, "<unix time> leader <value or ->" (polled every 20 ms through etcd's v3 JSON gateway). Runs until
SIGTERM/SIGINT. Needs psycopg2 (the bench venv has psycopg2-binary).
"""
import argparse
import base64
import http.client
import json
import signal
import sys
import threading
import time

import psycopg2

stop = threading.Event()


def primary_of(members):
    for name, (api, _pg) in members.items():
        host, port = api.split(":")
        try:
            c = http.client.HTTPConnection(host, int(port), timeout=0.3)
            c.request("GET", "/primary")
            r = c.getresponse()
            r.read()
            c.close()
            if r.status == 200:
                return name
        except Exception:
            pass
    return None


def writer(members, out, lock):
    conn = None
    cur_name = None
    while not stop.is_set():
        start = time.time()
        ok = False
        try:
            if conn is None:
                cur_name = primary_of(members)
                if cur_name is None:
                    raise RuntimeError("no primary")
                host, port = members[cur_name][1].split(":")
                conn = psycopg2.connect(host=host, port=int(port), user="postgres", password="postgres",
                                        dbname="postgres", connect_timeout=1,
                                        options="-c statement_timeout=1000")
                conn.autocommit = True
                with conn.cursor() as c:
                    c.execute("CREATE TABLE IF NOT EXISTS bench_probe (t timestamptz)")
            with conn.cursor() as c:
                c.execute("INSERT INTO bench_probe VALUES (now())")
            ok = True
        except Exception:
            if conn is not None:
                try:
                    conn.close()
                except Exception:
                    pass
            conn = None
        with lock:
            out.write("%.3f %s %s\n" % (time.time(), "ok" if ok else "fail", cur_name if ok else "-"))
            out.flush()
        delay = 0.01 - (time.time() - start)
        if delay > 0:
            time.sleep(delay)


def leader_watch(etcd, key, out, lock):
    host, port = etcd.split("//")[1].split(":")
    body = json.dumps({"key": base64.b64encode(key.encode()).decode()})
    last = None
    conn = None
    while not stop.is_set():
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, int(port), timeout=0.5)
            conn.request("POST", "/v3/kv/range", body, {"Content-Type": "application/json"})
            kvs = json.loads(conn.getresponse().read()).get("kvs") or []
            value = base64.b64decode(kvs[0]["value"]).decode() if kvs else "-"
            if value != last:
                with lock:
                    out.write("%.3f leader %s\n" % (time.time(), value))
                    out.flush()
                last = value
        except Exception:
            conn = None
        time.sleep(0.02)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--members", required=True)
    ap.add_argument("--etcd")
    ap.add_argument("--leader-key", default="/service/bench/leader")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    members = {}
    for m in a.members.split(","):
        name, addrs = m.split("=")
        api, pg = addrs.split("/")
        members[name] = (api, pg)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    lock = threading.Lock()
    with open(a.out, "a") as out:
        threads = [threading.Thread(target=writer, args=(members, out, lock))]
        if a.etcd:
            threads.append(threading.Thread(target=leader_watch, args=(a.etcd, a.leader_key, out, lock)))
        for t in threads:
            t.start()
        while not stop.is_set():
            time.sleep(0.1)
        for t in threads:
            t.join()


if __name__ == "__main__":
    sys.exit(main())
