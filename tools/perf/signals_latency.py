#!/usr/bin/python3
"""Latency of a signal from one gateway to another (docs/performance.md,
"Signals across gateways"; the choice in docs/architecture.md). Starts
`omnihubctl kafka-mock` and two gateways on it (`--role gateway`, each its
own SQLite store: signals need none), an agent "watcher" subscribed to "*"
on gateway 1, and toggles the presence of agent "bob" (online/away) N
times at RATE per second:
  local:  bob on gateway 1 (same process, the embedded path),
  kafka:  bob on gateway 2 (signals topic, gateway 2 -> Kafka -> gateway 1),
each sample the time from bob's frame sent to the watcher's presence frame
received. Before that, the CPU an idle gateway on Kafka takes (its
readers poll). Then, for comparison, Redis pub/sub's own transport (PUBLISH ->
a SUBSCRIBEd connection, RESP over loopback, redis-server started here
without persistence) when redis-server is installed: what the Redis
alternative would cost before any gateway work.

usage: signals_latency.py BUILD_DIR [N] [RATE]"""
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import requests
import websockets

SECRET = "signals-latency-secret"
IDLE_S = 10  # the CPU of an idle gateway, signals reader included, over this


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def token(ctl, sub, device):
    out = subprocess.run([ctl, "token", "--secret", SECRET, "--sub", sub, "--role", "agent",
                          "--device", device, "--ttl", "3600"], check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


def gateway(build, tmp, name, bootstrap):
    port = free_port()
    d = os.path.join(tmp, name)
    os.makedirs(d)
    conf = os.path.join(d, "omnihub.yaml")
    with open(conf, "w") as f:
        f.write(f'http:\n  listen: "127.0.0.1:{port}"\ndata_dir: "{d}/data"\n'
                f'auth:\n  jwt_secret: "{SECRET}"\napi:\n  inbound_secret: "x"\n'
                f'log:\n  backend: "kafka"\nkafka:\n  brokers: "{bootstrap}"\n'
                f'routing:\n  enabled: "false"\nsla:\n  enabled: "false"\n')
    log = open(os.path.join(d, "log"), "wb")
    p = subprocess.Popen([os.path.join(build, "broker", "omnihubd"), "-c", conf, "--role",
                          "gateway"], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if requests.get(url + "/readyz", timeout=1).status_code == 200:
                return p, url
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{name} did not start")


def cpu_s(p):
    """User + system CPU seconds of process P so far."""
    with open(f"/proc/{p.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def summary(name, ms):
    return (f"{name:6s} n={len(ms)} p50={pct(ms, 0.5):.2f} ms p90={pct(ms, 0.9):.2f} ms "
            f"p99={pct(ms, 0.99):.2f} ms max={max(ms):.2f} ms")


async def toggles(ctl, watch_url, bob_url, n, rate):
    hdr = {"Authorization": "Bearer " + token(ctl, "watcher", "w")}
    bob_hdr = {"Authorization": "Bearer " + token(ctl, "bob", "laptop")}
    ws_url = watch_url.replace("http", "ws") + "/v1/ws"
    async with websockets.connect(ws_url, extra_headers=hdr) as w, \
            websockets.connect(bob_url.replace("http", "ws") + "/v1/ws",
                               extra_headers=bob_hdr) as bob:
        await w.send(json.dumps({"type": "subscribe", "conversation": "*", "after": 0}))
        while json.loads(await w.recv())["type"] != "subscribed":
            pass
        out = []
        for i in range(n + 1):
            status = "online" if i % 2 == 0 else "away"
            t0 = time.perf_counter()
            await bob.send(json.dumps({"type": "presence", "status": status}))
            while True:
                f = json.loads(await asyncio.wait_for(w.recv(), 10))
                if f.get("type") == "presence" and f["agent"] == "bob" and f["status"] == status:
                    break
            if i:  # the first one also makes bob known
                out.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(1 / rate)
        await bob.send(json.dumps({"type": "presence", "status": "offline"}))
        return out


def resp(*args):
    return b"".join([f"*{len(args)}\r\n".encode()] +
                    [f"${len(a)}\r\n{a}\r\n".encode() for a in map(str, args)])


def redis_pubsub(tmp, n, rate):
    exe = shutil.which("redis-server")
    if not exe:
        return None
    port = free_port()
    p = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                sub = socket.create_connection(("127.0.0.1", port))
                break
            except OSError:
                time.sleep(0.05)
        pub = socket.create_connection(("127.0.0.1", port))
        sub.sendall(resp("SUBSCRIBE", "omnihub.signals"))
        sub.recv(4096)
        out = []
        for i in range(n):
            body = json.dumps({"kind": "presence", "origin": "gw-x", "agent": {
                "id": "bob", "status": "online" if i % 2 else "away"}, "seq": i})
            t0 = time.perf_counter()
            pub.sendall(resp("PUBLISH", "omnihub.signals", body))
            got = b""
            while body.encode() not in got:
                got += sub.recv(65536)
            out.append((time.perf_counter() - t0) * 1000)
            pub.recv(4096)  # the PUBLISH's answer (receivers count)
            time.sleep(1 / rate)
        return out
    finally:
        p.terminate()
        p.wait()


def main():
    build = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    rate = float(sys.argv[3]) if len(sys.argv) > 3 else 20
    ctl = os.path.join(build, "tools", "omnihubctl")
    tmp = tempfile.mkdtemp(prefix="signals-latency-")
    procs = []
    try:
        mock = subprocess.Popen([ctl, "kafka-mock", "--brokers", "1", "--partitions", "3"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        procs.append(mock)
        bootstrap = mock.stdout.readline().strip()
        p1, gw1 = gateway(build, tmp, "gw1", bootstrap)
        p2, gw2 = gateway(build, tmp, "gw2", bootstrap)
        procs += [p1, p2]
        idle0 = cpu_s(p1)
        time.sleep(IDLE_S)
        idle = (cpu_s(p1) - idle0) / IDLE_S
        local = asyncio.run(toggles(ctl, gw1, gw1, n, rate))
        kafka = asyncio.run(toggles(ctl, gw1, gw2, n, rate))
        print(summary("local", local))
        print(summary("kafka", kafka))
        print(f"an idle gateway on Kafka: {idle * 100:.1f} % of a core over {IDLE_S} s")
        redis = redis_pubsub(tmp, n, rate)
        print(summary("redis", redis) if redis else "redis  (redis-server not installed)")
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
