#!/usr/bin/env python3
"""Tests for scripts/sign.py: what it prints is accepted by each sender's own
verifier, and matches published test vectors. Run: python3 scripts/test_sign.py"""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

SIGN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sign.py")
FIXTURES = os.path.join(os.path.dirname(SIGN), "..", "fixtures", "browser-use")

STATUS_UPDATE = (
    b'{"type": "agent.task.status_update", "timestamp": "2025-01-15T10:30:00Z",'
    b' "payload": {"session_id": "session_xyz", "task_id": "task_abc123",'
    b' "status": "finished", "metadata": {"b": 1, "a": [1.5, null, true]}}}'
)


def sign(scheme, secret, body, *flags):
    """Runs sign.py as the Swift tests do and returns the parsed headers."""
    with tempfile.NamedTemporaryFile(suffix=".body", delete=False) as f:
        f.write(body)
    try:
        out = subprocess.run(
            [sys.executable, SIGN, scheme, secret, f.name, *map(str, flags)],
            check=True, capture_output=True,
        ).stdout.decode("utf-8")
    finally:
        os.unlink(f.name)
    assert out.count("\n") == 1 and out.endswith("\n"), repr(out)
    headers = json.loads(out)
    assert isinstance(headers, dict) and all(isinstance(v, str) for v in headers.values())
    return headers


def canonical(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)


class StandardWebhooks(unittest.TestCase):
    SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

    def test_library_verifies(self):
        from standardwebhooks import Webhook, WebhookVerificationError

        body = b'{"type": "test", "value": "caf\xc3\xa9"}'
        headers = sign("standard-webhooks", self.SECRET, body, "--id", "msg_abc")
        self.assertEqual(sorted(headers), ["webhook-id", "webhook-signature", "webhook-timestamp"])
        self.assertEqual(headers["webhook-id"], "msg_abc")
        self.assertEqual(Webhook(self.SECRET).verify(body, headers), json.loads(body))
        with self.assertRaises(WebhookVerificationError):
            Webhook(self.SECRET).verify(body + b" ", headers)

    def test_defaults(self):
        before = int(time.time())
        headers = sign("standard-webhooks", self.SECRET, b"{}")
        self.assertEqual(headers["webhook-id"], "msg_test")
        self.assertTrue(before <= int(headers["webhook-timestamp"]) <= time.time() + 1)

    def test_published_vector(self):
        headers = sign("standard-webhooks", self.SECRET, b'{"test": 2432232314}',
                       "--id", "msg_p5jXN8AQM9LWM0D4loKWxJek", "--timestamp", 1614265330)
        self.assertEqual(headers["webhook-timestamp"], "1614265330")
        self.assertEqual(headers["webhook-signature"], "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")


class Svix(unittest.TestCase):
    SECRET = "whsec_" + base64.b64encode(b"svix test secret 0123456789").decode()

    def test_library_verifies(self):
        from svix.webhooks import Webhook, WebhookVerificationError

        body = b'{"event": "invoice.paid"}'
        headers = sign("svix", self.SECRET, body, "--id", "msg_svix")
        self.assertEqual(sorted(headers), ["svix-id", "svix-signature", "svix-timestamp"])
        self.assertEqual(headers["svix-id"], "msg_svix")
        Webhook(self.SECRET).verify(body, headers)
        with self.assertRaises(WebhookVerificationError):
            Webhook(self.SECRET).verify(b'{"event": "invoice.unpaid"}', headers)


class Stripe(unittest.TestCase):
    SECRET = "whsec_test_secret"

    def test_library_verifies(self):
        import stripe

        body = b'{"id": "evt_1", "object": "event", "type": "charge.succeeded"}'
        now = int(time.time())
        headers = sign("stripe", self.SECRET, body, "--timestamp", now)
        header = headers["Stripe-Signature"]
        self.assertEqual(list(headers), ["Stripe-Signature"])
        self.assertRegex(header, r"^t=%d,v1=[0-9a-f]{64}$" % now)
        self.assertTrue(stripe.WebhookSignature.verify_header(body, header, self.SECRET, tolerance=300))
        self.assertEqual(stripe.Webhook.construct_event(body, header, self.SECRET).id, "evt_1")
        with self.assertRaises(stripe.SignatureVerificationError):
            stripe.WebhookSignature.verify_header(body, header, "whsec_other")


class Slack(unittest.TestCase):
    def test_library_verifies(self):
        from slack_sdk.signature import SignatureVerifier

        secret, body = "slack-signing-secret", b"token=abc&text=caf%C3%A9"
        headers = sign("slack", secret, body)
        self.assertEqual(sorted(headers), ["X-Slack-Request-Timestamp", "X-Slack-Signature"])
        verifier = SignatureVerifier(secret)
        self.assertTrue(verifier.is_valid(body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]))
        self.assertTrue(verifier.is_valid_request(body, headers))
        self.assertFalse(verifier.is_valid_request(body + b"&x=1", headers))

    def test_published_vector(self):
        body = (
            b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow"
            b"&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner"
            b"&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
            b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
            b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
        )
        headers = sign("slack", "8f742231b10e8888abcd99yyyzzz85a5", body, "--timestamp", 1531420618)
        self.assertEqual(headers["X-Slack-Request-Timestamp"], "1531420618")
        self.assertEqual(headers["X-Slack-Signature"],
                         "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503")


class BrowserUseV2(unittest.TestCase):
    SECRET = "bu-webhook-secret"

    def expected(self, timestamp, obj):
        message = f"{timestamp}.{canonical(obj)}".encode()
        return hmac.new(self.SECRET.encode(), message, hashlib.sha256).hexdigest()

    def test_library_verifies_whole_body(self):
        from browser_use_sdk.lib.webhooks import verify_webhook_event_signature

        with open(os.path.join(FIXTURES, "test.json"), "rb") as f:
            fixture = f.read()
        for body in (fixture, STATUS_UPDATE):
            headers = sign("browser-use-v2", self.SECRET, body, "--timestamp", 1736937000)
            self.assertEqual(sorted(headers), ["X-Browser-Use-Signature", "X-Browser-Use-Timestamp"])
            self.assertEqual(headers["X-Browser-Use-Timestamp"], "1736937000")
            self.assertEqual(headers["X-Browser-Use-Signature"], self.expected("1736937000", json.loads(body)))
            event = verify_webhook_event_signature(
                body=json.loads(body), expected_signature=headers["X-Browser-Use-Signature"],
                timestamp=headers["X-Browser-Use-Timestamp"], secret=self.SECRET)
            self.assertIsNotNone(event)
            self.assertEqual(event.type, json.loads(body)["type"])
            self.assertIsNone(verify_webhook_event_signature(
                body=json.loads(body), expected_signature=headers["X-Browser-Use-Signature"],
                timestamp="1736937001", secret=self.SECRET))

    def test_payload_only(self):
        from browser_use_sdk.lib.webhooks import create_webhook_signature, verify_webhook_event_signature

        headers = sign("browser-use-v2", self.SECRET, STATUS_UPDATE, "--timestamp", 1736937000, "--payload-only")
        payload = json.loads(STATUS_UPDATE)["payload"]
        self.assertEqual(headers["X-Browser-Use-Signature"], self.expected("1736937000", payload))
        self.assertEqual(headers["X-Browser-Use-Signature"],
                         create_webhook_signature(body=payload, timestamp="1736937000", secret=self.SECRET))
        # The installed SDK's verifier signs the whole body, so it rejects this one.
        self.assertIsNone(verify_webhook_event_signature(
            body=json.loads(STATUS_UPDATE), expected_signature=headers["X-Browser-Use-Signature"],
            timestamp="1736937000", secret=self.SECRET))

    def test_canonical_json_escapes_non_ascii_and_ignores_layout(self):
        body = '{"payload":{"test":"ok"},  "type":"test","note":"caf\u00e9 \u2603","timestamp":"x"}'.encode()
        headers = sign("browser-use-v2", self.SECRET, body, "--timestamp", 1)
        canon = '{"note":"caf\\u00e9 \\u2603","payload":{"test":"ok"},"timestamp":"x","type":"test"}'
        self.assertEqual(canonical(json.loads(body)), canon)
        self.assertEqual(headers["X-Browser-Use-Signature"],
                         hmac.new(self.SECRET.encode(), b"1." + canon.encode(), hashlib.sha256).hexdigest())

    def test_default_timestamp_is_now(self):
        before = int(time.time())
        headers = sign("browser-use-v2", self.SECRET, b'{"type": "test", "payload": {}}')
        self.assertTrue(before <= int(headers["X-Browser-Use-Timestamp"]) <= time.time() + 1)


class PlainHmac(unittest.TestCase):
    BODY = b'{"hello": "world"}\n'

    def test_github_published_vector(self):
        headers = sign("github", "It's a Secret to Everybody", b"Hello, World!")
        self.assertEqual(headers, {"X-Hub-Signature-256":
                                   "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"})

    def test_github_event_and_delivery(self):
        headers = sign("github", "s", self.BODY, "--event", "push", "--id", "d-1")
        self.assertEqual(headers["X-GitHub-Event"], "push")
        self.assertEqual(headers["X-GitHub-Delivery"], "d-1")

    def test_browser_use(self):
        headers = sign("browser-use", "s", self.BODY)
        self.assertEqual(headers, {"X-Webhook-Signature": hmac.new(b"s", self.BODY, hashlib.sha256).hexdigest()})

    def test_shopify(self):
        digest = hmac.new(b"s", self.BODY, hashlib.sha256).digest()
        self.assertEqual(sign("shopify", "s", self.BODY), {"X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode()})

    def test_generic(self):
        self.assertEqual(sign("hmac-sha1-hex", "s", self.BODY),
                         {"X-Signature": "sha1=" + hmac.new(b"s", self.BODY, hashlib.sha1).hexdigest()})
        digest = hmac.new(b"s", self.BODY, hashlib.sha512).digest()
        self.assertEqual(sign("hmac-sha512-base64", "s", self.BODY), {"X-Signature": base64.b64encode(digest).decode()})
        # RFC 2202 test case 2.
        self.assertEqual(sign("hmac-sha1-hex", "Jefe", b"what do ya want for nothing?"),
                         {"X-Signature": "sha1=effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"})

    def test_unknown_scheme_fails(self):
        with tempfile.NamedTemporaryFile() as f:
            result = subprocess.run([sys.executable, SIGN, "nope", "s", f.name], capture_output=True)
        self.assertNotEqual(result.returncode, 0)
        self.assertEqual(result.stdout, b"")


if __name__ == "__main__":
    unittest.main(verbosity=2)
