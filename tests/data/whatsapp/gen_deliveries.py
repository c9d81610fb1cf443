#!/usr/bin/python3
"""gen_deliveries.py - signed WhatsApp webhook deliveries for load tests
(omnihub-bench ingest --channel whatsapp) and soak runs.

Each output line is "<X-Hub-Signature-256 value>\t<body>": the body is a
compact delivery shaped like Meta's documented text message webhook (see
text.json), with unique wamids, CONTACTS customers spread over NUMBERS
business phone numbers, BATCH messages per delivery.

    gen_deliveries.py --secret APP_SECRET --count 10000 --batch 1 > wa.tsv
"""
import argparse
import hashlib
import hmac
import json
import sys
import time


def delivery(seq, batch, contacts, numbers, run):
    """One delivery holding BATCH messages, numbered from SEQ."""
    by_number = {}
    for i in range(seq, seq + batch):
        pnid = str(106540352242922 + i % numbers)
        wa_id = str(16505550000 + i % contacts)
        value = by_number.setdefault(pnid, {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "1555%07d" % (int(pnid) % 10**7),
                         "phone_number_id": pnid},
            "contacts": [], "messages": []})
        if not any(c["wa_id"] == wa_id for c in value["contacts"]):
            value["contacts"].append({"profile": {"name": "Customer %s" % wa_id[-4:]},
                                      "wa_id": wa_id})
        value["messages"].append({
            "from": wa_id, "id": "wamid.BENCH%s.%d" % (run, i),
            "timestamp": str(int(time.time())), "type": "text",
            "text": {"body": "load test message %d" % i}})
    changes = [{"field": "messages", "value": v} for v in by_number.values()]
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": changes}]}


def sign(secret, body):
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--secret", required=True, help="whatsapp.app_secret of the hub")
    ap.add_argument("--count", type=int, default=1000, help="messages in all")
    ap.add_argument("--batch", type=int, default=1, help="messages per delivery")
    ap.add_argument("--contacts", type=int, default=1000, help="distinct customers")
    ap.add_argument("--numbers", type=int, default=1, help="distinct business numbers")
    ap.add_argument("--run", default=str(int(time.time())), help="wamid prefix (unique per run)")
    a = ap.parse_args()
    out = sys.stdout.buffer
    for seq in range(0, a.count, a.batch):
        n = min(a.batch, a.count - seq)
        body = json.dumps(delivery(seq, n, a.contacts, a.numbers, a.run),
                          separators=(",", ":")).encode()
        out.write(sign(a.secret, body).encode() + b"\t" + body + b"\n")


if __name__ == "__main__":
    main()
