"""The layout shows the architecture, and stays that way: each part of
broker/ says what it is and may include only the parts below it; no public
header includes an internal one; the backends' libraries stay inside their
backend; the gateway's files call each other without a loop (read from the
symbols of the built objects)."""
import re
import subprocess
from collections import defaultdict

from conftest import BUILD, ROOT

BROKER = ROOT / "broker"
PARTS = ["core", "log", "store", "services", "gateway"]
# what each part may include (besides system headers)
MAY_INCLUDE = {
    "core": {"core"},
    "log": {"core", "log"},
    "store": {"core", "store"},
    "services": {"core", "log", "store", "services"},
    "gateway": {"core", "log", "store", "gateway"},
}
# the hub sits above the log and the store it appends to and reads from, and
# the table of every key table (config_keys.c) gathers theirs
HUB = {"core/hub.h", "core/hub_int.h", "core/hub.c", "core/daemon.h", "core/config_keys.c",
       "core/conn_env.c"}
INTERNAL = re.compile(r"_int\.h$|^store/store_fields\.h$")
INCLUDE = re.compile(r'^#include "([a-z]+)/([^"]+)"', re.M)
# backend libraries: who may include them; tools/bench and tests are
# documented exceptions (the bench reads the stores directly as ceilings,
# tests corrupt them on purpose)
LIBS = {"sqlite3.h": {"broker/store/store_sqlite_int.h", "broker/log/log_local_int.h",
                      "broker/core/walbuf.c"},
        "libpq-fe.h": {"broker/store/store_pg.c", "broker/store/store_pg_pool.c",
                       "broker/store/store_pg_int.h"},
        "librdkafka/rdkafka.h": {"broker/log/log_kafka.c"}}


def sources(*dirs):
    for d in dirs:
        for p in sorted((ROOT / d).rglob("*")):
            if p.suffix in (".c", ".h") and p.is_file():
                yield p


def test_every_part_says_what_it_is():
    for part in PARTS:
        readme = BROKER / part / "README.md"
        assert readme.exists(), f"broker/{part} has no README.md"
        text = readme.read_text()
        assert "Threads" in text and "May include" in text, f"broker/{part}/README.md"
    assert sorted(p.name for p in BROKER.iterdir() if p.is_dir()) == sorted(PARTS)
    assert sorted(p.name for p in BROKER.iterdir() if p.is_file()) == ["main.c", "meson.build"]


def test_parts_include_only_the_parts_below():
    bad = []
    for part in PARTS:
        for f in sources(f"broker/{part}"):
            rel = f"{part}/{f.name}"
            for dep, header in INCLUDE.findall(f.read_text()):
                allowed = MAY_INCLUDE[part] | ({"log", "store"} if rel in HUB else set())
                if dep not in allowed:
                    bad.append(f"{rel} includes {dep}/{header}")
                elif (INTERNAL.search(f"{dep}/{header}") and dep != part
                      and f"{dep}/{header}" != "core/hub_int.h"):
                    # hub_int.h is the daemon's own view of the hub: for
                    # its parts, not for connectors
                    bad.append(f"{rel} includes another part's internal {dep}/{header}")
    assert not bad, bad


def test_no_public_header_includes_an_internal_one():
    bad = []
    for f in sources("broker"):
        rel = str(f.relative_to(BROKER))
        if f.suffix != ".h" or INTERNAL.search(rel):
            continue
        for dep, header in INCLUDE.findall(f.read_text()):
            if INTERNAL.search(f"{dep}/{header}"):
                bad.append(f"{rel} includes {dep}/{header}")
    assert not bad, bad


def test_backend_libraries_stay_in_their_backend():
    bad = []
    for f in sources("broker", "connectors", "tools"):
        rel = str(f.relative_to(ROOT))
        if rel.startswith("tools/bench/") or rel == "tools/kafka_mock.c":
            continue
        for lib, allowed in LIBS.items():
            if re.search(rf'#include <{re.escape(lib)}>', f.read_text()) and rel not in allowed:
                bad.append(f"{rel} includes <{lib}>")
    assert not bad, bad


def defined_and_used(obj):
    out = subprocess.run(["nm", str(obj)], capture_output=True, text=True, check=True).stdout
    defined, used = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "TDBR":
            defined.add(parts[2])
        elif len(parts) == 2 and parts[0] == "U":
            used.add(parts[1])
    return defined, used


def test_gateway_files_call_each_other_without_a_loop():
    objs = sorted((BUILD / "broker" / "liboh.a.p").glob("gateway_*.c.o"))
    assert len(objs) >= 4, objs
    syms = {o.name: defined_and_used(o) for o in objs}
    edges = defaultdict(set)
    for a, (_, used) in syms.items():
        for b, (defined, _) in syms.items():
            if a != b and used & defined:
                edges[a].add(b)
    # depth-first search for a cycle
    state, cycle = {}, []

    def visit(n, path):
        state[n] = 1
        for m in edges[n]:
            if state.get(m) == 1:
                cycle.append(path[path.index(m):] + [m] if m in path else [n, m])
                return True
            if not state.get(m) and visit(m, path + [m]):
                return True
        state[n] = 2
        return False

    for n in syms:
        if not state.get(n) and visit(n, [n]):
            break
    names = {a: sorted(syms[a][1] & syms[b][0]) for a in edges for b in edges[a]}
    assert not cycle, f"call loop: {cycle[0]} ({names})"
