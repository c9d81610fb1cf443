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

from conftest import ROOT

UNITS = ROOT / "packaging" / "systemd"
PROM = ROOT / "examples" / "prometheus"
DASHBOARD = ROOT / "examples" / "grafana" / "omnihub-dashboard.json"
# the package is built from the plain build (tools/dev package), never ASan
PLAIN = ROOT / "build"


def run(*cmd, cwd=None, env=None, timeout=600, check=True):
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=timeout)
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
