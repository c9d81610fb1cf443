"""The tools tell the truth: --check-config refuses what the daemon would
refuse, a refused start leaves nothing behind, misspelled variables are
named, omnihubctl never reports on a log it made itself (nor on a mock cluster
of its own: it reads the daemon's), every command has
--help, token refuses a --ttl that is not seconds, and tools/dev shows why a build failed."""
import base64
import json
import os
import re
import shutil
import subprocess
import threading
import time

import pytest

from conftest import OMNIHUBCTL, OMNIHUBD, ROOT, ctl, to_yaml

BASE = {"auth.jwt_secret": "s", "http.listen": "127.0.0.1:1"}


def check(tmp_path, config, env=None):
    path = tmp_path / "c.yaml"
    path.write_text(to_yaml(config))
    e = {"PATH": "/usr/bin"}
    e.update(env or {})
    r = subprocess.run([str(OMNIHUBD), "--check-config", "-c", str(path)], capture_output=True,
                       text=True, env=e, timeout=30)
    return r, path


def line_of(text, key):
    """The line (from 1) where to_yaml's nested text gives KEY's value."""
    parts, depth = key.split("."), 0
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith(" " * (2 * depth) + parts[depth] + ":"):
            depth += 1
            if depth == len(parts):
                return n
    raise AssertionError(f"{key} not in {text}")


@pytest.mark.parametrize("config,env,where,words", [
    # what the daemon refused at start while --check-config said 0; WHERE
    # (CONTRACT: "file:line: message"): "line" = FILE:LINE of the key;
    # "near K" = FILE:LINE of K, for a key the file lacks (K requires it, or
    # shares its section; none: line 1); or the variable that set the key
    ({"http.listen": "127.0.0.1:1"}, {}, "near 1", "auth.jwt_secret or auth.jwks_file is required"),
    ({"store.backend": "postgres"}, {}, "near store.backend", "store.postgres.dsn is required"),
    ({"store.backend": "postgress"}, {}, "line", 'unknown backend "postgress"'),
    ({}, {"OMNIHUB_LOG_BACKEND": "kafak"}, "environment OMNIHUB_LOG_BACKEND",
     'unknown backend "kafak"'),
    ({"log.backend": "kafka"}, {}, "near log.backend", "kafka.brokers is required"),
    ({"store.backend": "postgres", "store.postgres.dsn": "host=db secretpw"}, {},
     "line", "store.postgres.dsn: not a libpq connection string"),
    ({"http.listen": "localhost"}, {}, "line", "http.listen must be host:port"),
    ({"http.listen": "127.0.0.1:99999"}, {}, "line", "http.listen must be host:port"),
    ({"whatsapp.app_secret": "a"}, {}, "near whatsapp.app_secret",
     "whatsapp.verify_token is required"),
])
def test_check_config_runs_the_start_up_checks(tmp_path, config, env, where, words):
    cfg = {"auth.jwt_secret": "s", "http.listen": "127.0.0.1:1"}
    if "auth.jwt_secret or" in words:
        del cfg["auth.jwt_secret"]
    cfg.update(config)
    r, path = check(tmp_path, cfg, env)
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert words in line, line
    if where == "line":
        assert re.match(re.escape(str(path)) + r":\d+: ", line), line
    elif where.startswith("near "):
        key = where[5:]
        n = 1 if key == "1" else line_of(path.read_text(), key)
        assert line.startswith(f"{path}:{n}: "), line
    else:
        assert line.startswith(where + ": "), line
    assert "secretpw" not in r.stderr  # a DSN is a secret: never echoed
    # and the daemon refuses the same configuration, creating nothing
    data = tmp_path / "data"
    cfg["data_dir"] = str(data)
    path.write_text(to_yaml(cfg))
    e = {"PATH": "/usr/bin"}
    e.update(env)
    run = subprocess.run([str(OMNIHUBD), "-c", str(path)], capture_output=True, text=True, env=e,
                         timeout=30)
    assert run.returncode == 2 and words in run.stderr, run.stderr
    assert not data.exists(), list(data.iterdir())


def test_check_config_passes_a_complete_configuration(tmp_path):
    r, _ = check(tmp_path, dict(BASE, **{"store.backend": "postgres",
                                         "store.postgres.dsn": "host=db dbname=omnihub"}))
    assert r.returncode == 0, r.stderr


def test_unknown_environment_variables_are_named(omnihub):
    d = omnihub(env={"OMNIHUB_LOG_BACKND": "local", "OMNIHUB_NOT_A_THING": "1"})
    logs = d.logs()
    assert "OMNIHUB_LOG_BACKND is not a configuration variable" in logs
    assert "did you mean OMNIHUB_LOG_BACKEND?" in logs
    assert "OMNIHUB_NOT_A_THING is not a configuration variable" in logs
    # the project's own test variables are not configuration mistakes
    assert "OMNIHUB_BUILD" not in logs


def test_ctl_never_creates_a_log(tmp_path):
    for args in (["lag"], ["lag", "--json"], ["tail", "--from-beginning"]):
        r = subprocess.run([str(OMNIHUBCTL), *args], cwd=tmp_path, capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == (3 if args[0] == "lag" else 1), (args, r.returncode)
        assert "no log at" in r.stderr, r.stderr
        assert list(tmp_path.iterdir()) == [], list(tmp_path.iterdir())
    r = subprocess.run([str(OMNIHUBCTL), "lag", "--samples", "0"], capture_output=True, text=True)
    assert r.returncode == 3


def test_ctl_reads_the_mock_cluster_inside_the_daemon(omnihub, tmp_path):
    """kafka.mock_brokers: the cluster lives inside omnihubd. tail and lag
    -c FILE read that one (the bootstrap list from the daemon's /readyz),
    where they used to start an empty cluster of their own and show nothing;
    with the daemon gone they say why instead."""
    d = omnihub({"log.backend": "kafka", "kafka.mock_brokers": "1", "kafka.partitions": "2",
                 "kafka.topic_prefix": "acme-"})
    texts = [f"mock cluster {i}" for i in range(3)]
    for i, text in enumerate(texts):
        r = d.post_inbound({"channel": "api:shop", "account": "acme", "contact": {"id": "ctl"},
                            "message_id": f"ctl{i}", "text": text})
        assert r.status_code == 202, r.text
    d.wait_history(r.json()["conversation_id"], len(texts))

    tail = subprocess.Popen([str(OMNIHUBCTL), "tail", "-c", str(d.config_path),
                             "--from-beginning"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(tail.stdout), daemon=True)
    reader.start()

    def seen():
        events = [json.loads(line) for line in list(lines)]
        return {e["data"].get("text") for e in events if e["type"] == "omnihub.message.inbound"}

    deadline = time.time() + 20
    while not set(texts) <= seen() and time.time() < deadline and tail.poll() is None:
        time.sleep(0.2)
    tail.terminate()
    _, err = tail.communicate(timeout=20)
    reader.join(timeout=5)
    assert set(texts) <= seen(), (lines, err)
    assert tail.returncode == 0, err

    r = ctl("lag", "-c", d.config_path, "--group", "omnihub-sync", "--json", "--samples", 1,
            "--interval", 0)
    assert r.returncode in (0, 1, 2), r.stderr
    parts = json.loads(r.stdout)["groups"][0]["partitions"]
    assert len(parts) == 2 and sum(p["end"] for p in parts) >= len(texts), parts

    # an explicit OMNIHUB_KAFKA_BROKERS needs no daemon to ask
    boot = d.request("GET", "/readyz").json()["log"]["bootstrap"]
    alone = tmp_path / "alone.yaml"
    alone.write_text(to_yaml({**d.config, "http.listen": "127.0.0.1:1"}))
    r = subprocess.run([str(OMNIHUBCTL), "lag", "-c", str(alone), "--group", "omnihub-sync",
                        "--json", "--samples", "1"], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "OMNIHUB_KAFKA_BROKERS": boot})
    assert r.returncode in (0, 1, 2), r.stderr
    assert sum(p["end"] for p in json.loads(r.stdout)["groups"][0]["partitions"]) >= len(texts)

    d.stop()
    for args, code in ((["tail", "--from-beginning"], 2), (["lag"], 3)):
        r = subprocess.run([str(OMNIHUBCTL), *args, "-c", str(d.config_path)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == code and r.stdout == "", (args, r)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert ("the mock cluster lives inside omnihubd" in r.stderr and
                "OMNIHUB_KAFKA_BROKERS" in r.stderr and d.url + "/readyz" in r.stderr), r.stderr


@pytest.mark.parametrize("cmd", ["normalize", "token", "sign", "tail", "lag", "kafka-mock",
                                 "triage-eval", "triage", "kb-eval", "kb-search"])
def test_every_command_has_help(cmd):
    r = subprocess.run([str(OMNIHUBCTL), cmd, "--help"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 0 and r.stdout.startswith(f"usage: omnihubctl {cmd}"), r
    assert len(r.stdout.splitlines()) >= 3


@pytest.mark.parametrize("ttl", ["abc", "60s", "", "1e3", "99999999999999999999"])
def test_token_refuses_a_ttl_that_is_not_seconds(ttl):
    # once printed a token expiring now (strtol's 0), refused by the daemon as expired
    r = ctl("token", "--secret", "s", "--sub", "u", "--ttl", ttl)
    assert r.returncode == 2 and r.stdout == b"", r
    assert b"--ttl" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_token_ttl_sets_exp():
    for ttl in (90, -60):
        before = int(time.time())
        r = ctl("token", "--secret", "s", "--sub", "u", "--ttl", ttl, check=True)
        body = r.stdout.decode().split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        assert before + ttl <= claims["exp"] <= int(time.time()) + ttl, (ttl, claims)


def test_dev_build_shows_compiler_errors(tmp_path):
    """tools/dev build on a tree with a syntax error prints the compiler's
    message and fails (it used to print nothing but exit 1)."""
    if not shutil.which("meson") or not shutil.which("ninja"):
        pytest.skip("meson and ninja are installed by tools/dev")
    tree = tmp_path / "tree"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    for f in files:
        src = ROOT / f
        if src.is_file():
            (tree / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, tree / f)
    bad = tree / "broker" / "core" / "oh.c"
    bad.write_text(bad.read_text() + "\nint this_is_not_c(void) { return 1 }\n")
    r = subprocess.run([str(tree / "tools" / "dev"), "build"], cwd=tree, capture_output=True,
                       text=True, timeout=900, env=dict(os.environ))
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "oh.c" in out and "error" in out and "this_is_not_c" in out, out[-3000:]
    assert "the build in build failed" in out


def test_libwebsockets_lines_are_json_and_bounded(omnihub):
    """lws's own messages go into the JSON log (not raw text on stderr), and
    a flood of hostile connections cannot flood the log through them."""
    import json
    import socket
    d = omnihub()
    # The gateway answers oversized heads itself (http_guard.c) before lws
    # sees them; a WebSocket upgrade without a token is refused inside lws,
    # which logs one warning per refusal.
    upgrade = (b"GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    for _ in range(60):
        with socket.create_connection(("127.0.0.1", d.port)) as s:
            s.sendall(upgrade)
            s.settimeout(5)
            try:
                while s.recv(65536):
                    pass
            except OSError:
                pass
    d.stop()
    lines = [line for line in d.logs().splitlines() if line.strip()]
    for line in lines:
        json.loads(line)  # every line is a JSON object
    lws = [json.loads(line) for line in lines if '"component":"lws"' in line]
    assert lws, "the refused upgrades left no trace in the log"
    assert len(lws) <= 21, len(lws)
