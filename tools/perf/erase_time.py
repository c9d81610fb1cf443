"""erase_time.py - how long erasing one person takes (docs/performance.md,
"Erasing a person"): a daemon (OMNIHUB_BUILD, defaults, SQLite) holding
FILLER messages of other people in its full-text index, then one person
with CONVS conversations sharing a verified phone; DELETE /v1/contacts/{id}
is timed until every one of those conversations shows its message erased.

usage: OMNIHUB_BUILD=build python3 -m pytest -q -s -p no:cacheprovider \
         tools/perf/erase_time.py  [ERASE_FILLER=30000 ERASE_CONVS=300]
(a pytest module so it reuses tests/integration/conftest.py's daemon)"""
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "integration"))
from conftest import omnihub  # noqa: E402,F401 (the fixture)
from test_contacts import ON, token, wait_contact  # noqa: E402

FILLER = int(os.environ.get("ERASE_FILLER", "30000"))
CONVS = int(os.environ.get("ERASE_CONVS", "300"))


def test_erase_time(omnihub):  # noqa: F811
    d = omnihub(config=ON)
    agent, admin = d.agent_token(), token(d, "root", "admin")
    rng = random.Random(7)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9)))
             for _ in range(5000)]
    for i in range(FILLER):
        text = " ".join(rng.choice(words) for _ in range(12))
        r = d.post_inbound({"channel": "api:shop", "account": "acme",
                            "contact": {"id": f"f{i}"}, "message_id": f"f{i}", "text": text})
        assert r.status_code == 202, r.text
    idents = [{"type": "phone", "value": "+14155550191", "verified": True}]
    convs = []
    for i in range(CONVS):
        r = d.post_inbound({"channel": "api:shop", "account": "acme",
                            "contact": {"id": f"p{i}", "identifiers": idents},
                            "message_id": f"p{i}", "text": f"secret {i} " + rng.choice(words)})
        assert r.status_code == 202, r.text
        convs.append(r.json()["conversation_id"])
    cid = wait_contact(d, convs[-1], agent, timeout=120)
    d.wait_history(convs[-1], 1, timeout=120)
    t0 = time.time()
    r = d.request("DELETE", f"/v1/contacts/{cid}", token=admin, timeout=600)
    answered = time.time() - t0
    for conv in reversed(convs):
        while not all(e["type"] == "omnihub.message.erased" for e in d.history(conv, token=agent)
                      if e["type"].startswith("omnihub.message.")):
            time.sleep(0.05)
    print(f"\nERASE filler={FILLER} convs={CONVS}: DELETE answered {r.status_code} in "
          f"{answered:.2f} s, all erased after {time.time() - t0:.2f} s")
