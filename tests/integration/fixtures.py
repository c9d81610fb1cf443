"""fixtures.py - what the connector integration tests share: the recorded
payloads in tests/data/<channel>/ and their expectations, omnihubctl
normalize, matching a subset of fields, and finding events in a history."""
import glob
import json
import os
import time

from conftest import ctl

DATA_ROOT = os.path.join(os.path.dirname(__file__), "..", "data")


def fixture_paths(channel):
    """Every recorded payload of CHANNEL (not the .expect.json files), sorted."""
    data = os.path.join(DATA_ROOT, channel)
    return sorted(p for p in glob.glob(os.path.join(data, "*.json")) if ".expect." not in p)


def load(channel, name):
    """The bytes of tests/data/<channel>/<name>.json."""
    with open(os.path.join(DATA_ROOT, channel, name + ".json"), "rb") as f:
        return f.read()


def expectations(path):
    """The events expected of the payload at PATH, as a list."""
    with open(path[:-5] + ".expect.json") as f:
        want = json.load(f)
    return want if isinstance(want, list) else [want]


def subset(want, got, path="$"):
    """Every key of WANT equals GOT's; lists compare element-wise."""
    if isinstance(want, dict):
        assert isinstance(got, dict), f"{path}: want an object, got {got!r}"
        for k, v in want.items():
            assert k in got, f"{path}.{k} missing in {json.dumps(got)[:400]}"
            subset(v, got[k], f"{path}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{path}: {got!r}"
        for i, (w, g) in enumerate(zip(want, got)):
            subset(w, g, f"{path}[{i}]")
    else:
        assert want == got, f"{path}: want {want!r}, got {got!r}"


def normalize(channel, body, account=None):
    """The events omnihubctl normalize makes of BODY; asserts it succeeds."""
    args = ["normalize", "--channel", channel] + (["--account", account] if account else [])
    r = ctl(*args, input=body)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def wait_for(d, conv, pred, timeout=15):
    """Waits until PRED holds for some event of CONV's history; returns it."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            for ev in d.history(conv):
                if pred(ev):
                    return ev
        except Exception:  # the conversation may not exist yet
            pass
        time.sleep(0.05)
    raise AssertionError(f"no matching event in {conv}: {json.dumps(d.history(conv))[:2000]}")


def reply(d, conv, body):
    """Posts an agent reply to CONV; asserts 202 and returns its event id."""
    r = d.request("POST", f"/v1/conversations/{conv}/messages", body, token=d.agent_token())
    assert r.status_code == 202, r.text
    return r.json()["event_id"]


def status_of(d, conv, message_id, state="sent", timeout=15):
    """Waits for the STATE status of MESSAGE_ID in CONV; returns it."""
    return wait_for(d, conv, lambda e: e["type"] == "omnihub.message.status"
                    and e["data"]["status"]["message_id"] == message_id
                    and e["data"]["status"]["state"] == state, timeout)
