/// How a sender proves a webhook is theirs. Chosen per source in `source.yaml` (`scheme:`).
public enum VerificationScheme: String, Sendable, CaseIterable, Codable {
    /// Browser Use, first variant: `X-Webhook-Signature` = hex HMAC-SHA256 of the raw body.
    case browserUse = "browser-use"
    /// Browser Use, timestamped: `X-Browser-Use-Signature` over `{timestamp}.{canonical JSON}`.
    case browserUseV2 = "browser-use-v2"
    /// Standard Webhooks (and Svix's `svix-*` headers): base64 HMAC over `{id}.{timestamp}.{body}`.
    case standardWebhooks = "standard-webhooks"
    /// GitHub: `X-Hub-Signature-256: sha256=<hex>` over the raw body.
    case github
    /// Stripe: `Stripe-Signature: t=...,v1=...` over `{t}.{body}`.
    case stripe
    /// Slack: `X-Slack-Signature: v0=<hex>` over `v0:{timestamp}:{body}`.
    case slack
    /// Shopify: `X-Shopify-Hmac-Sha256` = base64 HMAC-SHA256 of the raw body.
    case shopify
    /// Any HMAC of the raw body: header, prefix, algorithm and encoding are configured.
    case hmac
    /// A shared token: in a header, as a bearer token, or as basic-auth credentials.
    case token
    /// Twilio: `X-Twilio-Signature` = base64 HMAC-SHA1 over the public URL and the POST fields.
    case twilio
    /// No verification at all. Must be written explicitly; the server warns about it at start.
    case none

    /// Whether the scheme checks a signed timestamp against a tolerance by default.
    public var isTimestamped: Bool {
        switch self {
        case .browserUseV2, .standardWebhooks, .stripe, .slack: true
        default: false
        }
    }

    /// Whether form bodies are accepted: every scheme but `browser-use-v2`, which signs the body
    /// re-serialised as canonical JSON and so can only take JSON.
    public var acceptsForms: Bool { self != .browserUseV2 }
}

/// How a signature is written in its header.
public enum SignatureEncoding: String, Sendable, Codable {
    case hex
    case base64
}

/// Where a `token` scheme finds the token.
public enum TokenLocation: Sendable, Equatable {
    /// The whole value of this header.
    case header(String)
    /// `Authorization: Bearer <token>`.
    case bearer
    /// `Authorization: Basic base64(user:password)`; the secret is `user:password`.
    case basic
}

/// Which part of a Browser Use body the timestamped signature covers.
public enum SignedPart: String, Sendable, Codable {
    /// The whole JSON body.
    case body
    /// The body's `payload` object only.
    case payload
}
