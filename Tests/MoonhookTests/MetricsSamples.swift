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

    /// Reads the exposition's sample lines here, without the Python parser: only for waiting
    /// until a condition holds (`ObservabilityTests.scrapeUntil`), which scrapes many times and
    /// must not start a Python process each time. What a test asserts comes from `init(exposition:)`.
    init(polling exposition: [UInt8]) {
        var samples: [Sample] = []
        for line in String(decoding: exposition, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            let series = line[..<space]
            var labels: [String: String] = [:]
            var name = String(series)
            if let brace = series.firstIndex(of: "{"), series.hasSuffix("}") {
                name = String(series[..<brace])
                for pair in series[series.index(after: brace)..<series.index(before: series.endIndex)].split(separator: ",") {
                    guard let equals = pair.firstIndex(of: "=") else { continue }
                    labels[String(pair[..<equals])] = String(pair[pair.index(after: equals)...]).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                }
            }
            samples.append(Sample(family: name, type: "", name: name, labels: labels, value: value))
        }
        self.samples = samples
    }

    init(exposition: [UInt8]) throws {
        let output = try ReferenceSigner.python([ReferenceSigner.root.appending(path: "scripts/parse_metrics.py").path], input: exposition)
        let list = try #require(try JSONSerialization.jsonObject(with: output) as? [[String: Any]])
        samples = list.map {
            Sample(
                family: $0["family"] as? String ?? "", type: $0["type"] as? String ?? "", name: $0["name"] as? String ?? "",
                labels: $0["labels"] as? [String: String] ?? [:], value: ($0["value"] as? NSNumber)?.doubleValue ?? .nan)
        }
    }

    /// Asks `/metrics` of a test server with the admin token; parsed with prometheus_client unless `polling`.
    static func scrape(_ client: any TestClientProtocol, token: String = "admin-token", polling: Bool = false) async throws -> MetricsSamples {
        let response = try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: "Bearer \(token)"])
        #expect(response.status == .ok)
        #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
        return polling ? MetricsSamples(polling: Array(buffer: response.body)) : try MetricsSamples(exposition: Array(buffer: response.body))
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
            // A polled reading has no types: only histograms' series end so here.
            for suffix in ["_bucket", "_sum", "_count"] where sample.name.hasSuffix(suffix) && (sample.type == "histogram" || sample.type.isEmpty) {
                return String(sample.name.dropLast(suffix.count))
            }
            return sample.name
        })
    }
}
