"""/metrics follows the Prometheus conventions: HELP and TYPE on every
family, the shortest number that reads back exactly, build information and
the process metrics every Prometheus client exports."""
import re
import sqlite3
import time

from conftest import INBOUND_SECRET  # noqa: F401  (the daemon fixture signs with it)

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def parse(text):
    helps, types, samples = {}, {}, []
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_ = line[7:].partition(" ")
            helps[name] = help_
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            types[name] = kind
        elif line:
            m = SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            samples.append((m.group(1), m.group(2) or "", m.group(3)))
    return helps, types, samples


def family(name, types):
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and types.get(name[:-len(suffix)]) == "histogram":
            return name[:-len(suffix)]
    return name


def shortest(value):
    """Whole numbers as integers, others the shortest text that reads back."""
    v = float(value)
    if v == int(v) and abs(v) < 2 ** 53:
        return str(int(v))
    for prec in range(1, 18):
        if float("%.*g" % (prec, v)) == v:
            return "%.*g" % (prec, v)
    return value


def test_every_family_has_help_and_type_and_short_numbers(omnihub):
    d = omnihub()
    for i in range(5):
        assert d.post_inbound({"channel": "api:m", "account": "a", "contact": {"id": f"u{i}"},
                               "message_id": f"m{i}", "text": "hi"}).status_code == 202
    d.request("GET", "/v1/conversations")  # a 401, for the error families
    helps, types, samples = parse(d.metrics_text())
    names = {family(n, types) for n, _, _ in samples}
    assert {"omnihub_ingest_total", "omnihub_ingest_seconds", "omnihub_http_requests_total",
            "omnihub_build_info", "process_cpu_seconds_total",
            "process_resident_memory_bytes", "process_open_fds", "process_max_fds",
            "process_start_time_seconds"} <= names, names
    for n in names:
        assert n in types, f"{n} has no TYPE"
        assert helps.get(n) and helps[n] != "(no description)", f"{n} has no HELP"
    for name, labels, value in samples:
        if value in ("+Inf", "-Inf", "NaN"):
            continue
        assert value == shortest(value), f"{name}{labels} {value}: longer than needed"
    build = [s for s in samples if s[0] == "omnihub_build_info"]
    assert len(build) == 1 and 'version="' in build[0][1] and build[0][2] == "1"
    rss = [float(v) for n, _, v in samples if n == "process_resident_memory_bytes"]
    assert rss and rss[0] > 1 << 20
    fds = [float(v) for n, _, v in samples if n == "process_open_fds"]
    assert fds and fds[0] >= 3


def test_sent_messages_count_in_the_ingest_totals(omnihub):
    """Webchat sends (WebSocket and REST) and agents' REST replies are
    ingested events like a webhook's, and are counted alike."""
    d = omnihub()
    conv = d.post_inbound({"channel": "api:m", "account": "a", "contact": {"id": "u1"},
                           "message_id": "m1", "text": "hi"}).json()["conversation_id"]
    before = d.metric("omnihub_ingest_total", {"channel": "api", "result": "accepted"})
    r = d.request("POST", f"/v1/conversations/{conv}/messages",
                  {"text": "reply", "client_msg_id": "r1"}, token=d.agent_token())
    assert r.status_code == 202
    assert d.metric("omnihub_ingest_total", {"channel": "api", "result": "accepted"}) == before + 1
    r = d.request("POST", "/v1/conversations/new/messages", {"text": "hello", "client_msg_id": "c1"},
                  token=d.customer_token("cust-1"))
    assert r.status_code == 202, r.text
    assert d.metric("omnihub_ingest_total", {"channel": "webchat", "result": "accepted"}) == 1


def test_request_counts_carry_method_and_a_bounded_route(omnihub):
    d = omnihub()
    conv = d.post_inbound({"channel": "api:m", "account": "a", "contact": {"id": "u9"},
                           "message_id": "m9", "text": "hi"}).json()["conversation_id"]
    tok = d.agent_token()
    for i in range(3):
        d.request("GET", f"/v1/conversations/{conv}/events", token=tok)
    d.request("GET", "/no/such/path/" + "x" * 50)
    text = d.metrics_text()
    assert ('omnihub_http_requests_total{method="GET",route="/v1/conversations/{id}/events",'
            'status="200"} 3') in text, text
    assert 'method="POST",route="/v1/inbound",status="202"' in text
    assert 'route="other",status="404"' in text
    assert conv not in text and "/no/such" not in text  # ids and paths never become labels


def test_admin_listener_takes_readiness_and_metrics_off_the_public_one(omnihub):
    from conftest import free_port
    import requests
    admin = f"127.0.0.1:{free_port()}"
    d = omnihub({"http.admin_listen": admin})
    assert requests.get(d.url + "/healthz", timeout=5).status_code == 200
    assert requests.get(d.url + "/metrics", timeout=5).status_code == 404
    assert requests.get(d.url + "/readyz", timeout=5).status_code == 404
    ready = requests.get(f"http://{admin}/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert "/" in ready.json()["log"]["bootstrap"]  # the operator sees the path
    assert requests.get(f"http://{admin}/metrics", timeout=5).text.startswith("# HELP")
    assert requests.get(f"http://{admin}/healthz", timeout=5).status_code == 200
    # the admin listener serves operators only
    assert requests.get(f"http://{admin}/v1/conversations", timeout=5).status_code == 404
    assert d.post_inbound({"channel": "api:m", "account": "a", "contact": {"id": "u1"},
                           "message_id": "m1", "text": "hi"}).status_code == 202


def test_public_readiness_shows_no_paths(omnihub):
    import requests
    d = omnihub()
    boot = requests.get(d.url + "/readyz", timeout=5).json()["log"]["bootstrap"]
    assert boot == "log.db", boot


def timeline_length(d):
    with sqlite3.connect(d.data_dir / "log.db") as db:
        [tid] = db.execute("SELECT id FROM topics WHERE name = 'timeline'").fetchone()
        return db.execute(f"SELECT count(*) FROM records_{tid}").fetchone()[0]


def test_lingering_services_take_a_burst_in_few_batches(omnihub):
    """A timeline consumer that caught up waits services.linger_ms after a
    batch before reading again: a burst that arrives meanwhile comes in one
    batch, and each service counts its batches and records."""
    d = omnihub({"services.linger_ms": "1500"})
    kpi = {"service": "kpi"}

    def msg(i):
        return {"channel": "api:shop", "account": "acme", "contact": {"id": f"lc{i % 3}"},
                "message_id": f"lm{i}", "text": "do you ship to Canada?"}

    def settled():
        deadline = time.time() + 30
        while time.time() < deadline:
            n = d.metric("omnihub_service_records_total", kpi)
            if n and n >= timeline_length(d):
                return d.metric("omnihub_service_batches_total", kpi), n
            time.sleep(0.1)
        raise AssertionError("kpi did not read the timeline")

    assert d.post_inbound(msg(0)).status_code == 202
    b0, r0 = settled()
    started = time.time()
    for i in range(1, 21):
        assert d.post_inbound(msg(i)).status_code == 202
    posting = time.time() - started
    b1, r1 = settled()
    assert r1 - r0 >= 20
    # one batch per lingering window the burst spanned
    assert b1 - b0 <= int(posting / 1.5) + 2, (b1 - b0, posting)
