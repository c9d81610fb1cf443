"""The published API descriptions stay usable by generators and true to the
daemon: every operation has a unique operationId and a security statement
(public ones say `security: []`), the licence is named, the webhook channel
list is that of the connectors, and the WebSocket send accepts what the
daemon accepts."""
import subprocess

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
