#!/usr/bin/env python3
"""Signs webhook bodies the way each sender does, with the sender's own library
where one exists; used by the test suite.

    python3 scripts/sign.py SCHEME SECRET BODY_FILE [--timestamp UNIX_SECONDS]
        [--id MSG_ID] [--payload-only] [--event NAME] [--url URL] [--json]

Prints one JSON object mapping header name to header value, nothing else.

Libraries (pip install standardwebhooks svix stripe slack-sdk
'browser-use-sdk==2.0.15' twilio); each is imported only by the scheme that needs it.
browser-use-sdk is pinned to 2.0.15 because releases from 3.0 on no longer ship
browser_use_sdk.lib.webhooks.
"""

import argparse
import base64
import hashlib
import hmac
import json
import sys
import time
from datetime import datetime, timezone


def _hmac(secret, body, algorithm):
    return hmac.new(secret.encode("utf-8"), body, algorithm)


def sign_browser_use(args, body):
    # No reference library signs this variant: plain hmac over the raw body.
    return {"X-Webhook-Signature": _hmac(args.secret, body, hashlib.sha256).hexdigest()}


def sign_browser_use_v2(args, body):
    from browser_use_sdk.lib.webhooks import create_webhook_signature

    # The SDK signs f"{timestamp}.{json.dumps(obj, separators=(',', ':'), sort_keys=True)}"
    # and treats the timestamp as an opaque string; the sender sends unix seconds.
    obj = json.loads(body)
    if args.payload_only:
        obj = obj["payload"]
    timestamp = str(args.timestamp)
    signature = create_webhook_signature(body=obj, timestamp=timestamp, secret=args.secret)
    return {"X-Browser-Use-Signature": signature, "X-Browser-Use-Timestamp": timestamp}


def sign_standard_webhooks(args, body):
    from standardwebhooks import Webhook

    msg_id = args.id or "msg_test"
    when = datetime.fromtimestamp(args.timestamp, tz=timezone.utc)
    signature = Webhook(args.secret).sign(msg_id, when, body.decode("utf-8"))
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(args.timestamp),
        "webhook-signature": signature,
    }


def sign_svix(args, body):
    from svix.webhooks import Webhook

    msg_id = args.id or "msg_test"
    when = datetime.fromtimestamp(args.timestamp, tz=timezone.utc)
    signature = Webhook(args.secret).sign(msg_id, when, body.decode("utf-8"))
    return {
        "svix-id": msg_id,
        "svix-timestamp": str(args.timestamp),
        "svix-signature": signature,
    }


def sign_github(args, body):
    # GitHub publishes no Python signing library: plain hmac.
    headers = {"X-Hub-Signature-256": "sha256=" + _hmac(args.secret, body, hashlib.sha256).hexdigest()}
    if args.event:
        headers["X-GitHub-Event"] = args.event
    if args.id:
        headers["X-GitHub-Delivery"] = args.id
    return headers


def sign_stripe(args, body):
    import stripe

    header = stripe.WebhookSignature.generate_signature_header(
        body.decode("utf-8"), args.secret, timestamp=args.timestamp
    )
    return {"Stripe-Signature": header}


def sign_slack(args, body):
    from slack_sdk.signature import SignatureVerifier

    timestamp = str(args.timestamp)
    signature = SignatureVerifier(args.secret).generate_signature(timestamp=timestamp, body=body)
    return {"X-Slack-Signature": signature, "X-Slack-Request-Timestamp": timestamp}


def sign_shopify(args, body):
    # Shopify publishes no Python signing library: plain hmac.
    digest = _hmac(args.secret, body, hashlib.sha256).digest()
    return {"X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode("ascii")}


def sign_hmac_sha1_hex(args, body):
    return {"X-Signature": "sha1=" + _hmac(args.secret, body, hashlib.sha1).hexdigest()}


def sign_hmac_sha512_base64(args, body):
    digest = _hmac(args.secret, body, hashlib.sha512).digest()
    return {"X-Signature": base64.b64encode(digest).decode("ascii")}


class _FormFields(dict):
    """Form fields as Flask's MultiDict hands them to Twilio's validator: name -> every value."""

    def getall(self, name):
        return self[name]


def sign_twilio(args, body):
    from urllib.parse import parse_qsl

    from twilio.request_validator import RequestValidator

    validator = RequestValidator(args.secret)
    if args.json:
        # A JSON body is signed as the URL alone; the URL carries the body's bodySHA256.
        params, checked = {}, body.decode("utf-8")
    else:
        params = _FormFields()
        for name, value in parse_qsl(body.decode("utf-8"), keep_blank_values=True):
            params.setdefault(name, []).append(value)
        checked = params
    signature = validator.compute_signature(args.url, params)
    if not validator.validate(args.url, checked, signature):
        raise SystemExit("twilio's RequestValidator refuses its own signature")
    headers = {"X-Twilio-Signature": signature}
    if args.id:
        headers["I-Twilio-Idempotency-Token"] = args.id
    return headers


SCHEMES = {
    "browser-use": sign_browser_use,
    "browser-use-v2": sign_browser_use_v2,
    "standard-webhooks": sign_standard_webhooks,
    "svix": sign_svix,
    "github": sign_github,
    "stripe": sign_stripe,
    "slack": sign_slack,
    "shopify": sign_shopify,
    "hmac-sha1-hex": sign_hmac_sha1_hex,
    "hmac-sha512-base64": sign_hmac_sha512_base64,
    "twilio": sign_twilio,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description="Print the signature headers a webhook sender would send.")
    parser.add_argument("scheme", choices=sorted(SCHEMES))
    parser.add_argument("secret")
    parser.add_argument("body_file")
    parser.add_argument("--timestamp", type=int, help="unix seconds (default: now)")
    parser.add_argument("--id", help="message / delivery id")
    parser.add_argument("--payload-only", action="store_true", help="browser-use-v2: sign body['payload'] only")
    parser.add_argument("--event", help="github: X-GitHub-Event")
    parser.add_argument("--url", help="twilio: the full URL the request is sent to, query string included")
    parser.add_argument("--json", action="store_true", help="twilio: the body is JSON (its hash is in the URL)")
    args = parser.parse_args(argv)
    if args.timestamp is None:
        args.timestamp = int(time.time())
    with open(args.body_file, "rb") as f:
        body = f.read()
    json.dump(SCHEMES[args.scheme](args, body), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
