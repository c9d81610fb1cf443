#!/usr/bin/python3
"""Contacts' cost (docs/performance.md): the CPU contact resolution takes per
inbound message, against the daemon's whole CPU for the same ingest, and the
latency of merges. Starts omnihubd (local log, SQLite store, role all,
contacts on) and posts N signed POST /v1/inbound, CONV_EVERY messages per
conversation, each conversation a new person with a verified phone (every
new conversation is resolved: looked up, created, linked), waits until all
are materialized, then reads the process's CPU time (/proc/PID/stat) and
omnihub_contacts_link_cpu_seconds (the sync thread's CPU inside linking) from
/metrics. Then M merges (each of two people into a third, sequentially) and
their unmerges, timing each request: p50/p99/max.

CONTACTS "off" runs the same ingest with contacts.enabled false (no
linking, no merges; waits for omnihub_sync_materialized_total instead): its
daemon CPU per message against a run with contacts on is what linking
costs the whole daemon, commits included (the link metric counts only the
sync thread's CPU inside linking); the sync thread's own CPU per message
(sync_thread_cpu_us_per_message) is the less noisy figure of the two.

usage: contacts_workload.py BUILD_DIR [N] [CONV_EVERY] [M] [on|off]"""
import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

JWT, INBOUND = "perf-jwt-secret", "perf-inbound-secret"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_s(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def sync_cpu_s(pid):
    """CPU time of the sync service's thread (comm oh-sync): materializing
    and linking, commits included, without the other services' noise."""
    for t in Path(f"/proc/{pid}/task").iterdir():
        if (t / "comm").read_text().strip() == "oh-sync":
            f = (t / "stat").read_text().rsplit(")", 1)[1].split()
            return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def metric(s, url, name):
    m = re.search(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+-]+)$", s.get(url + "/metrics").text, re.M)
    return float(m.group(1)) if m else 0.0


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    build = Path(sys.argv[1]).resolve()
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    every = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    m = int(sys.argv[4]) if len(sys.argv) > 4 else 200
    on = (sys.argv[5] if len(sys.argv) > 5 else "on") != "off"
    tmp = Path(tempfile.mkdtemp(prefix="oh-contacts-"))
    port = free_port()
    (tmp / "omnihub.yaml").write_text(
        f"http:\n  listen: 127.0.0.1:{port}\ndata_dir: {tmp}/data\n"
        f"auth:\n  jwt_secret: {JWT}\napi:\n  inbound_secret: {INBOUND}\n"
        f"contacts:\n  enabled: {'true' if on else 'false'}\n  default_region: US\n")
    proc = subprocess.Popen([str(build / "broker" / "omnihubd"), "-c", str(tmp / "omnihub.yaml")],
                            stdout=open(tmp / "omnihubd.log", "wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    s = requests.Session()
    try:
        for _ in range(200):
            try:
                if s.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        token = subprocess.run([str(build / "tools" / "omnihubctl"), "token", "--secret", JWT,
                                "--sub", "agent-1", "--role", "agent"], capture_output=True,
                               text=True, check=True).stdout.strip()
        auth = {"Authorization": "Bearer " + token}
        cpu0, link0 = cpu_s(proc.pid), metric(s, url, "omnihub_contacts_link_cpu_seconds")
        sync0 = sync_cpu_s(proc.pid)
        convs = []
        for i in range(n):
            p = i // every
            body = json.dumps({"channel": "api:shop", "account": "acme",
                               "contact": {"id": f"u{p}", "identifiers": [
                                   {"type": "phone", "value": f"(212) 5{p // 10000 % 100:02d}-{p % 10000:04d}",
                                    "verified": True}]},
                               "message_id": f"m{i}", "text": f"text {i}"}).encode()
            sig = "sha256=" + hmac.new(INBOUND.encode(), body, hashlib.sha256).hexdigest()
            r = s.post(url + "/v1/inbound", data=body, headers={"X-Omnihub-Signature": sig})
            assert r.status_code == 202, r.text
            if i % every == 0:
                convs.append(r.json()["conversation_id"])
        while on and metric(s, url, "omnihub_contacts_links_total") < len(convs):
            time.sleep(0.1)
        while not on and metric(s, url, "omnihub_sync_materialized_total") < n:
            time.sleep(0.1)
        cpu, link = cpu_s(proc.pid) - cpu0, metric(s, url, "omnihub_contacts_link_cpu_seconds") - link0
        sync = sync_cpu_s(proc.pid) - sync0

        def contact_of(conv):
            return s.get(f"{url}/v1/conversations/{conv}", headers=auth).json()["contact_id"]

        lat = {"merge": [], "unmerge": []}
        for k in range(m if on else 0):
            a, b = contact_of(convs[3 * k % len(convs)]), contact_of(convs[(3 * k + 1) % len(convs)])
            t = time.perf_counter()
            r = s.post(f"{url}/v1/contacts/{a}/merge", headers=auth, json={"other": b})
            lat["merge"].append(time.perf_counter() - t)
            assert r.status_code == 200, r.text
            t = time.perf_counter()
            r = s.post(f"{url}/v1/contacts/{a}/unmerge", headers=auth,
                       json={"identifier": {"type": "api:shop", "value": f"u{(3 * k + 1) % len(convs)}"}})
            lat["unmerge"].append(time.perf_counter() - t)
            assert r.status_code == 200, r.text
        print(json.dumps({
            "messages": n, "conversations": len(convs),
            "daemon_cpu_s": round(cpu, 3), "link_cpu_s": round(link, 4),
            "daemon_cpu_us_per_message": round(cpu / n * 1e6, 1),
            "sync_thread_cpu_us_per_message": round(sync / n * 1e6, 1),
            "link_cpu_share": round(link / cpu, 4) if cpu else None,
            "link_cpu_us_per_new_conversation": round(link / len(convs) * 1e6, 1),
            "link_cpu_us_per_message": round(link / n * 1e6, 1),
            **{f"{op}_ms_{q}": round(pct(v, q) * 1000, 1) for op, v in lat.items()
               for q in (50, 99) if v},
            **{f"{op}_ms_max": round(max(v) * 1000, 1) for op, v in lat.items() if v}}))
    finally:
        proc.terminate()
        proc.wait(timeout=60)


if __name__ == "__main__":
    main()
