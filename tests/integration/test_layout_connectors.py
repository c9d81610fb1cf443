"""Connectors sit on a narrow interface: no store, log or hub headers, no
oh_hub_store(), and rules several channels share (Meta's subscription check,
the customer-service window) written once in the core, not per connector."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONNECTORS = ROOT / "connectors"
CORE = ROOT / "broker" / "core"


def sources(root):
    return sorted(p for p in root.rglob("*") if p.suffix in (".c", ".h", ".in"))


def test_connectors_reach_nothing_but_the_core_interface():
    forbidden = re.compile(r'oh_hub_store|oh_hub_ingest|#include\s+"(store|log)/|hub_int|hub\.h|oh_hub\b')
    hits = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
            for p in sources(CONNECTORS)
            for n, line in enumerate(p.read_text().splitlines(), 1)
            if forbidden.search(line)]
    assert hits == [], "\n".join(hits)


def test_the_connector_template_uses_the_env():
    tmpl = ROOT / "tools" / "templates" / "connector" / "connector.c.in"
    text = tmpl.read_text()
    assert "const struct oh_conn_env *env" in text
    assert "oh_hub" not in text and "hub.h" not in text
    assert "oh_config_map(" in text


def test_meta_verification_is_written_once_in_the_core():
    # the subscription check reads hub.challenge: only the core does
    in_connectors = [str(p.relative_to(ROOT)) for p in sources(CONNECTORS)
                     if "hub.challenge" in p.read_text()]
    assert in_connectors == []
    in_core = [p.name for p in sources(CORE) if '"hub.challenge"' in p.read_text()]
    assert in_core == ["conn_env.c"]
    # and the signature header is checked in one place too
    checks = [str(p.relative_to(ROOT)) for p in sources(CONNECTORS)
              if re.search(r'header\(req, "x-hub-signature-256"\)', p.read_text())]
    assert checks == []


def test_the_service_window_is_declared_not_written():
    window = re.compile(r"last_inbound|24LL \* 3600|oh_store_conversation_get")
    hits = [str(p.relative_to(ROOT)) for p in sources(CONNECTORS) if window.search(p.read_text())]
    assert hits == []
    for ch in ("whatsapp/whatsapp.c", "messenger/messenger.c", "instagram/instagram.c"):
        assert ".reply_window_s =" in (CONNECTORS / ch).read_text(), ch


def test_one_base64_and_one_outbound_post():
    # no private base64 decoders in connectors
    hits = [str(p.relative_to(ROOT)) for p in sources(CONNECTORS)
            if re.search(r'"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789(\+/|-_)"'
                         r"|- 'A'|b64val", p.read_text())]
    assert hits == []
    # every provider POST goes through oh_http_post()
    posts = [str(p.relative_to(ROOT)) for p in sources(CONNECTORS)
             if re.search(r'\.method = "POST"|\{"POST",', p.read_text())]
    assert posts == []


def test_no_doubled_prefix_in_init_errors():
    # main adds "connector <name>: " once
    hits = [f"{p.relative_to(ROOT)}:{n}" for p in sources(CONNECTORS)
            for n, line in enumerate(p.read_text().splitlines(), 1)
            if re.search(r'oh_errf\(err, errlen, "[a-z]+: out of memory"', line)]
    assert hits == []


def connector_dirs():
    return sorted(p for p in CONNECTORS.iterdir() if p.is_dir())


def test_connectors_fill_their_conf_through_a_config_map():
    # a key table comes with its config map; a direct read is left only for a
    # key outside the connector's own namespace (email reads data_dir)
    read = re.compile(r'oh_config_(?:str|int|bool|list)\(\s*\w+,\s*(?:"([^"]*)")?')
    hits = []
    for d in connector_dirs():
        for p in sources(d):
            text = p.read_text()
            if "struct oh_config_key " in text and "struct oh_config_field " not in text:
                hits.append(f"{p.relative_to(ROOT)}: a key table without a config map")
            for m in read.finditer(text):
                if m.group(1) is None or m.group(1).startswith(d.name + "."):
                    line = text.count("\n", 0, m.start()) + 1
                    hits.append(f"{p.relative_to(ROOT)}:{line}: reads its own key directly")
    assert hits == [], "\n".join(hits)


def test_no_connector_error_starts_with_its_own_name():
    # the callee says what failed; the caller (main, the gateway, omnihubctl)
    # knows which connector it called and adds that once
    tmpl = ROOT / "tools" / "templates" / "connector"
    hits = []
    for d, name in [(d, d.name) for d in connector_dirs()] + [(tmpl, "@NAME@")]:
        own = re.compile(r'(?:oh_errf|snprintf)\([^";]*"(?:' + re.escape(name) +
                         r'|%s)(?: [A-Za-z_]+)?: ', re.IGNORECASE)
        for p in sources(d):
            for n, line in enumerate(p.read_text().splitlines(), 1):
                m = own.search(line)
                if m and ("%s" not in m.group(0) or "->name" in line):
                    hits.append(f"{p.relative_to(ROOT)}:{n}: {line.strip()}")
    assert hits == [], "\n".join(hits)
