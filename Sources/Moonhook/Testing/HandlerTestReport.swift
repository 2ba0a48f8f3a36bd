import Foundation
import WebhookVerification

/// The outcome of a `moonhook test` run, written for people (one line per case, the reasons under
/// a failed one), as JSON, or as JUnit XML for CI systems.
public struct HandlerTestReport: Sendable {
    public var results: [HandlerTestResult]
    public var duration: Duration

    public init(results: [HandlerTestResult], duration: Duration) {
        self.results = results
        self.duration = duration
    }

    public var failed: Int { results.filter { !$0.passed }.count }

    private static func milliseconds(_ duration: Duration) -> String {
        String(format: "%.1f", Double(duration.totalNanoseconds) / 1e6)
    }

    private static func place(_ result: HandlerTestResult) -> String {
        result.line.map { "\(result.file):\($0)" } ?? result.file
    }

    /// Every case's lines, then the summary.
    public var text: String { caseLines + summary }

    /// Per case: `ok` or `FAIL`, its place and name, and for a failure its reasons, indented.
    public var caseLines: String {
        var lines: [String] = []
        for result in results {
            lines.append("\(result.passed ? "ok  " : "FAIL") \(Self.place(result)): \(result.name) (\(Self.milliseconds(result.duration)) ms)")
            for failure in result.failures {
                lines += failure.split(separator: "\n", omittingEmptySubsequences: false).map { "       " + $0 }
            }
        }
        return lines.map { $0 + "\n" }.joined()
    }

    /// How many files and cases ran, and how many failed.
    public var summary: String {
        let files = Set(results.map(\.file)).count
        let outcome = failed == 0 ? "all \(results.count) passed" : "\(failed) of \(results.count) failed"
        return "\(files) test file\(files == 1 ? "" : "s"), \(results.count) case\(results.count == 1 ? "" : "s"): \(outcome) (\(Self.milliseconds(duration)) ms)\n"
    }

    /// `{"passed": n, "failed": n, "cases": [{"file", "line", "name", "passed", "duration_ms", "failures"}]}`.
    public var json: String {
        let quoted = CanonicalJSON.quoted
        let cases = results.map { result in
            "{\"file\":\(quoted(result.file)),\"line\":\(result.line.map(String.init) ?? "null"),\"name\":\(quoted(result.name)),"
                + "\"passed\":\(result.passed),\"duration_ms\":\(Self.milliseconds(result.duration)),"
                + "\"failures\":[\(result.failures.map(quoted).joined(separator: ","))]}"
        }
        return "{\"passed\":\(results.count - failed),\"failed\":\(failed),\"duration_ms\":\(Self.milliseconds(duration)),\"cases\":[\(cases.joined(separator: ","))]}\n"
    }

    /// One `<testsuite>` per test file, one `<testcase>` per case, a `<failure>` per failed case.
    public var junit: String {
        func escaped(_ text: String) -> String {
            var result = ""
            for scalar in text.unicodeScalars {
                switch scalar {
                case "&": result += "&amp;"
                case "<": result += "&lt;"
                case ">": result += "&gt;"
                case "\"": result += "&quot;"
                case "\n", "\t": result.unicodeScalars.append(scalar)
                // XML 1.0 has no way to write other control characters.
                case _ where scalar.value < 0x20: result += "?"
                default: result.unicodeScalars.append(scalar)
                }
            }
            return result
        }
        func seconds(_ duration: Duration) -> String { String(format: "%.3f", Double(duration.totalNanoseconds) / 1e9) }
        var lines = ["<?xml version=\"1.0\" encoding=\"UTF-8\"?>", "<testsuites name=\"moonhook test\" tests=\"\(results.count)\" failures=\"\(failed)\" time=\"\(seconds(duration))\">"]
        var files: [String] = []
        for result in results where !files.contains(result.file) { files.append(result.file) }
        for file in files {
            let cases = results.filter { $0.file == file }
            let time = cases.reduce(Duration.zero) { $0 + $1.duration }
            lines.append("  <testsuite name=\"\(escaped(file))\" tests=\"\(cases.count)\" failures=\"\(cases.filter { !$0.passed }.count)\" time=\"\(seconds(time))\">")
            for result in cases {
                let head = "    <testcase classname=\"\(escaped(file))\" name=\"\(escaped(result.name))\" file=\"\(escaped(file))\"\(result.line.map { " line=\"\($0)\"" } ?? "") time=\"\(seconds(result.duration))\""
                guard !result.passed else {
                    lines.append(head + "/>")
                    continue
                }
                let first = result.failures[0].split(separator: "\n").first.map(String.init) ?? ""
                lines.append(head + ">")
                lines.append("      <failure message=\"\(escaped(first))\">\(escaped(result.failures.joined(separator: "\n")))</failure>")
                lines.append("    </testcase>")
            }
            lines.append("  </testsuite>")
        }
        lines.append("</testsuites>")
        return lines.joined(separator: "\n") + "\n"
    }
}
