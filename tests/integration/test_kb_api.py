"""Knowledge base, canned responses and suggestions over HTTP (CONTRACT part
2): the routes and their codes, versions, search ranking from the store's
articles, canned variables, the suggestion an agent used is recorded."""
import json
import time
from pathlib import Path

from conftest import validate_event

ROOT = Path(__file__).resolve().parents[2]
HELP = json.loads((ROOT / "data" / "kb" / "helpcenter.json").read_text())


def load(d, admin, n=None):
    for a in HELP[:n]:
        body = {k: a[k] for k in ("title", "body", "locale", "tags") if k in a}
        r = d.request("PUT", "/v1/kb/articles/" + a["id"], body, token=admin)
        assert r.status_code == 200, r.text


def test_articles_routes_and_codes(omnihub):
    d = omnihub()
    admin, agent = d.token("boss", "admin", "x"), d.agent_token()
    cust = d.customer_token("cust-1")
    art = {"title": "Gift cards never expire", "body": "A gift card can be used at any time. "
           "It never expires and it can pay for part of an order.", "tags": ["gift-cards"]}
    # writes: admins only
    assert d.request("PUT", "/v1/kb/articles/gift", art, token=agent).status_code == 403
    assert d.request("PUT", "/v1/kb/articles/gift", art, token=cust).status_code == 403
    assert d.request("PUT", "/v1/kb/articles/gift", art).status_code == 401
    r = d.request("PUT", "/v1/kb/articles/gift", art, token=admin)
    assert r.status_code == 200 and r.json() == {"id": "gift", "version": 1}
    r = d.request("PUT", "/v1/kb/articles/gift", dict(art, title="Gift cards: no expiry"),
                  token=admin)
    assert r.json()["version"] == 2
    # bad bodies and bounds
    for bad in ({"title": "x"}, {"title": "", "body": "b"}, {"title": "t", "body": "b", "x": 1},
                {"title": "t", "body": "b" * 70000}, {"title": "t", "body": "b", "tags": [1]}):
        assert d.request("PUT", "/v1/kb/articles/g2", bad, token=admin).status_code in (400, 413)
    # reads: agents; customers 403; unknown 404
    r = d.request("GET", "/v1/kb/articles/gift", token=agent)
    assert r.status_code == 200
    assert r.json()["title"] == "Gift cards: no expiry" and r.json()["version"] == 2
    assert d.request("GET", "/v1/kb/articles/gift", token=cust).status_code == 403
    assert d.request("GET", "/v1/kb/articles/nope", token=agent).status_code == 404
    # search: agents, 400 for an empty question, the article found
    assert d.request("GET", "/v1/kb/search?q=", token=agent).status_code == 400
    assert d.request("GET", "/v1/kb/search?q=%20", token=agent).status_code == 400
    assert d.request("GET", "/v1/kb/search", token=agent).status_code == 400
    assert d.request("GET", "/v1/kb/search?q=gift&limit=0", token=agent).status_code == 400
    assert d.request("GET", "/v1/kb/search?q=gift", token=cust).status_code == 403
    r = d.request("GET", "/v1/kb/search?q=does+my+gift+card+expire", token=agent)
    assert r.status_code == 200 and r.json()["results"][0]["id"] == "gift"
    hit = r.json()["results"][0]
    assert hit["title"] == "Gift cards: no expiry" and hit["score"] > 0 and hit["snippet"]
    # delete: gone from the store and from search
    # delete: admins only (they manage the knowledge base; agents read it)
    assert d.request("DELETE", "/v1/kb/articles/gift", token=cust).status_code == 403
    assert d.request("DELETE", "/v1/kb/articles/gift", token=agent).status_code == 403
    assert d.request("GET", "/v1/kb/articles/gift", token=agent).status_code == 200
    assert d.request("DELETE", "/v1/kb/articles/gift", token=admin).status_code == 200
    assert d.request("DELETE", "/v1/kb/articles/gift", token=admin).status_code == 404
    assert d.request("GET", "/v1/kb/articles/gift", token=agent).status_code == 404
    r = d.request("GET", "/v1/kb/search?q=does+my+gift+card+expire", token=agent)
    assert [h["id"] for h in r.json()["results"]] == []


def test_search_ranks_the_help_center_after_a_restart(omnihub):
    d = omnihub()
    admin, agent = d.token("boss", "admin", "x"), d.agent_token()
    load(d, admin)
    d.restart()  # the index is rebuilt from the store
    r = d.request("GET", "/v1/kb/search?q=" + "¿puedo devolver unas zapatillas?", token=agent)
    ids = [h["id"] for h in r.json()["results"]]
    assert "return-policy" in ids[:3], ids
    r = d.request("GET", "/v1/kb/search?q=refund%3F&limit=2", token=agent)
    assert len(r.json()["results"]) <= 2
    # a long email with the question in the middle: in the URL (up to the head's
    # bound) and, longer, as a POST body (the first 8 KiB are read)
    from urllib.parse import quote
    filler = "We moved house last spring and the kids started a new school. " * 30
    email = filler + " Anyway: does my gift card expire? I got it two years ago. " + filler
    r = d.request("GET", "/v1/kb/search?limit=3&q=" + quote(email), token=agent)
    assert r.status_code == 200, r.text
    assert "gift-cards" in [h["id"] for h in r.json()["results"]]
    email = email.replace(" Anyway", "\nAnyway")  # lines: a body (a %0A in a URL is refused)
    r = d.request("POST", "/v1/kb/search", {"q": email + filler * 10, "limit": 3}, token=agent)
    assert r.status_code == 200 and "gift-cards" in [h["id"] for h in r.json()["results"]]
    assert d.request("POST", "/v1/kb/search", {"q": " "}, token=agent).status_code == 400
    assert d.request("POST", "/v1/kb/search", {"q": "x", "limit": 99}, token=agent).status_code == 400
    assert d.request("POST", "/v1/kb/search", {"q": "x", "n": 1}, token=agent).status_code == 400


def test_canned_and_suggestions(omnihub):
    d = omnihub()
    admin, agent = d.token("boss", "admin", "x"), d.token("ann", "agent", "desk")
    cust = d.customer_token("cust-1")
    load(d, admin)
    c = {"title": "Refund on its way", "text": "Hi {{contact.name}}, your refund is on its way. "
         "It reaches your account within 5 to 10 business days. {{unknown}}"}
    assert d.request("PUT", "/v1/canned/refund-eta", c, token=cust).status_code == 403
    assert d.request("PUT", "/v1/canned/refund-eta", {"text": ""}, token=agent).status_code == 400
    r = d.request("PUT", "/v1/canned/refund-eta", c, token=agent)
    assert r.status_code == 200 and r.json()["text"] == c["text"]
    assert d.request("GET", "/v1/canned/refund-eta", token=agent).json()["title"] == c["title"]
    assert [x["id"] for x in d.request("GET", "/v1/canned", token=agent).json()["canned"]] == [
        "refund-eta"]
    assert d.request("GET", "/v1/canned/zzz", token=agent).status_code == 404
    r = d.post_inbound({"channel": "api:test", "account": "a1", "contact": {"id": "u1",
                        "name": "Maria"}, "message_id": "m1",
                        "text": "hello, when will I get my refund?", "sent_at": "2026-01-01T00:00:00Z"})
    conv = r.json()["conversation_id"]
    d.wait_history(conv, 1)
    assert d.request("GET", "/v1/conversations/nope/suggestions", token=agent).status_code == 404
    assert d.request("GET", f"/v1/conversations/{conv}/suggestions", token=cust).status_code == 403
    r = d.request("GET", f"/v1/conversations/{conv}/suggestions", token=agent)
    assert r.status_code == 200, r.text
    s = r.json()
    assert s["articles"][0]["id"] in ("refund-timing", "return-policy"), s["articles"]
    kb = [x for x in s["replies"] if x["source"] == "kb"]
    assert kb and kb[0]["article_ids"] == [s["articles"][0]["id"]] and kb[0]["text"]
    canned = [x for x in s["replies"] if x["source"] == "canned"]
    assert canned and canned[0]["text"].startswith("Hi Maria, your refund")
    assert "{{unknown}}" in canned[0]["text"]
    assert s["llm"] == "off"
    # the agent sends the canned one: the suggestion is recorded on the message
    used = canned[0]
    r = d.request("POST", f"/v1/conversations/{conv}/messages",
                  {"text": used["text"], "client_msg_id": "k1",
                   "suggestion": {"id": used["suggestion_id"], "source": "canned"}}, token=agent)
    assert r.status_code == 202, r.text
    ev = [e for e in d.wait_history(conv, 2) if e["type"] == "omnihub.message.outbound"][0]
    assert ev["data"]["suggestion"] == {"id": used["suggestion_id"], "source": "canned"}
    bad = {"text": "x", "client_msg_id": "k2", "suggestion": {"id": "s", "source": "magic"}}
    assert d.request("POST", f"/v1/conversations/{conv}/messages", bad,
                     token=agent).status_code == 400
    r = d.request("GET", "/v1/reports/bot", token=agent)
    assert r.status_code == 200 and r.json()["suggestions_used"]["canned"] == 1
    assert d.request("GET", "/v1/reports/bot", token=cust).status_code == 403
    assert d.request("DELETE", "/v1/canned/refund-eta", token=agent).status_code == 200
    assert d.request("GET", "/v1/canned", token=agent).json()["canned"] == []


def test_articles_and_bot_on_postgres(omnihub):
    import sys
    sys.path.insert(0, str(ROOT / "tests"))
    from pg_server import PgServer
    with PgServer() as pg:
        d = omnihub({"store.backend": "postgres", "store.postgres.dsn": pg.createdb("ohkb"),
                     "bot.enabled": "true"})
        admin, agent = d.token("boss", "admin", "x"), d.agent_token()
        load(d, admin)
        a = HELP[0]
        r = d.request("PUT", "/v1/kb/articles/" + a["id"],
                      {k: a[k] for k in ("title", "body", "tags")}, token=admin)
        assert r.json() == {"id": a["id"], "version": 2}
        assert d.request("DELETE", "/v1/kb/articles/" + HELP[1]["id"], token=admin).status_code == 200
        assert d.request("GET", "/v1/kb/articles/" + HELP[1]["id"], token=agent).status_code == 404
        d.restart()
        r = d.request("GET", "/v1/kb/search?q=" + "¿puedo devolver unas zapatillas?", token=agent)
        ids = [h["id"] for h in r.json()["results"]]
        assert "return-policy" in ids[:3] and HELP[1]["id"] not in ids
        conv = d.post_inbound({"channel": "api:test", "account": "a1", "contact": {"id": "u1"},
                               "message_id": "m1",
                               "text": "how long does it take to get my refund after I send a return back?",
                               "sent_at": "2026-01-01T00:00:00Z"}).json()["conversation_id"]
        deadline = time.time() + 15
        while time.time() < deadline:
            evs = d.history(conv)
            bot = [e for e in evs if e["data"].get("author", {}).get("kind") == "bot"]
            if bot:
                break
            time.sleep(0.05)
        assert bot and bot[0]["data"]["bot"]["kind"] == "answer"
        assert bot[0]["data"]["bot"]["article_ids"] == ["refund-timing"]
        d.stop()
