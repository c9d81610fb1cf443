"""The published API descriptions stay usable by generators and true to the
daemon: every operation has a unique operationId and a security statement
(public ones say `security: []`), the licence is named, the webhook channel
list is that of the connectors, and the WebSocket send accepts what the
daemon accepts; every operation of the contract is described, and the
desk's answers match their description."""
import subprocess

import jsonschema
import yaml

from conftest import OMNIHUBCTL, ROOT

METHODS = {"get", "post", "put", "patch", "delete"}


def load(name):
    return yaml.safe_load((ROOT / "schemas" / name).read_text())


def test_openapi_operations_have_ids_security_and_a_licence():
    api = load("openapi.yaml")
    assert api["info"]["license"]["name"] == "MIT"
    ids = []
    for path, item in api["paths"].items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            assert "operationId" in op, f"{method} {path} has no operationId"
            ids.append(op["operationId"])
            assert "security" in op, f"{method} {path} says nothing of security"
            for req in op["security"]:
                for scheme in req:
                    assert scheme in api["components"]["securitySchemes"], scheme
    assert len(ids) == len(set(ids)), "operationIds repeat"


def test_webhook_channels_are_the_connectors():
    api = load("openapi.yaml")
    params = api["paths"]["/webhooks/{channel}"]["post"]["parameters"]
    documented = set(next(p for p in params if p["name"] == "channel")["schema"]["enum"])
    help_text = subprocess.run([str(OMNIHUBCTL), "--help"], capture_output=True, text=True).stdout
    channels = set(help_text.split("Channels for normalize:")[1].split())
    # api posts to /v1/inbound; email is polled over IMAP
    assert documented == channels - {"api", "email"}, documented ^ (channels - {"api", "email"})


def test_websocket_send_does_not_require_text():
    send = load("asyncapi.yaml")["components"]["messages"]["send"]["payload"]
    assert "text" not in send["required"]
    assert {"required": ["attachments"]} in send["anyOf"]


# every (method, path) the contract's tables name, as openapi.yaml spells the path
CONTRACT_OPERATIONS = [
    ("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics"), ("post", "/v1/inbound"),
    ("get", "/v1/conversations"), ("get", "/v1/conversations/{id}"),
    ("patch", "/v1/conversations/{id}"), ("post", "/v1/conversations/{id}/claim"),
    ("get", "/v1/conversations/{id}/events"), ("post", "/v1/conversations/{id}/messages"),
    ("post", "/v1/conversations/{id}/read"), ("get", "/v1/conversations/{id}/suggestions"),
    ("get", "/v1/agents"), ("put", "/v1/kb/articles/{id}"), ("get", "/v1/kb/articles/{id}"),
    ("delete", "/v1/kb/articles/{id}"), ("get", "/v1/kb/search"), ("get", "/v1/reports/kpis"),
    ("get", "/v1/reports/bot"), ("get", "/v1/contacts"), ("get", "/v1/contacts/{id}"),
    ("post", "/v1/contacts/{id}/merge"), ("post", "/v1/contacts/{id}/unmerge"),
    ("get", "/webhooks/{channel}"), ("post", "/webhooks/{channel}"), ("get", "/v1/ws"),
]


def test_openapi_describes_every_operation_of_the_contract():
    paths = load("openapi.yaml")["paths"]
    missing = [f"{m.upper()} {p}" for m, p in CONTRACT_OPERATIONS if m not in paths.get(p, {})]
    assert not missing, missing


def answer_schema(api, path, method, status):
    """The JSON Schema of an answer, its $refs resolvable in API."""
    content = api["paths"][path][method]["responses"][status]
    if "$ref" in content:
        content = api["components"]["responses"][content["$ref"].rsplit("/", 1)[1]]
    return dict(content["content"]["application/json"]["schema"], components=api["components"])


def test_desk_answers_match_openapi(omnihub):
    api = load("openapi.yaml")
    d = omnihub()

    def check(answer, path, method, status):
        assert str(answer.status_code) == status, answer.text
        jsonschema.validate(answer.json(), answer_schema(api, path, method, status))

    conv = d.post_inbound({"channel": "api:shop", "account": "acme",
                           "contact": {"id": "u1", "name": "Ann"}, "message_id": "m1",
                           "text": "hello", "sent_at": "2026-12-03T10:00:00Z"}).json()[
        "conversation_id"]
    d.wait_history(conv, 1)
    one, ag, other = "/v1/conversations/{id}", d.agent_token(), d.agent_token("agent-2")
    check(d.request("GET", f"/v1/conversations/{conv}", token=ag), one, "get", "200")
    check(d.request("GET", "/v1/conversations/nope", token=ag), one, "get", "404")
    check(d.request("PATCH", f"/v1/conversations/{conv}", {"priority": "high"}, token=ag,
                    headers={"If-Match": "0"}), one, "patch", "412")
    check(d.request("POST", f"/v1/conversations/{conv}/claim", token=ag),
          one + "/claim", "post", "200")
    check(d.request("POST", f"/v1/conversations/{conv}/claim", token=other),
          one + "/claim", "post", "409")
