"""`omnihubctl lag` and omnihub_consumer_lag while the sync role is stopped
and after its restart, on the local log and on Kafka (mock cluster): lag
grows, the status goes STALL then STOP, and back to OK once drained."""
import concurrent.futures
import json
import time

from conftest import ctl
from test_kafka import KafkaMock, msg


STATUS_EXIT = {"OK": 0, "WARN": 1, "STALL": 2, "STOP": 2}  # documented in omnihubctl lag --help
# the STOP threshold the test asks for (default 60 s; unit test_log covers it)
STOP_S = 15


def lag(d, samples=2, interval=300, group="omnihub-sync"):
    """omnihubctl lag --json for GROUP, with D's configuration; its exit
    status must be that of the worst partition."""
    out = ctl("lag", "-c", d.config_path, "--group", group, "--json", "--samples",
              samples, "--interval", interval, "--stop-after", STOP_S)
    assert out.returncode in (0, 1, 2), out.stderr
    groups = json.loads(out.stdout)["groups"]
    assert [g["group"] for g in groups] == [group]
    assert groups[0]["topic"] == "events"
    parts = groups[0]["partitions"]
    assert out.returncode == max(STATUS_EXIT[p["status"]] for p in parts), (out.returncode, parts)
    return parts


def total(parts):
    return sum(p["lag"] for p in parts)


def statuses(parts):
    """Status of the partitions that hold records (others stay OK)."""
    return {p["status"] for p in parts if p["end"] > 0}


def lag_rows(d, n):
    """omnihub_consumer_lag of omnihub-sync per partition on D's /metrics,
    once all N partitions are there."""
    rows = [float(line.rsplit(" ", 1)[1]) for line in d.metrics_text().splitlines()
            if line.startswith('omnihub_consumer_lag{group="omnihub-sync",topic="events"')]
    return rows if len(rows) == n else None


def wait_for(pred, timeout, step=0.5):
    deadline = time.time() + timeout
    while True:
        value = pred()
        if value or time.time() > deadline:
            return value
        time.sleep(step)


def scenario(omnihub, tmp_path, kind):
    """Gateway and sync as separate processes sharing a data directory
    (the local log and the SQLite store, or Kafka and the SQLite store)."""
    cfg = {"data_dir": str(tmp_path / kind / "shared")}
    mock = None
    if kind == "kafka":
        mock = KafkaMock(tmp_path, partitions=2)
        cfg.update({"log.backend": "kafka", "kafka.brokers": mock.bootstrap})
    try:
        gw = omnihub(cfg, args=["--role", "gateway"], name=f"{kind}-gw")
        sync = omnihub(cfg, args=["--role", "sync"], name=f"{kind}-sync")
        report = {}
        conv = None
        for i in range(10):
            conv = gw.post_inbound(msg(f"a{i}", "lag")).json()["conversation_id"]
        gw.wait_history(conv, 10)
        parts = wait_for(lambda: (lambda p: p if total(p) == 0 else None)(lag(gw)), 15)
        assert parts and statuses(parts) == {"OK"}, parts
        assert sum(max(p["committed"], 0) for p in parts) == 10

        sync.stop()
        for i in range(5):
            gw.post_inbound(msg(f"b{i}", "lag"))
        first = lag(gw, samples=1)
        for i in range(10):
            gw.post_inbound(msg(f"c{i}", "lag"))
        stalled = lag(gw)
        report["lag while stopped"] = (total(first), total(stalled))
        assert total(first) == 5 and total(stalled) == 15, (first, stalled)
        assert statuses(stalled) == {"STALL"}, stalled
        # the oldest unread record waits longer than STOP_S: nobody consumes
        t0 = time.time()
        stopped = wait_for(lambda: (lambda p: p if statuses(p) == {"STOP"} else None)(lag(gw)),
                           STOP_S + 30, step=1)
        assert stopped, lag(gw)
        assert total(stopped) == 15
        # time lag: the age of the oldest unconsumed record
        assert max(p["time_lag_s"] for p in stopped) > STOP_S
        assert max(p["waiting_s"] for p in stopped) > STOP_S
        report["STOP after"] = round(time.time() - t0, 1)
        # a group that never committed: its oldest unconsumed record is the
        # first one, posted over STOP_S ago: STOP at once, from one sample
        never = lag(gw, samples=1, group="omnihub-never-joined")
        assert statuses(never) == {"STOP"}, never
        assert sum(p["lag"] for p in never) == 25 and min(
            p["time_lag_s"] for p in never if p["end"] > 0) > STOP_S, never

        sync.start()
        t0 = time.time()
        # its first sample, taken at start-up, shows the backlog (on Kafka the
        # group join takes ~3 s on the mock, so nothing is consumed before it)
        first_rows = wait_for(lambda: lag_rows(sync, len(parts)), 6, step=0.1)
        report["metric at restart"] = sum(first_rows)
        if kind == "kafka":
            assert sum(first_rows) == 15, first_rows
            assert sync.metric("omnihub_consumer_lag_seconds", {"group": "omnihub-sync"}) > STOP_S
        events = gw.wait_history(conv, 25, timeout=30)
        assert [e["seq"] for e in events] == list(range(1, 26))
        drained = wait_for(lambda: (lambda p: p if total(p) == 0 else None)(lag(gw)), 15)
        assert drained and statuses(drained) == {"OK"}, lag(gw)
        assert sum(max(p["committed"], 0) for p in drained) == 25
        report["drained after restart"] = round(time.time() - t0, 1)
        # the sync process exports its group's lag, sampled every 5 s
        assert wait_for(lambda: (lambda r: r is not None and sum(r) == 0)(
            lag_rows(sync, len(parts))), 12, step=0.2), sync.metrics_text()
        assert sync.metric("omnihub_consumer_lag_seconds", {"group": "omnihub-sync"}) == 0
        return report
    finally:
        if mock:
            for d in (locals().get("sync"), locals().get("gw")):
                if d and d.proc:
                    d.stop()
            mock.stop()


def test_lag_grows_stops_and_drains_on_local_and_kafka(omnihub, tmp_path):
    # both backends at once: each waits the STOP_S after which STOP is due
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = {k: pool.submit(scenario, omnihub, tmp_path, k) for k in ("local", "kafka")}
        reports = {k: f.result() for k, f in futures.items()}
    print()
    for k, r in reports.items():
        print(k, r)
