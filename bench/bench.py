#!/usr/bin/env python3
"""Side-by-side benchmark of patroni-rs and Python Patroni (issue #10). Driven by bench/run.sh; run as root.

One *pass* = fresh etcd + a fresh 3-member cluster of one implementation, then, in order:
bootstrap -> switchover -> PostgreSQL crash on the primary -> [footprint] -> [REST] -> graceful stop of the
primary's agent (agent restarted, waits for 3 streaming again) -> node death. Each scenario appends one JSON line
to the results file; `bench.py report FILE...` prints the markdown tables.
"""
import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
VENV = os.environ.get("BENCH_VENV", "/tmp/pyp-bench")
RS_BIN = os.environ.get("BENCH_RS_BIN", f"{REPO}/target/release")
PG_BIN = sorted(d for d in (f"/usr/lib/postgresql/{v}/bin" for v in os.listdir("/usr/lib/postgresql")))[-1]
ETCD_PORT = int(os.environ.get("BENCH_ETCD_PORT", "23791"))
PG_BASE = int(os.environ.get("BENCH_PG_BASE", "25430"))
API_BASE = int(os.environ.get("BENCH_API_BASE", "28000"))
PROFILES = {"fast": dict(ttl=20, loop_wait=2, retry_timeout=3), "default": dict(ttl=30, loop_wait=10, retry_timeout=10)}
NAMES = ["pg1", "pg2", "pg3"]


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def http_get(port, path, timeout=1.0):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, body
    except Exception:
        return None, b""


def api_port(name):
    return API_BASE + NAMES.index(name) + 1


def pg_port(name):
    return PG_BASE + NAMES.index(name) + 1


def loadavg():
    return float(open("/proc/loadavg").read().split()[0])


def busy():
    return subprocess.run(["pgrep", "-x", "cargo"], capture_output=True).returncode == 0 or \
        subprocess.run(["pgrep", "-x", "rustc"], capture_output=True).returncode == 0


def wait_quiet(max_wait):
    t = time.time()
    while time.time() - t < max_wait:
        if loadavg() < 1.0 and not busy():
            break
        time.sleep(5)
    return dict(load1=loadavg(), compiling=busy(), waited=round(time.time() - t))


class Cluster:
    def __init__(self, impl, profile, workdir, sync_mode="off", strict=False):
        self.impl, self.profile, self.dir = impl, profile, workdir
        self.sync_mode, self.strict = sync_mode, strict
        self.procs = {}  # name -> Popen (runuser wrapper)
        self.etcd = None

    def agent_cmd(self, name):
        if self.impl == "rs":
            return [f"{self.dir}/bin/patroni", f"{self.dir}/{name}.yml"]
        return [f"{VENV}/bin/patroni", f"{self.dir}/{name}.yml"]

    def ctl_cmd(self):
        if self.impl == "rs":
            return [f"{self.dir}/bin/patronictl", "-c", f"{self.dir}/pg1.yml"]
        return [f"{VENV}/bin/patronictl", "-c", f"{self.dir}/pg1.yml"]

    def setup(self):
        # other processes on the machine (test suites) listen on loopback ports too: wait for ours to be free
        import socket
        for port in [ETCD_PORT, ETCD_PORT + 1] + [api_port(n) for n in NAMES] + [pg_port(n) for n in NAMES]:
            for _ in range(60):
                sock = socket.socket()
                # as etcd, PostgreSQL and both agents do: TIME_WAIT leftovers do not block, listeners do
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(("127.0.0.1", port))
                    break
                except OSError:
                    log(f"port {port} is busy, waiting")
                    time.sleep(1)
                finally:
                    sock.close()
            else:
                raise RuntimeError(f"port {port} stayed busy")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(f"{self.dir}/bin")
        if self.impl == "rs":
            for b in ("patroni", "patronictl"):
                shutil.copy(f"{RS_BIN}/{b}", f"{self.dir}/bin/{b}")
        p = PROFILES[self.profile]
        # synchronous_mode as the dynamic configuration spells it (bench --sync-mode, --strict)
        sync = {"off": "", "on": "\n    synchronous_mode: true", "quorum": "\n    synchronous_mode: quorum"}[self.sync_mode]
        if self.strict:
            sync += "\n    synchronous_mode_strict: true"
        for name in NAMES:
            with open(f"{self.dir}/{name}.yml", "w") as f:
                f.write(f"""scope: bench
name: {name}
restapi:
  listen: 127.0.0.1:{api_port(name)}
  connect_address: 127.0.0.1:{api_port(name)}
etcd3:
  hosts: 127.0.0.1:{ETCD_PORT}
bootstrap:
  dcs:
    ttl: {p['ttl']}
    loop_wait: {p['loop_wait']}
    retry_timeout: {p['retry_timeout']}
    maximum_lag_on_failover: 1048576{sync}
    postgresql:
      use_pg_rewind: true
      parameters:
        wal_log_hints: "on"
  initdb:
  - encoding: UTF8
  - data-checksums
postgresql:
  listen: 127.0.0.1:{pg_port(name)}
  connect_address: 127.0.0.1:{pg_port(name)}
  data_dir: {self.dir}/data_{name}
  bin_dir: {PG_BIN}
  pgpass: {self.dir}/pgpass_{name}
  authentication:
    superuser: {{username: postgres, password: postgres}}
    replication: {{username: replicator, password: replicator}}
  parameters:
    unix_socket_directories: {self.dir}
  pg_hba:
  - local all all trust
  - host all all 127.0.0.1/32 md5
  - host replication replicator 127.0.0.1/32 md5
""")
        subprocess.run(["chown", "-R", "postgres:", self.dir], check=True)
        os.chmod(self.dir, 0o755)
        edir = f"{self.dir}/etcd"
        self.etcd = subprocess.Popen(
            ["/usr/bin/etcd", "--name", "bench", "--data-dir", edir,
             "--listen-client-urls", f"http://127.0.0.1:{ETCD_PORT}",
             "--advertise-client-urls", f"http://127.0.0.1:{ETCD_PORT}",
             "--listen-peer-urls", f"http://127.0.0.1:{ETCD_PORT + 1}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{ETCD_PORT + 1}",
             "--initial-cluster", f"bench=http://127.0.0.1:{ETCD_PORT + 1}"],
            stdout=open(f"{self.dir}/etcd.log", "w"), stderr=subprocess.STDOUT)
        for _ in range(100):
            if http_get(ETCD_PORT, "/health")[0] == 200:
                return
            time.sleep(0.1)
        raise RuntimeError("etcd did not start")

    def start_agent(self, name):
        cmd = " ".join(self.agent_cmd(name))
        if os.path.exists(f"{self.dir}/{name}.pid"):
            os.unlink(f"{self.dir}/{name}.pid")
        self.procs[name] = subprocess.Popen(
            ["runuser", "-u", "postgres", "--", "sh", "-c", f"echo $$ > {self.dir}/{name}.pid; exec {cmd}"],
            stdout=open(f"{self.dir}/{name}.log", "a"), stderr=subprocess.STDOUT)

    def agent_pid(self, name):
        for _ in range(50):
            try:
                return int(open(f"{self.dir}/{name}.pid").read())
            except Exception:
                time.sleep(0.05)
        raise RuntimeError("no pid file")

    def postmaster_pid(self, name):
        return int(open(f"{self.dir}/data_{name}/postmaster.pid").readline())

    def state(self):
        """(primary name or None or "MANY", set of the other members whose /patroni says streaming)."""
        primary, streaming = None, set()
        for n in NAMES:
            if http_get(api_port(n), "/primary", 0.5)[0] == 200:
                primary = n if primary is None else "MANY"
            st, body = http_get(api_port(n), "/patroni", 0.5)
            if st == 200:
                try:
                    if json.loads(body).get("replication_state") == "streaming":
                        streaming.add(n)
                except Exception:
                    pass
        return primary, streaming - {primary}

    def wait_healthy(self, timeout):
        t = time.time()
        while time.time() - t < timeout:
            p, s = self.state()
            if p and p != "MANY" and len(s) == 2:
                return p
            time.sleep(0.1)
        return None

    def teardown(self):
        for n, p in self.procs.items():
            if p.poll() is None:
                try:
                    os.kill(self.agent_pid(n), signal.SIGTERM)
                except Exception:
                    pass
        t = time.time()
        for n, p in self.procs.items():
            try:
                p.wait(max(1, 20 - (time.time() - t)))
            except subprocess.TimeoutExpired:
                try:
                    os.kill(self.agent_pid(n), signal.SIGKILL)
                except Exception:
                    pass
                p.wait()
        for n in NAMES:
            d = f"{self.dir}/data_{n}"
            if os.path.exists(f"{d}/postmaster.pid"):
                subprocess.run(["runuser", "-u", "postgres", "--", f"{PG_BIN}/pg_ctl", "stop", "-m", "immediate",
                                "-D", d], capture_output=True)
        if self.etcd:
            self.etcd.terminate()
            self.etcd.wait()

    def members_arg(self):
        return ",".join(f"{n}=127.0.0.1:{api_port(n)}/127.0.0.1:{pg_port(n)}" for n in NAMES)


def etcd_counters():
    st, body = http_get(ETCD_PORT, "/metrics", 2)
    out = {}
    for line in body.decode().splitlines():
        m = re.match(r'grpc_server_(started|handled)_total\{([^}]*)\} ([0-9.e+]+)', line)
        if m:
            lab = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
            if m.group(1) == "handled":
                continue
            out[f"{lab.get('grpc_service', '').split('.')[-1]}.{lab.get('grpc_method')}"] = \
                out.get(f"{lab.get('grpc_service', '').split('.')[-1]}.{lab.get('grpc_method')}", 0) + float(m.group(3))
    return out


def cpu_secs(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def sched_ns(pid):
    """CPU time of every thread of pid in ns (schedstat: finer than the 10 ms ticks of /proc/PID/stat)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(open(f"/proc/{pid}/task/{tid}/schedstat").read().split()[0])
        except (OSError, ValueError):
            pass
    return total


def pss_kb(pid):
    for line in open(f"/proc/{pid}/smaps_rollup"):
        if line.startswith("Pss:"):
            return int(line.split()[1])


def rss_kb(pid, field="VmRSS"):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])


def analyze(path, t0, other_than=None, old_leader=None):
    oks, fails, leader = [], [], []
    for line in open(path):
        parts = line.split()
        t = float(parts[0])
        if parts[1] == "ok":
            oks.append((t, parts[2]))
        elif parts[1] == "fail":
            fails.append(t)
        elif parts[1] == "leader":
            leader.append((t, parts[2]))
    # a write that completes just after t0 was in flight before it: the outage starts at the first failure
    f1 = next((t for t in fails if t > t0), None)
    start = t0 if f1 is None else f1
    first = next((t for t, n in oks if t > start and (other_than is None or n != other_than)), None)
    res = dict(writes_s=None if first is None else round(first - t0, 3))
    if first is not None:
        before = [t for t, _ in oks if t <= t0]
        seq = ([before[-1]] if before else []) + [t for t, _ in oks if t0 < t <= first]
        res["no_write_window_s"] = round(max((b - a for a, b in zip(seq, seq[1:])), default=0), 3)
        res["failed_writes"] = sum(1 for t in fails if t0 <= t <= first)
        if old_leader:
            gone = next((t for t, v in leader if t > t0 and v != old_leader), None)
            if gone is not None:
                res["leader_key_changed_s"] = round(gone - t0, 3)
                res["key_to_writes_s"] = round(first - gone, 3)
    return res


def probe_scenario(cl, name, action, other_than=None, key=False, timeout=120):
    plog = f"{cl.dir}/probe-{name}.log"
    probe = subprocess.Popen([f"{VENV}/bin/python", f"{HERE}/probe.py", "--members", cl.members_arg(),
                              "--etcd", f"http://127.0.0.1:{ETCD_PORT}", "--out", plog])
    time.sleep(2.0)
    old = cl.state()[0]
    t0 = time.time()
    extra = action() or {}
    deadline = t0 + timeout
    while time.time() < deadline:
        r = analyze(plog, t0, other_than)
        if r["writes_s"] is not None and (r.get("failed_writes") or time.time() > t0 + 5):
            break
        time.sleep(0.2)
    time.sleep(1.0)
    probe.send_signal(signal.SIGTERM)
    probe.wait()
    res = analyze(plog, t0, other_than, old if key else None)
    res.update(extra)
    return res


def run_pass(args, rep, out):
    cl = Cluster(args.impl, args.profile, f"/tmp/pbench/{args.impl}-{args.profile}-{rep}", args.sync_mode, args.strict)
    quiet = wait_quiet(args.max_wait)
    base = dict(impl=args.impl, profile=args.profile, rep=rep, started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                **quiet)
    if args.sync_mode != "off" or args.strict:
        # passes of a synchronous mode are reported apart (older result lines have neither field: asynchronous)
        base.update(sync_mode=args.sync_mode, strict=args.strict)
    log(f"pass {args.impl}/{args.profile} #{rep} sync {args.sync_mode}{' strict' if args.strict else ''}, load {quiet}")

    def emit(scenario, res):
        res = dict(base, scenario=scenario, load_now=loadavg(), **res)
        log(json.dumps(res))
        out.write(json.dumps(res) + "\n")
        out.flush()

    try:
        cl.setup()
        t0 = time.time()
        for n in NAMES:
            cl.start_agent(n)
        primary = cl.wait_healthy(180)
        emit("bootstrap", dict(all_streaming_s=None if primary is None else round(time.time() - t0, 3)))
        if primary is None:
            return
        time.sleep(3)

        if not args.only_footprint:
            # switchovers to a named candidate (--switchovers N: N in a row, each to the next member in turn, so
            # that former primaries, rewound or not, become candidates too)
            for k in range(args.switchovers):
                cand = [n for n in NAMES if n != primary][k % 2]
                def switchover():
                    t = time.time()
                    r = subprocess.run(cl.ctl_cmd() + ["switchover", "--leader", primary, "--candidate", cand, "--force"],
                                       capture_output=True, text=True)
                    return dict(command_s=round(time.time() - t, 3), rc=r.returncode, nth=k + 1)
                emit("switchover", probe_scenario(cl, f"switchover{k + 1}", switchover, other_than=primary))
                primary = cl.wait_healthy(90)
                if primary is None:
                    emit("switchover-recovery", dict(error="not healthy after 90 s"))
                    return
                time.sleep(3)

            # PostgreSQL crash on the primary, agent alive
            def crash():
                # the postmaster and its children, as an OOM kill or a machine-level crash of PostgreSQL would:
                # killing the postmaster alone leaves its backends serving the probe's open connection
                pm = cl.postmaster_pid(primary)
                kids = subprocess.run(["pgrep", "-P", str(pm)], capture_output=True, text=True).stdout.split()
                os.kill(pm, signal.SIGKILL)
                for k in kids:
                    try:
                        os.kill(int(k), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            emit("pg_crash", probe_scenario(cl, "pgcrash", crash))
            primary = cl.wait_healthy(90)
            if primary is None:
                emit("pg_crash-recovery", dict(error="not healthy after 90 s"))
                return
            if args.only_switchover:
                return

        if args.footprint or args.only_footprint:
            time.sleep(args.settle)
            pids = {n: cl.agent_pid(n) for n in NAMES}
            s0 = {n: sched_ns(p) for n, p in pids.items()}
            c0, e0, t = {n: cpu_secs(p) for n, p in pids.items()}, etcd_counters(), time.time()
            time.sleep(args.idle_secs)
            c1, e1, dt = {n: cpu_secs(p) for n, p in pids.items()}, etcd_counters(), time.time() - t
            s1 = {n: sched_ns(p) for n, p in pids.items()}
            calls = {k: v - e0.get(k, 0) for k, v in e1.items() if v - e0.get(k, 0) > 0}
            total = sum(calls.values())
            emit("footprint", dict(idle_s=round(dt, 1), idle_before_s=args.settle,
                                   rss_mb={n: round(rss_kb(p) / 1024, 1) for n, p in pids.items()},
                                   pss_mb={n: round(pss_kb(p) / 1024, 1) for n, p in pids.items()},
                                   cpu_ms_per_min_schedstat={n: round((s1[n] - s0[n]) / 1e6 * 60 / dt, 1) for n in NAMES},
                                   rss_anon_mb={n: round(rss_kb(p, "RssAnon") / 1024, 1) for n, p in pids.items()},
                                   rss_file_mb={n: round(rss_kb(p, "RssFile") / 1024, 1) for n, p in pids.items()},
                                   cpu_s_per_min={n: round((c1[n] - c0[n]) * 60 / dt, 3) for n in NAMES},
                                   dcs_calls_per_agent_min=round(total * 60 / dt / 3, 1), dcs_calls=calls))
        if args.only_footprint:
            return
        if args.rest:
            replica = [n for n in NAMES if n != primary][0]
            rest = {}
            for port, path in ((api_port(primary), "/primary"), (api_port(replica), "/replica?lag=1MB"),
                               (api_port(primary), "/patroni")):
                # the invocation of crates/api/bench/wrk.sh, plus --latency for the p99
                r = subprocess.run(["wrk", "-t2", "-c32", f"-d{args.rest_secs}s", "--latency",
                                    f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True).stdout
                rps = re.search(r"Requests/sec:\s+([0-9.]+)", r)
                p99 = re.search(r"\s99%\s+([0-9.]+)(us|ms|s)", r)
                errs = re.search(r"Socket errors: (.*)", r)
                p99ms = None
                if p99:
                    p99ms = float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
                rest[path] = dict(rps=float(rps.group(1)) if rps else None, p99_ms=p99ms,
                                  socket_errors=errs.group(1) if errs else None)
            emit("rest", dict(wrk=f"-t2 -c32 -d{args.rest_secs}s", **rest))
            primary = cl.wait_healthy(60)

        # graceful stop of the primary's agent
        def graceful():
            os.kill(cl.agent_pid(primary), signal.SIGTERM)
        old = primary
        emit("graceful_stop", probe_scenario(cl, "graceful", graceful, other_than=old))
        cl.procs[old].wait(60)
        t = time.time()
        cl.start_agent(old)
        primary = cl.wait_healthy(120)
        emit("rejoin", dict(rejoin_s=None if primary is None else round(time.time() - t, 3)))
        if primary is None:
            return
        time.sleep(3)

        # node death: SIGKILL the agent, immediate stop of its PostgreSQL, at a random phase of the HA loop
        # (with --random-phase; the leader key's remaining lifetime depends on it)
        if args.random_phase:
            time.sleep(random.uniform(0, PROFILES[args.profile]["loop_wait"]))
        def death():
            os.kill(cl.agent_pid(primary), signal.SIGKILL)
            subprocess.run(["runuser", "-u", "postgres", "--", f"{PG_BIN}/pg_ctl", "stop", "-m", "immediate",
                            "-D", f"{cl.dir}/data_{primary}"], capture_output=True)
        emit("node_death", probe_scenario(cl, "death", death, other_than=primary, key=True))
    finally:
        cl.teardown()


def report(files):
    rows = [json.loads(l) for f in files for l in open(f) if l.strip()]
    metrics = [("bootstrap", "all_streaming_s", "bootstrap → all 3 streaming (s)"),
               ("node_death", "writes_s", "node death → writes on a new primary (s)"),
               ("node_death", "leader_key_changed_s", "  of which: kill → leader key expired/changed (s)"),
               ("node_death", "key_to_writes_s", "  of which: leader key expired/changed → writes (s)"),
               ("node_death", "failed_writes", "node death: failed probe writes"),
               ("graceful_stop", "writes_s", "graceful stop (SIGTERM) of the primary's agent → writes (s)"),
               ("graceful_stop", "failed_writes", "graceful stop: failed probe writes"),
               ("rejoin", "rejoin_s", "stopped agent restarted → 3 streaming again (s)"),
               ("switchover", "writes_s", "switchover command → writes on the candidate (s)"),
               ("switchover", "no_write_window_s", "switchover: no-write window (s)"),
               ("switchover", "failed_writes", "switchover: failed probe writes"),
               ("switchover", "command_s", "switchover: patronictl command duration (s)"),
               ("pg_crash", "writes_s", "PostgreSQL killed on the primary → writes (s)"),
               ("pg_crash", "failed_writes", "PostgreSQL crash: failed probe writes")]
    modes = sorted({(r.get("sync_mode", "off"), r.get("strict", False)) for r in rows})
    for profile, (mode, strict) in [(p, m) for p in ("fast", "default") for m in modes]:
        prow = [r for r in rows if r["profile"] == profile and (r.get("sync_mode", "off"), r.get("strict", False)) == (mode, strict)]
        if not prow:
            continue
        p = PROFILES[profile]
        sync = "" if (mode, strict) == ("off", False) else f", synchronous_mode `{mode}`{' + strict' if strict else ''}"
        print(f"\n### Profile `{profile}`: ttl {p['ttl']} / loop_wait {p['loop_wait']} / retry_timeout {p['retry_timeout']}{sync}\n")
        print("| metric | patroni-rs min / **median** / max (n) | Python Patroni min / **median** / max (n) | ratio rs/py (medians) |")
        print("|---|---|---|---|")

        def stat(impl, sc, key, sub=None):
            vals = []
            for r in prow:
                if r["impl"] == impl and r["scenario"] == sc and r.get(key) is not None:
                    v = r[key]
                    if sub is not None:
                        v = v.get(sub) if isinstance(v, dict) else None
                    if isinstance(v, dict):
                        vals.extend(v.values())
                    elif v is not None:
                        vals.append(v)
            return vals

        def fmt(v):
            if not v:
                return "—"
            f = lambda x: f"{x:,.3g}" if abs(x) < 1000 else f"{x:,.0f}"
            return f"{f(min(v))} / **{f(statistics.median(v))}** / {f(max(v))} ({len(v)})"

        def line(label, sc, key, sub=None):
            a, b = stat("rs", sc, key, sub), stat("py", sc, key, sub)
            ratio = "—"
            if a and b and statistics.median(b):
                ratio = f"{statistics.median(a) / statistics.median(b):.2f}"
            print(f"| {label} | {fmt(a)} | {fmt(b)} | {ratio} |")

        for sc, key, label in metrics:
            line(label, sc, key)
        line("agent RSS after idle (MB, each agent)", "footprint", "rss_mb")
        line("  of which anonymous (heap, stacks) (MB)", "footprint", "rss_anon_mb")
        line("  of which file-backed (binary, libraries) (MB)", "footprint", "rss_file_mb")
        line("agent PSS after idle (MB; the 3 agents share the binary's pages)", "footprint", "pss_mb")
        line("agent CPU seconds per minute idle (each agent, 10 ms ticks)", "footprint", "cpu_s_per_min")
        line("agent CPU ms per minute idle (each agent, schedstat)", "footprint", "cpu_ms_per_min_schedstat")
        line("etcd gRPC calls per agent per minute idle", "footprint", "dcs_calls_per_agent_min")
        for path in ("/primary", "/replica?lag=1MB", "/patroni"):
            line(f"REST `{path}` req/s (wrk -t2 -c32)", "rest", path, "rps")
            line(f"REST `{path}` p99 latency (ms)", "rest", path, "p99_ms")
        loads = [r["load1"] for r in prow]
        print(f"\nLoad (1-min average) when passes started: {min(loads):.2f}–{max(loads):.2f}; "
              f"passes that started while cargo/rustc ran: {sum(1 for r in prow if r['scenario'] == 'bootstrap' and r['compiling'])}"
              f" of {sum(1 for r in prow if r['scenario'] == 'bootstrap')}.")
        for r in prow:
            if r["scenario"] == "footprint":
                print(f"\n`{r['impl']}` pass {r['rep']} etcd calls in {r['idle_s']} s idle (3 agents): "
                      + ", ".join(f"{k} {v:g}" for k, v in sorted(r["dcs_calls"].items())))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--impl", choices=["rs", "py"], required=True)
    r.add_argument("--profile", choices=list(PROFILES), default="fast")
    r.add_argument("--rep", type=int, default=1)
    r.add_argument("--out", required=True)
    r.add_argument("--footprint", action="store_true")
    r.add_argument("--settle", type=int, default=20, help="idle seconds before the 60 s footprint window")
    r.add_argument("--idle-secs", type=int, default=60, help="length of the footprint window")
    r.add_argument("--only-footprint", action="store_true", help="bootstrap, footprint, stop")
    r.add_argument("--random-phase", action="store_true", help="node death at a random point of the HA loop")
    r.add_argument("--rest", action="store_true")
    r.add_argument("--rest-secs", type=int, default=5)
    r.add_argument("--sync-mode", choices=["off", "on", "quorum"], default="off",
                   help="synchronous_mode of the cluster (bootstrap.dcs)")
    r.add_argument("--strict", action="store_true", help="synchronous_mode_strict: true")
    r.add_argument("--switchovers", type=int, default=1, help="switchovers in a row")
    r.add_argument("--only-switchover", action="store_true",
                   help="bootstrap, switchover, PostgreSQL crash, stop (the synchronous-mode figures)")
    r.add_argument("--max-wait", type=int, default=int(os.environ.get("BENCH_MAX_WAIT", "120")),
                   help="longest wait for a quiet machine before a pass")
    rp = sub.add_parser("report")
    rp.add_argument("files", nargs="+")
    a = ap.parse_args()
    if a.cmd == "report":
        report(a.files)
    else:
        with open(a.out, "a") as out:
            run_pass(a, a.rep, out)


if __name__ == "__main__":
    main()
