"""What operators install beside the daemon: the systemd units (checked by
systemd-analyze), the alert rules (promtool), the Grafana dashboard, the
Debian package (built, installed, checked, purged) and the connector
scaffold of `omnihubctl new-connector` (generated, built, tested)."""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, checkout_lock

UNITS = ROOT / "packaging" / "systemd"
PROM = ROOT / "examples" / "prometheus"
DASHBOARD = ROOT / "examples" / "grafana" / "omnihub-dashboard.json"
# the package is built from the plain build (tools/dev package), never ASan
PLAIN = ROOT / "build"


def run(*cmd, cwd=None, env=None, timeout=600, check=True, **kw):
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=timeout, **kw)
    if check:
        assert p.returncode == 0, f"{' '.join(map(str, cmd))} -> {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


# ---- systemd units ----

def unit_in(tmp_path, name, instance=None):
    """The real unit NAME with its ExecStart pointed at the plain build's
    omnihubd (verify refuses a command that does not exist); nothing else
    changes."""
    text = (UNITS / name).read_text()
    assert "/usr/bin/omnihubd " in text
    out = tmp_path / (name.replace("@.", f"@{instance}.") if instance else name)
    out.write_text(text.replace("/usr/bin/omnihubd ", f"{PLAIN / 'broker' / 'omnihubd'} "))
    return out


def verify_unit(path):
    p = run("systemd-analyze", "verify", path, check=False)
    # verify exits 0 on unknown keys and bad values, only saying so: both count
    assert p.returncode == 0 and p.stderr.strip() == "" and p.stdout.strip() == "", p.stderr
    sec = run("systemd-analyze", "security", "--offline=true", "--threshold=20", path, check=False)
    assert sec.returncode == 0, sec.stdout[-800:]
    assert re.search(r"Overall exposure level for \S+: [01]\.\d", sec.stdout), sec.stdout[-300:]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
@pytest.mark.parametrize("name,instance", [("omnihubd.service", None),
                                           ("omnihubd@.service", "gateway"),
                                           ("omnihubd@.service", "sync"),
                                           ("omnihubd@.service", "dispatch")])
def test_systemd_units_verify_and_are_hardened(tmp_path, name, instance):
    path = unit_in(tmp_path, name, instance)
    text = path.read_text()
    for line in ["User=omnihub", "EnvironmentFile=-/etc/omnihub/omnihub.env",
                 "StateDirectory=omnihub", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "ProtectHome=yes", "PrivateTmp=yes", "PrivateDevices=yes",
                 "ProtectKernelTunables=yes", "ProtectKernelModules=yes", "ProtectKernelLogs=yes",
                 "ProtectControlGroups=yes", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
                 "RestrictNamespaces=yes", "LockPersonality=yes", "MemoryDenyWriteExecute=yes",
                 "RestrictRealtime=yes", "SystemCallFilter=@system-service",
                 "CapabilityBoundingSet=\n", "Restart=on-failure", "TimeoutStopSec="]:
        assert line in text, f"{name} lacks {line!r}"
    nofile = int(re.search(r"^LimitNOFILE=(\d+)$", text, re.M).group(1))
    assert nofile >= 65536
    role = instance or "all"
    assert f"-c /etc/omnihub/omnihub.yaml --role {'%i' if instance else 'all'}" in text
    verify_unit(path)
    # the role the unit names is one omnihubd accepts
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data_dir: {tmp_path}/data\n")
    env = dict(os.environ, OMNIHUB_AUTH_JWT_SECRET="s" * 32)
    p = run(PLAIN / "broker" / "omnihubd", "-c", cfg, "--role", role, "--check-config",
            env=env, check=False)
    assert "role must be" not in p.stderr


def test_systemd_verify_catches_a_broken_unit(tmp_path):
    """The check above is not vacuous: a misspelled key, a bad value or a
    missing binary fail it."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    good = unit_in(tmp_path, "omnihubd.service")
    for bad in [good.read_text().replace("ProtectHome=yes", "ProtectHome=yess"),
                good.read_text().replace("PrivateTmp=yes", "PrivateTmp=yes\nPrivatTmp=yes"),
                good.read_text().replace(str(PLAIN / "broker" / "omnihubd"), "/nonexistent/omnihubd")]:
        path = tmp_path / "broken.service"
        path.write_text(bad)
        with pytest.raises(AssertionError):
            verify_unit(path)


# ---- Prometheus alert rules ----

@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (Debian: prometheus) is not installed")
def test_alert_rules_check_and_unit_tests():
    out = run("promtool", "check", "rules", PROM / "omnihub-alerts.yml").stdout
    assert "SUCCESS" in out
    p = run("promtool", "test", "rules", "omnihub-alerts.test.yml", cwd=PROM)
    assert "SUCCESS" in p.stdout
    rules = (PROM / "omnihub-alerts.yml").read_text()
    # every metric family the rules read is one omnihubd exports
    exported = source_families()
    used = set(re.findall(r"\b(omnihub_[a-z_]+)", rules))
    assert used and used <= exported, used - exported
    tests = (PROM / "omnihub-alerts.test.yml").read_text()
    for alert in re.findall(r"- alert: (\w+)", rules):
        assert f"alertname: {alert}\n" in tests, f"{alert} has no promtool test"


def source_families():
    """Metric families named in broker/ and connectors/ sources."""
    names = set()
    for d in ("broker", "connectors"):
        for f in (ROOT / d).rglob("*.c"):
            names |= set(re.findall(r'"(?:# (?:HELP|TYPE) )?(omnihub_[a-z0-9_]+)',
                                    f.read_text(errors="replace")))
    return names


# ---- Grafana dashboard ----

# histograms a later issue's KPI service exports; the panels say so
KPI_FAMILIES = {"omnihub_first_response_seconds", "omnihub_handle_seconds"}


def test_grafana_dashboard_shape_and_metrics(tmp_path):
    dash = json.loads(DASHBOARD.read_text())
    assert dash["title"] and dash["uid"] and isinstance(dash["schemaVersion"], int)
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    exported = source_families() | {"omnihub_build_info"}
    exprs, ids, used = [], set(), set()
    for p in dash["panels"]:
        assert p["id"] not in ids
        ids.add(p["id"])
        g = p["gridPos"]
        assert all(isinstance(g[k], int) for k in ("h", "w", "x", "y"))
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}"
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["expr"] and t["refId"]
            exprs.append(t["expr"])
            for fam in re.findall(r"\b(omnihub_[a-z0-9_]+)", t["expr"]):
                base = re.sub(r"_(bucket|sum|count)$", "", fam)
                assert base in exported or base in KPI_FAMILIES, f"{p['title']}: {fam}"
                used.add(base)
        if any(k in t["expr"] for t in p["targets"] for k in KPI_FAMILIES):
            assert "empty" in p["description"], p["title"]
    # what the issue asks the dashboard to show
    for fam in ["omnihub_consumer_lag", "omnihub_consumer_lag_seconds", "omnihub_ingest_total",
                "omnihub_ingest_seconds", "omnihub_ws_push_seconds", "omnihub_ws_connections",
                *KPI_FAMILIES]:
        assert fam in used, fam
    # no two panels overlap
    boxes = [p["gridPos"] for p in dash["panels"]]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert (a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"]
                    or a["y"] + a["h"] <= b["y"] or b["y"] + b["h"] <= a["y"]), (a, b)
    # every expression is valid PromQL: promtool parses them as recording rules
    if shutil.which("promtool"):
        rules = {"groups": [{"name": "dashboard", "rules": [
            {"record": f"dashboard:expr{i}",
             "expr": e.replace("$__rate_interval", "5m").replace("$instance", ".*")}
            for i, e in enumerate(exprs)]}]}
        path = tmp_path / "exprs.yml"
        path.write_text(json.dumps(rules))  # JSON is YAML
        run("promtool", "check", "rules", path)


# ---- omnihubctl new-connector ----

def source_copy(dest):
    """The committed tree plus uncommitted files git would track, without
    any build directory: what a developer's checkout holds."""
    files = run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard",
                cwd=ROOT).stdout.split("\0")
    for f in files:
        if not f or f.startswith("build") or not (ROOT / f).is_file():
            continue
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, dest / f)
    return dest


def test_new_connector_generates_builds_and_passes_its_test(tmp_path):
    ctl_bin = PLAIN / "tools" / "omnihubctl"
    src = source_copy(tmp_path / "src")
    before = (src / "connectors" / "meson.build").read_text()
    p = run(ctl_bin, "new-connector", "acme_chat", cwd=src)
    for f in ["connectors/acme_chat/acme_chat.c", "connectors/acme_chat/meson.build",
              "tests/data/acme_chat/message_text.json",
              "tests/data/acme_chat/message_text.expect.json", "tests/unit/test_acme_chat.c"]:
        assert (src / f).is_file(), f"{f} missing; output:\n{p.stdout}"
        assert "@NAME@" not in (src / f).read_text() and "@DEST" not in (src / f).read_text()
    # the registration: one line each, nothing else changed
    after = (src / "connectors" / "meson.build").read_text()
    assert after.replace("subdir('acme_chat')\n", "", 1) == before
    assert "  ['acme_chat', ['unit/fixture.c'], []],\n" in (src / "tests" / "meson.build").read_text()
    vtable = (src / "connectors/acme_chat/acme_chat.c").read_text()
    assert "const struct oh_connector oh_connector_acme_chat = {" in vtable
    assert '{"acme_chat.secret", OH_CFG_SECRET' in vtable

    # taken, malformed or existing names are refused and write nothing
    for name in ["acme_chat", "whatsapp", "http", "webchat", "Acme", "a", "9lives", "x" * 32,
                 "a-b", "../evil"]:
        r = run(ctl_bin, "new-connector", name, cwd=src, check=False)
        assert r.returncode == 2, (name, r.stderr)
        assert r.stderr.startswith("new-connector: "), r.stderr
    assert (src / "connectors" / "meson.build").read_text() == after
    assert not (tmp_path / "evil").exists()
    r = run(ctl_bin, "new-connector", "--help")
    assert "usage: omnihubctl new-connector NAME" in r.stdout
    r = run(ctl_bin, "new-connector", "nowhere", cwd=tmp_path, check=False)
    assert r.returncode == 1 and "no templates" in r.stderr

    # it builds with the project's warnings-as-errors and its test passes
    b = tmp_path / "b"
    run("nice", "meson", "setup", b, src, timeout=300)
    # what the checks below run, not the whole tree (the other unit tests are
    # built and run by the suite itself); meson test would rebuild it all
    run("nice", "ninja", "-C", b, "broker/omnihubd", "tools/omnihubctl", "tests/test_acme_chat",
        timeout=1200)
    t = run("meson", "test", "-C", b, "--no-rebuild", "acme_chat", "--print-errorlogs",
            timeout=300)
    assert "1/1 acme_chat" in t.stdout and " OK " in t.stdout, t.stdout
    # the daemon knows it: its keys, and omnihubctl normalize through it
    keys = run(b / "broker" / "omnihubd", "--keys").stdout
    assert "acme_chat.secret" in keys
    fixture = (src / "tests/data/acme_chat/message_text.json").read_bytes()
    ev = json.loads(subprocess.run([str(b / "tools" / "omnihubctl"), "normalize", "--channel",
                                    "acme_chat"], input=fixture, capture_output=True,
                                   check=True).stdout)
    assert ev["data"]["channel"] == "acme_chat" and ev["data"]["text"] == "Hello from acme_chat"


# ---- the Debian package ----

def env_file(path):
    out = {}
    for line in Path(path).read_text().splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.partition("=")
            out[k] = v
    return out


@pytest.mark.skipif(os.geteuid() != 0,
                    reason="installs the package into this machine with dpkg -i: needs root")
@pytest.mark.skipif(not shutil.which("dpkg-deb"), reason="not a Debian system (no dpkg-deb)")
def test_debian_package_builds_installs_and_checks_its_config(tmp_path):
    import requests
    from conftest import free_port, sign_hex
    if run("dpkg", "-s", "omnihub", check=False).returncode == 0:
        run("dpkg", "--purge", "omnihub")  # left by an interrupted run
    user_existed = run("getent", "passwd", "omnihub", check=False).returncode == 0

    # it rebuilds workspace/dist when its sources changed: not under a workspace test
    with checkout_lock("workspace-dist"):
        deb = Path(run(ROOT / "tools" / "dev", "package",
                       timeout=1800).stdout.strip().splitlines()[-1])
    assert deb.is_file() and deb.name.endswith(".deb")
    files = {line.split()[-1].lstrip(".") for line in
             run("dpkg-deb", "-c", deb).stdout.splitlines()}
    for f in ["/usr/bin/omnihubd", "/usr/bin/omnihubctl", "/lib/systemd/system/omnihubd.service",
              "/lib/systemd/system/omnihubd@.service", "/etc/omnihub/omnihub.yaml",
              "/usr/share/doc/omnihub/copyright",
              "/usr/share/doc/omnihub/examples/prometheus/omnihub-alerts.yml",
              "/usr/share/doc/omnihub/examples/grafana/omnihub-dashboard.json",
              "/usr/share/omnihub/workspace/index.html"]:
        assert f in files, f
    assert not any("omnihub.env" in f for f in files), "secrets must not ship in the package"
    field = lambda name: run("dpkg-deb", "-f", deb, name).stdout.strip()
    assert field("Package") == "omnihub"
    assert field("Version") == re.search(r"version: '([^']+)'", (ROOT / "meson.build").read_text())[1]
    assert field("Architecture") == run("dpkg", "--print-architecture").stdout.strip()
    depends = field("Depends")
    for lib in ["libwebsockets17", "libcurl4", "libjansson4", "libssl3", "libsqlite3-0",
                "libjwt0", "libyaml-0-2", "librdkafka1", "libpq5", "libgmime-3.0-0", "libjemalloc2",
                "adduser"]:
        assert re.search(rf"(^|, ){re.escape(lib)}( |,|$)", depends), (lib, depends)
    assert run("dpkg-deb", "--ctrl-tarfile", deb).returncode == 0
    ctrl = tmp_path / "ctrl"
    run("dpkg-deb", "-e", deb, ctrl)
    assert (ctrl / "conffiles").read_text().split() == ["/etc/omnihub/omnihub.yaml"]

    try:
        run("dpkg", "-i", deb, timeout=300)
        # the plain build allocates through jemalloc (docs/performance.md)
        assert "allocator: jemalloc 5." in run("/usr/bin/omnihubd", "--version").stdout
        # the system user, its state directory, the generated secrets
        pw = run("getent", "passwd", "omnihub").stdout.split(":")
        assert int(pw[2]) < 1000, pw
        st = os.stat("/var/lib/omnihub")
        assert st.st_uid == int(pw[2]) and oct(st.st_mode & 0o777) == "0o750"
        st = os.stat("/etc/omnihub/omnihub.env")
        assert st.st_uid == 0 and st.st_mode & 0o777 == 0o600
        secrets = env_file("/etc/omnihub/omnihub.env")
        for k in ("OMNIHUB_AUTH_JWT_SECRET", "OMNIHUB_API_INBOUND_SECRET"):
            assert len(secrets.get(k, "")) >= 32, secrets.keys()
        assert secrets["OMNIHUB_AUTH_JWT_SECRET"] != secrets["OMNIHUB_API_INBOUND_SECRET"]

        # the installed units, unchanged, against the installed binary
        verify_unit(Path("/lib/systemd/system/omnihubd.service"))
        for role in ("gateway", "sync", "dispatch"):
            inst = tmp_path / f"omnihubd@{role}.service"
            shutil.copy("/lib/systemd/system/omnihubd@.service", inst)
            verify_unit(inst)

        # the installed config with the installed secrets, as the service user
        env = {"PATH": "/usr/bin:/bin", **secrets}
        as_omnihub = {"user": "omnihub", "group": "omnihub", "extra_groups": [], "cwd": "/"}
        p = run("/usr/bin/omnihubd", "--check-config", "-c", "/etc/omnihub/omnihub.yaml",
                env=env, check=False, **as_omnihub)
        assert p.returncode == 0, p.stderr

        # and it serves: an inbound message signed with the generated secret
        port = free_port()
        env["OMNIHUB_HTTP_LISTEN"] = f"127.0.0.1:{port}"
        log = open(tmp_path / "omnihubd.log", "wb")
        d = subprocess.Popen(["/usr/bin/omnihubd", "-c", "/etc/omnihub/omnihub.yaml"], env=env,
                             stdout=log, stderr=subprocess.STDOUT, **as_omnihub)
        try:
            import time
            deadline = time.monotonic() + 60
            while True:
                assert d.poll() is None, (tmp_path / "omnihubd.log").read_text()[-2000:]
                try:
                    # /healthz answers from the start; /readyz once it serves
                    if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5).ok:
                        break
                except requests.ConnectionError:
                    pass
                assert time.monotonic() < deadline, "omnihubd did not become ready"
                time.sleep(0.2)
            body = json.dumps({"channel": "api:pkg", "account": "shop", "contact": {"id": "u1"},
                               "message_id": "m1", "text": "installed"})
            r = requests.post(f"http://127.0.0.1:{port}/v1/inbound", data=body, timeout=30,
                              headers={"X-Omnihub-Signature":
                                       sign_hex(secrets["OMNIHUB_API_INBOUND_SECRET"], body)})
            assert r.status_code == 202, r.text
        finally:
            d.terminate()
            assert d.wait(timeout=60) == 0
            log.close()
        assert os.stat("/var/lib/omnihub/log.db").st_uid == int(pw[2])

        # an upgrade (the same package again) keeps the secrets and the data
        run("dpkg", "-i", deb, timeout=300)
        assert env_file("/etc/omnihub/omnihub.env") == secrets
        assert Path("/var/lib/omnihub/log.db").exists()
    finally:
        run("dpkg", "--purge", "omnihub", timeout=300, check=False)
        if not user_existed:
            run("deluser", "--system", "omnihub", check=False)
    assert not Path("/usr/bin/omnihubd").exists()
    assert not Path("/etc/omnihub").exists() and not Path("/var/lib/omnihub").exists()
