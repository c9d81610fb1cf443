"""Nothing in broker/ names a channel: the core knows connectors only through
their vtables (docs/connectors.md), so adding or removing one touches its
folder and one registration line.

The rule this test applies to every broker/**/*.c and *.h file (comments
included), case-insensitive:

- The channel names are the folder names under connectors/ plus "imap" and
  "smtp" (the email connector's protocols).
- A distinctive name (whatsapp, telegram, webchat, ...) may not appear as a
  word anywhere: delimited by anything but a letter or digit, so
  identifiers such as WEBCHAT_ACCOUNT or oh_connector_webchat count too.
- A name that is also a common word (COMMON below: "api", "x", "line",
  "email", "meta") is looked for only where it denotes the channel: a
  double-quoted string (in code or quoted in a comment) that is the name
  (for names of two letters or more: "x" is also a JSON Web Key member),
  or starts with the name followed by ':' (a sub-channel, "api:shop"), '.'
  (a config key, "email.imap_url") or '/', or holds "/webhooks/<name>" or
  channel="<name>" (a metric label); and the identifier
  oh_connector_<name>.
- A string passed as the name to claim() is a token claim (../shared/CONTRACT.md
  part 2 gives agents an "email" claim), not the channel; so is the one
  definition of a contact identifier type (#define OH_IDENT_EMAIL "email":
  CONTRACT part 2, Contacts, types phone|email|<channel>).
"""
import re

from conftest import ROOT

COMMON = {"api", "x", "line", "email", "meta"}
EXTRA = {"imap", "smtp"}
STRING = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
CLAIM_ARG = re.compile(r"\bclaim\([^,()]*,\s*$")
IDENT_DEF = re.compile(r"^\s*#define OH_IDENT_[A-Z]+\s*$")


def channel_names():
    names = {p.name.lower() for p in (ROOT / "connectors").iterdir() if p.is_dir()}
    assert {"whatsapp", "webchat", "email"} <= names, names
    return names | EXTRA


def hits_in(text, names):
    found = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for name in names:
            n = re.escape(name)
            if name not in COMMON:
                if re.search(rf"(?<![a-z0-9]){n}(?![a-z0-9])", line, re.I):
                    found.append((lineno, name, line.strip()))
                continue
            if re.search(rf"\boh_connector_{n}\b", line, re.I):
                found.append((lineno, name, line.strip()))
                continue
            for m in STRING.finditer(line):
                if CLAIM_ARG.search(line[:m.start()]) or IDENT_DEF.match(line[:m.start()]):
                    continue
                s = m.group(1).replace('\\"', '"').lower()
                if ((s == name and len(name) > 1) or re.match(rf"{n}[:./]", s) or f"/webhooks/{name}" in s or
                        f'channel="{name}"' in s):
                    found.append((lineno, name, line.strip()))
                    break
    return found


def test_the_rule_catches_what_it_should():
    names = {"whatsapp", "webchat", "api", "x", "line"}
    bad = ['#define WEBCHAT_ACCOUNT "default"', "/* a WhatsApp message */", 'if (!strcmp(c, "line"))',
           '/* channel="api",result="ok" */',
           'oh_conversation_id(out, "webchat", a, s);', '/* "api:shop" is served by "api" */',
           'oh_config_str(cfg, "x.consumer_secret")', "extern int oh_connector_line;",
           'snprintf(p, n, "/webhooks/line");']
    fine = ['add_header_name(gw, "x-request-id");', 'json_object_get(k, "x")', "/* one line per record */",
            "struct api *a = api_state(r);", 'fprintf(f, "line %d", n);',
            "/* the REST API */", "int wa_send(void);", 'json_t *e = claim(jwt, "email");',
            '#define OH_IDENT_EMAIL "email"']
    for line in bad:
        assert hits_in(line, names), line
    for line in fine:
        assert not hits_in(line, names), line


def test_broker_names_no_channel():
    names = channel_names()
    hits = []
    for path in sorted((ROOT / "broker").rglob("*")):
        if path.suffix not in (".c", ".h") or not path.is_file():
            continue
        for lineno, name, line in hits_in(path.read_text(errors="replace"), names):
            hits.append(f"{path.relative_to(ROOT)}:{lineno}: {name}: {line}")
    assert not hits, "broker/ names a channel:\n" + "\n".join(hits)
