import Foundation
import HummingbirdTesting
import MoonhookTestSupport
import NIOCore
import Testing

/// A `/metrics` answer as prometheus_client's text parser reads it (scripts/parse_metrics.py): what
/// a real scraper sees, not what a regular expression here would.
struct MetricsSamples {
    struct Sample {
        var family: String
        var type: String
        var name: String
        var labels: [String: String]
        var value: Double
    }

    let samples: [Sample]

    init(exposition: [UInt8]) throws {
        let output = try ReferenceSigner.python([ReferenceSigner.root.appending(path: "scripts/parse_metrics.py").path], input: exposition)
        let list = try #require(try JSONSerialization.jsonObject(with: output) as? [[String: Any]])
        samples = list.map {
            Sample(
                family: $0["family"] as? String ?? "", type: $0["type"] as? String ?? "", name: $0["name"] as? String ?? "",
                labels: $0["labels"] as? [String: String] ?? [:], value: ($0["value"] as? NSNumber)?.doubleValue ?? .nan)
        }
    }

    /// Asks `/metrics` of a test server with the admin token.
    static func scrape(_ client: any TestClientProtocol, token: String = "admin-token") async throws -> MetricsSamples {
        let response = try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: "Bearer \(token)"])
        #expect(response.status == .ok)
        #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
        return try MetricsSamples(exposition: Array(buffer: response.body))
    }

    /// The sum of the samples named `name` whose labels include `labels` (0 when there is none).
    func sum(_ name: String, _ labels: [String: String] = [:]) -> Double {
        matching(name, labels).reduce(0) { $0 + $1.value }
    }

    func matching(_ name: String, _ labels: [String: String] = [:]) -> [Sample] {
        samples.filter { sample in sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value } }
    }

    /// Every value any sample gives `label`.
    func values(of label: String) -> Set<String> {
        Set(samples.compactMap { $0.labels[label] })
    }

    /// The metric families exposed (sample names without `_bucket`, `_sum`, `_count`).
    var families: Set<String> {
        Set(samples.map { sample in
            for suffix in ["_bucket", "_sum", "_count"] where sample.name.hasSuffix(suffix) && sample.type == "histogram" {
                return String(sample.name.dropLast(suffix.count))
            }
            return sample.name
        })
    }
}
