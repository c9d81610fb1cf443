"""The desk's conversation object (CONTRACT part 2): GET /v1/conversations/{id}."""
import time

from conftest import validate_event  # noqa: F401


def msg(mid, contact="u1", text="hello", channel="api:shop", account="acme"):
    return {"channel": channel, "account": account, "contact": {"id": contact, "name": "Ann"},
            "message_id": mid, "text": text, "sent_at": "2026-12-03T10:00:00Z"}


def test_get_one_conversation(omnihub):
    d = omnihub()
    r = d.post_inbound(msg("m1"))
    assert r.status_code == 202, r.text
    conv = r.json()["conversation_id"]
    d.wait_history(conv, 1)
    agent = d.agent_token()
    r = d.request("GET", f"/v1/conversations/{conv}", token=agent)
    assert r.status_code == 200, r.text
    c = r.json()
    assert c["conversation_id"] == conv and c["channel"] == "api:shop" and c["head"] == 1
    assert c["status"] == "open" and c["priority"] == "normal"
    assert c["assignee"] is None and c["team"] is None and c["labels"] == []
    assert c["unread"] == 1
    r = d.request("POST", f"/v1/conversations/{conv}/read", {"seq": 1}, token=agent)
    assert r.status_code in (200, 204), r.text
    assert d.request("GET", f"/v1/conversations/{conv}", token=agent).json()["unread"] == 0
    # unknown, foreign, malformed
    assert d.request("GET", "/v1/conversations/nope", token=agent).status_code == 404
    stranger = d.customer_token("someone-else")
    assert d.request("GET", f"/v1/conversations/{conv}", token=stranger).status_code == 403
    assert d.request("GET", f"/v1/conversations/{conv}").status_code == 401
    assert d.request("DELETE", f"/v1/conversations/{conv}", token=agent).status_code == 405
