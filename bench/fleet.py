#!/usr/bin/env python3
"""bench/fleet.py: what sharing policies through etcd costs (issue 15). Run by bench/fleet.sh.

    fleet.py KMSGATE_BIN STUB_BIN WORK_DIR

Loopback only, bounded (about 2 minutes with the defaults). Standard library only: etcd is
driven through its JSON gateway (/v3/kv/txn), the gateways through their admin listeners.

1. Convergence. One etcd (Debian's /usr/bin/etcd), three replicas with [policies.etcd] on
   1,000 seeded instances (each warmed up with a few requests first). For each case, the time
   from sending the write to etcd until every replica enforces it (GET
   /api/v2/instance/policies of a changed instance on each replica shows the new document),
   polled every millisecond, with the revision each replica reports (/policy/revision) polled
   alongside:
     - 1 changed instance (one key, one transaction), ROUNDS times;
     - 1,000 changed instances in one transaction (one watch response), ROUNDS times;
     - 1,000 changed instances written one after another (1,000 transactions, as
       `kmsgate policies import-dir --overwrite` or API traffic does), once; the probe is the
       last one written.
2. The request path, files against etcd. The replicas stop; two gateways start, one with
   policies.dir and one with [policies.etcd], holding the same 1,001 documents, pinned to
   SERVER_CPU, in front of the upstream stub. wrk (on LOADGEN_CPU) drives each for DURATION
   seconds per cell, alternating files/etcd REPS times, with two requests: a wrap the policies
   allow (forwarded, 200) and a standard-key create keyCreateImportAccess refuses (409). Per
   cell: requests/s, and the gateway's CPU time per request (utime + stime from
   /proc/PID/stat over the cell, divided by the requests wrk completed). Medians reported.

Knobs (environment): INSTANCES (1000), ROUNDS (5), DURATION (5), REPS (3), CONNS (16),
THREADS (2), LOADGEN_CPU (0), SERVER_CPU (1), HEARTBEAT (2s: policies.etcd.heartbeat).
"""

import base64
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

KMSGATE, STUB, WORK = sys.argv[1:4]
INSTANCES = int(os.environ.get("INSTANCES", 1000))
ROUNDS = int(os.environ.get("ROUNDS", 5))
DURATION = int(os.environ.get("DURATION", 5))
REPS = int(os.environ.get("REPS", 3))
CONNS = int(os.environ.get("CONNS", 16))
THREADS = int(os.environ.get("THREADS", 2))
LOADGEN_CPU = os.environ.get("LOADGEN_CPU", "0")
SERVER_CPU = os.environ.get("SERVER_CPU", "1")
HEARTBEAT = os.environ.get("HEARTBEAT", "2s")
PREFIX = "/bench/policies/"
TARGET = "a1b2c3d4-0000-4000-8000-000000000001"
KEY_ID = "12e8c9c2-a162-472d-b7d6-8b9a86b815a6"
TICKS = os.sysconf("SC_CLK_TCK")

procs = []


def log(message):
    print(f"[fleet {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(args, name, cpu=None):
    if cpu is not None:
        args = ["taskset", "-c", cpu] + args
    out = open(os.path.join(WORK, f"{name}.log"), "w")
    p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "warn"})
    procs.append(p)
    return p


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def http(method, url, body=None, headers=None, timeout=5):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            return res.status, res.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_for(what, check, limit=30.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"fleet.py: {what}: not within {limit}s (logs in {WORK})")


# --- policies ----------------------------------------------------------------------------------

def instance(n):
    return f"00000000-0000-4000-8000-{n:012d}"


def document(create_standard_key, dual_auth):
    resources = [{"policy_type": "keyCreateImportAccess",
                  "policy_data": {"enabled": True, "attributes": {"create_standard_key": create_standard_key}}}]
    if dual_auth:
        resources.append({"policy_type": "dualAuthDelete", "policy_data": {"enabled": True}})
    return json.dumps({"metadata": {"collectionType": "application/vnd.ibm.kms.policy+json",
                                    "collectionTotal": len(resources)},
                       "resources": resources}).encode()


def seed_documents():
    """INSTANCES instances and the target: no standard keys."""
    docs = {instance(n): document(False, False) for n in range(1, INSTANCES + 1)}
    docs[TARGET] = document(False, False)
    return docs


# --- etcd --------------------------------------------------------------------------------------

class Etcd:
    def __init__(self):
        self.client = free_port()
        peer = free_port()
        url = f"http://127.0.0.1:{self.client}"
        self.url = url
        self.proc = spawn(["/usr/bin/etcd", "--name", "bench", "--data-dir", os.path.join(WORK, "etcd"),
                           "--listen-client-urls", url, "--advertise-client-urls", url,
                           "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                           "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                           "--initial-cluster", f"bench=http://127.0.0.1:{peer}",
                           "--max-txn-ops", str(INSTANCES + 10), "--log-level", "error"], "etcd")
        wait_for("etcd up", lambda: http("GET", f"{url}/health")[0] == 200)

    def put_all(self, docs):
        """One transaction putting every (key, value); returns its revision."""
        b64 = lambda b: base64.b64encode(b).decode()
        success = [{"request_put": {"key": b64((PREFIX + k).encode()), "value": b64(v)}} for k, v in docs.items()]
        status, body = http("POST", f"{self.url}/v3/kv/txn", json.dumps({"success": success}).encode(),
                            {"Content-Type": "application/json"})
        if status != 200:
            raise SystemExit(f"etcd txn: {status} {body[:200]!r}")
        return int(json.loads(body)["header"]["revision"])


# --- gateways ----------------------------------------------------------------------------------

class Gateway:
    def __init__(self, name, source, stub, cpu=None):
        self.public, self.admin = free_port(), free_port()
        config = os.path.join(WORK, f"{name}.toml")
        with open(config, "w") as f:
            f.write(f"""[listen]
public = "127.0.0.1:{self.public}"
admin = "127.0.0.1:{self.admin}"
[upstream]
url = "{stub}"
[log]
access_log = false
level = "warn"
[shutdown]
grace_period = "0s"
{source}""")
        self.proc = spawn([KMSGATE, "run", "--config", config], name, cpu)
        wait_for(f"{name} ready", lambda: http("GET", f"http://127.0.0.1:{self.admin}/readyz")[0] == 200)
        # Warm up: the first request on a fresh listener is no sample.
        for _ in range(3):
            self.policies(TARGET)
            self.revision()

    def revision(self):
        status, body = http("GET", f"http://127.0.0.1:{self.admin}/policy/revision")
        return json.loads(body)["revision"] if status == 200 else -1

    def policies(self, inst):
        status, body = http("GET", f"http://127.0.0.1:{self.public}/api/v2/instance/policies",
                            headers={"bluemix-instance": inst})
        assert status == 200, (status, body)
        return json.loads(body)

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS


def etcd_source(etcd):
    return f"""[policies]
api = "own"
[policies.etcd]
endpoints = ["{etcd.url}"]
prefix = "{PREFIX}"
heartbeat = "{HEARTBEAT}"
"""


def has_dual_auth(replica, inst):
    return any(p["policy_type"] == "dualAuthDelete" for p in replica.policies(inst)["resources"])


def converge(write, replicas, probe, dual_auth):
    """Runs write() (it returns the last revision written), then polls every replica every
    millisecond until it enforces the change (the probe instance's GET shows dual_auth) and
    reports the revision. Returns (seconds until all enforce, seconds the writes took, how
    often a replica reported the revision while a GET right after did not show the change
    yet: the snapshot is swapped before the revision is published, so this must stay 0)."""
    start = time.perf_counter()
    revision = write()
    written = time.perf_counter() - start
    enforced, reported, inversions = {}, {}, 0
    while len(enforced) < len(replicas) or len(reported) < len(replicas):
        for i, r in enumerate(replicas):
            if i not in reported and r.revision() >= revision:
                reported[i] = time.perf_counter() - start
            if i not in enforced:
                if has_dual_auth(r, probe) == dual_auth:
                    enforced[i] = time.perf_counter() - start
                elif i in reported:
                    inversions += 1
        if time.perf_counter() - start > 10:
            raise SystemExit(f"fleet.py: no convergence within 10 s: {enforced} {reported}")
        time.sleep(0.001)
    return max(enforced.values()), written, inversions


def ms(seconds):
    return f"{seconds * 1000:.1f} ms"



def convergence(etcd, stub_url):
    replicas = [Gateway(f"replica{i + 1}", etcd_source(etcd), stub_url) for i in range(3)]
    cases = []
    one = []
    for rnd in range(ROUNDS):
        inst = instance(1 + rnd)
        one.append(converge(lambda: etcd.put_all({inst: document(False, True)}), replicas, inst, True))
    cases.append(("1 instance, 1 transaction", one))
    bulk = []
    for rnd in range(ROUNDS):
        flag = rnd % 2 == 0
        docs = {instance(n): document(False, flag) for n in range(1, INSTANCES + 1)}
        bulk.append(converge(lambda: etcd.put_all(docs), replicas, instance(INSTANCES), flag))
    cases.append((f"{INSTANCES:,} instances, 1 transaction", bulk))

    # One key per transaction, back to back: the replicas follow a stream of revisions. The
    # last instance written is the probe.
    flag = ROUNDS % 2 == 0  # the opposite of the last bulk round's

    def one_by_one():
        last = 0
        for n in range(1, INSTANCES + 1):
            last = etcd.put_all({instance(n): document(False, flag)})
        return last

    cases.append((f"{INSTANCES:,} instances, {INSTANCES:,} transactions",
                  [converge(one_by_one, replicas, instance(INSTANCES), flag)]))
    revisions = {r.revision() for r in replicas}
    for r in replicas:
        stop(r.proc)
    return cases, revisions


def wrk_script(name, path, content_type, body):
    """A wrk script POSTing body to path for the target instance."""
    script = os.path.join(WORK, f"{name}.lua")
    with open(script, "w") as f:
        f.write(f"""wrk.method = "POST"
wrk.path = "{path}"
wrk.headers["bluemix-instance"] = "{TARGET}"
wrk.headers["Content-Type"] = "{content_type}"
wrk.body = '{body}'
""")
    return script


def request_path(etcd, stub_url):
    docs = seed_documents()
    pdir = os.path.join(WORK, "policies")
    os.makedirs(pdir, exist_ok=True)
    for inst, doc in docs.items():
        with open(os.path.join(pdir, f"{inst}.json"), "wb") as f:
            f.write(doc)
    etcd.put_all(docs)
    gateways = {
        "files": Gateway("files", f'[policies]\napi = "own"\ndir = "{pdir}"\n', stub_url, SERVER_CPU),
        "etcd": Gateway("etcd", etcd_source(etcd), stub_url, SERVER_CPU),
    }
    create = ('{"metadata":{"collectionType":"application/vnd.ibm.kms.key+json","collectionTotal":1},'
              '"resources":[{"type":"application/vnd.ibm.kms.key+json","name":"k","extractable":true}]}')
    scripts = {
        "wrap (forwarded, 200)": wrk_script("wrap", f"/api/v2/keys/{KEY_ID}/actions/wrap",
                                           "application/vnd.ibm.kms.key_action_wrap+json",
                                           '{"plaintext":"dGhpcyBpcyBhIHRlc3Q="}'),
        "standard-key create (refused, 409)": wrk_script("create", "/api/v2/keys",
                                                        "application/vnd.ibm.kms.key+json", create),
    }
    # Both gateways answer the same way before anything is measured.
    for name, gw in gateways.items():
        assert [p["policy_type"] for p in gw.policies(TARGET)["resources"]] == ["keyCreateImportAccess"], name
    results = {(s, g): [] for s in scripts for g in gateways}
    for rep in range(REPS):
        for scenario, script in scripts.items():
            order = list(gateways.items()) if rep % 2 == 0 else list(reversed(gateways.items()))
            for name, gw in order:
                before = gw.cpu_seconds()
                out = subprocess.run(["taskset", "-c", LOADGEN_CPU, "wrk", "-t", str(THREADS), "-c", str(CONNS),
                                      "-d", f"{DURATION}s", "-s", script, f"http://127.0.0.1:{gw.public}"],
                                     capture_output=True, text=True, check=True).stdout
                cpu = gw.cpu_seconds() - before
                requests = int(next(l for l in out.splitlines() if "requests in" in l).split()[0])
                non2xx = next((int(l.split()[-1]) for l in out.splitlines() if "Non-2xx" in l), 0)
                expected_non2xx = requests if "refused" in scenario else 0
                if non2xx != expected_non2xx:
                    raise SystemExit(f"{name} {scenario}: {non2xx} non-2xx of {requests}\n{out}")
                results[(scenario, name)].append((requests / DURATION, cpu / requests * 1e6))
                log(f"rep {rep + 1} {scenario} {name}: {requests / DURATION:,.0f} req/s, "
                    f"{cpu / requests * 1e6:.1f} µs CPU/request")
    for gw in gateways.values():
        stop(gw.proc)
    return scripts, gateways, results


def main():
    stub_port = free_port()
    spawn([STUB, f"127.0.0.1:{stub_port}"], "stub", SERVER_CPU)
    stub_url = f"http://127.0.0.1:{stub_port}"
    wait_for("stub up", lambda: socket.create_connection(("127.0.0.1", stub_port), 1).close() is None)
    etcd = Etcd()
    etcd.put_all(seed_documents())
    log(f"convergence: 3 replicas, {INSTANCES:,} instances seeded, {ROUNDS} rounds")
    cases, revisions = convergence(etcd, stub_url)
    log(f"request path: files vs etcd, {REPS} × {DURATION}s per cell, {CONNS} connections")
    scripts, gateways, results = request_path(etcd, stub_url)

    print(f"## Convergence: 3 replicas, 1 etcd, loopback ({os.cpu_count()} CPUs)\n")
    print("From sending the write to etcd until all three replicas enforce it (a GET of the "
          "changed instance's policies on each replica shows the new document), polled every "
          "millisecond; the writes' own time included:\n")
    print("| change | samples | the writes took (median) | all enforce: min | median | max "
          "| median after the last write returned | revision before the change |")
    print("|---|---|---|---|---|---|---|---|")
    for name, samples in cases:
        took = [s[0] for s in samples]
        print(f"| {name} | {len(samples)} | {ms(statistics.median(s[1] for s in samples))} "
              f"| {ms(min(took))} | {ms(statistics.median(took))} | {ms(max(took))} "
              f"| {ms(statistics.median(s[0] - s[1] for s in samples))} | {sum(s[2] for s in samples)} |")
    print(f"\n\"Revision before the change\": how often a replica reported the write's revision "
          f"(/policy/revision) while a GET sent right after did not show the change yet. The "
          f"replicas ended on revisions {sorted(revisions)}.\n")
    print("## Request path: policies from files vs from etcd (same documents, same harness)\n")
    print(f"wrk -t{THREADS} -c{CONNS}, {DURATION}s per cell, {REPS} interleaved repetitions, "
          f"medians; gateway on CPU {SERVER_CPU}, wrk on CPU {LOADGEN_CPU}.\n")
    print("| request | source | req/s | CPU µs/request |")
    print("|---|---|---|---|")
    for scenario in scripts:
        for name in gateways:
            cells = results[(scenario, name)]
            print(f"| {scenario} | {name} | {statistics.median(c[0] for c in cells):,.0f} "
                  f"| {statistics.median(c[1] for c in cells):.1f} |")


try:
    main()
finally:
    for p in procs:
        stop(p)
