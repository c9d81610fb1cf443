#!/usr/bin/python3
"""Instructions per ingested message and per agent reply. Runs omnihubd
under callgrind (local log, SQLite store, role all) three times: started
and stopped with no traffic; with N signed POST /v1/inbound (one
conversation per 10 messages) until all are materialized; with those and M
agent replies (api connector, to a local HTTP stand-in answering 200) until
each has its "sent" status. Per message = (run 2 - run 1) / N, per reply =
(run 3 - run 2) / M, from callgrind_annotate's program totals.
(callgrind_control cannot zero a daemon whose threads all sleep in
syscalls where ptrace is restricted, hence three runs.)

usage: callgrind_workload.py BUILD_DIR [N] [M]"""
import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

JWT, INBOUND = "perf-jwt-secret", "perf-inbound-secret"
CHILDREN = []


SENT = []


class Ok(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        SENT.append(1)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *a):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def total(path):
    out = subprocess.run(["callgrind_annotate", str(path)], capture_output=True, text=True,
                         check=True).stdout
    m = re.search(r"^([\d,]+) \(100.0%\)\s+PROGRAM TOTALS", out, re.M)
    return int(m.group(1).replace(",", ""))


def main():
    build = Path(sys.argv[1]).resolve()
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    m = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    t0, t1, t2 = run(build, 0, 0), run(build, n, 0), run(build, n, m)
    print(json.dumps({"build": str(build), "messages": n, "replies": m, "idle": t0,
                      "inbound": t1, "inbound_and_replies": t2,
                      "instructions_per_message": (t1 - t0) // n,
                      "instructions_per_reply": (t2 - t1) // m}))


def run(build, n, m):
    SENT.clear()
    stub = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    tmp = Path(tempfile.mkdtemp(prefix="oh-callgrind-"))
    port = free_port()
    (tmp / "omnihub.yaml").write_text(
        f"http:\n  listen: 127.0.0.1:{port}\ndata_dir: {tmp}/data\n"
        f"auth:\n  jwt_secret: {JWT}\n"
        f"api:\n  inbound_secret: {INBOUND}\n"
        f"  outbound_url: http://127.0.0.1:{stub.server_address[1]}/hook\n")
    out = tmp / "callgrind.out"
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                             str(build / "broker" / "omnihubd"), "-c", str(tmp / "omnihub.yaml")],
                            stdout=open(tmp / "omnihubd.log", "wb"), stderr=subprocess.STDOUT)
    CHILDREN.append(proc)
    url = f"http://127.0.0.1:{port}"
    s = requests.Session()
    for _ in range(600):
        try:
            if s.get(url + "/readyz", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(0.5)
    token = subprocess.run([str(build / "tools" / "omnihubctl"), "token", "--secret", JWT,
                            "--sub", "agent-1", "--role", "agent", "--device", "desk"],
                           capture_output=True, text=True, check=True).stdout.strip()
    convs = []
    for i in range(n):
        body = json.dumps({"channel": "api:shop", "account": "acme",
                           "contact": {"id": f"u{i // 10}"}, "message_id": f"m{i}",
                           "text": f"text {i}"}).encode()
        sig = "sha256=" + hmac.new(INBOUND.encode(), body, hashlib.sha256).hexdigest()
        r = s.post(url + "/v1/inbound", data=body, headers={"X-Omnihub-Signature": sig},
                   timeout=60)
        assert r.status_code == 202, r.text
        if i % 10 == 0:
            convs.append(r.json()["conversation_id"])
    auth = {"Authorization": "Bearer " + token}

    def head(conv):
        r = s.get(f"{url}/v1/conversations/{conv}/events?limit=1", headers=auth, timeout=60)
        return r.json()["head"] if r.status_code == 200 else 0  # 404 until materialized

    while convs and head(convs[-1]) < 10:  # the last conversation's are materialized
        time.sleep(0.2)
    for i in range(m):
        conv = convs[i % len(convs)]
        r = s.post(f"{url}/v1/conversations/{conv}/messages", headers=auth, timeout=60,
                   json={"text": f"reply {i}", "client_msg_id": f"r{i}"})
        assert r.status_code == 202, r.text
    while len(SENT) < m:
        time.sleep(0.5)
    time.sleep(2)
    # every reply has its status: 10 inbound + its replies + their statuses
    for i, conv in enumerate(convs):
        want = 10 + 2 * len(range(i, m, len(convs)))
        while head(conv) < want:
            time.sleep(0.2)
    proc.terminate()
    proc.wait(timeout=600)
    stub.shutdown()
    return total(out)


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in CHILDREN:
            if p.poll() is None:
                p.kill()
