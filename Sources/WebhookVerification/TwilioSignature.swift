/// What Twilio signs in `X-Twilio-Signature`: the URL it called (query string included), then each
/// POST field's name and value, sorted by name, as `twilio.request_validator.RequestValidator`
/// computes it (distinct names in code point order; a repeated name's distinct values, sorted).
///
/// Twilio's own validator accepts the URL both with and without the scheme's default port,
/// because Twilio's signing is inconsistent about it; so does this.
struct TwilioSignature: Sendable {
    /// The public URL as configured, then the same URL with its port removed or the default one added.
    let urls: [String]

    /// - Throws: when `publicURL` is not an absolute http(s) URL without a query or fragment.
    init(publicURL: String) throws(VerifierConfigurationError) {
        let lower = publicURL.lowercased()
        let scheme = lower.hasPrefix("https://") ? "https" : lower.hasPrefix("http://") ? "http" : nil
        guard let scheme else {
            throw VerifierConfigurationError("public_url must be the http:// or https:// URL Twilio calls")
        }
        guard !publicURL.contains("?"), !publicURL.contains("#") else {
            throw VerifierConfigurationError("public_url must not have a query string; the request's own is appended")
        }
        let afterScheme = publicURL.index(publicURL.startIndex, offsetBy: scheme.count + 3)
        let authorityEnd = publicURL[afterScheme...].firstIndex(of: "/") ?? publicURL.endIndex
        let authority = publicURL[afterScheme..<authorityEnd]
        guard !authority.isEmpty else { throw VerifierConfigurationError("public_url has no host") }
        let hostEnd = authority.lastIndex(of: "]") ?? authority.startIndex
        let other: String
        if let colon = authority[hostEnd...].lastIndex(of: ":") {
            other = String(publicURL[..<colon]) + publicURL[authorityEnd...]
        } else {
            other = String(publicURL[..<authorityEnd]) + (scheme == "https" ? ":443" : ":80") + publicURL[authorityEnd...]
        }
        urls = [publicURL, other]
    }

    /// The URLs Twilio may have signed for a request with `query` (without its `?`).
    func urls(query: String) -> [String] {
        query.isEmpty ? urls : urls.map { $0 + "?" + query }
    }

    /// The signed text for `url` and the request's `fields` (files are not POST fields).
    static func message(url: String, fields: [FormField]) -> [UInt8] {
        // Keyed by bytes: Swift's String equality and `<` treat canonical equivalents as equal,
        // Python's do not. Values are read as Python reads them: UTF-8, invalid bytes replaced.
        var values: [[UInt8]: Set<[UInt8]>] = [:]
        for field in fields where !field.isFile {
            values[Array(field.name.utf8), default: []].insert(Array(String(decoding: field.value, as: UTF8.self).utf8))
        }
        var message = Array(url.utf8)
        for name in values.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            for value in values[name, default: []].sorted(by: { $0.lexicographicallyPrecedes($1) }) {
                message += name
                message += value
            }
        }
        return message
    }
}
