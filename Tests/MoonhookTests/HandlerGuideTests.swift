import Foundation
import MoonhookTestSupport
import Testing

/// docs/handlers.md, followed from an empty folder: every file it shows is written, every
/// `moonhook` command it shows is run (in order, and must succeed), and every output it shows after
/// a command must be what that command printed (`…` stands for any text, timings may differ).
@Suite(.timeLimit(.minutes(2))) struct HandlerGuideTests {
    enum Step {
        case file(path: String, text: String)
        case commands([String])
        case output([String])
    }

    static func steps() throws -> [Step] {
        let lines = try String(contentsOf: ReferenceSigner.root.appending(path: "docs/handlers.md"), encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var steps: [Step] = []
        var target: String?
        var index = 0
        var afterCommands = false
        while index < lines.count {
            let line = lines[index]
            if line.hasPrefix("<!-- file: "), line.hasSuffix(" -->") { target = String(line.dropFirst("<!-- file: ".count).dropLast(" -->".count)) }
            if line.hasPrefix("```"), line.count > 3 {
                let kind = line.dropFirst(3)
                var end = index + 1
                while lines[end] != "```" { end += 1 }
                let body = Array(lines[(index + 1)..<end])
                if let path = target {
                    steps.append(.file(path: path, text: body.joined(separator: "\n") + "\n"))
                    target = nil
                } else if kind == "sh" {
                    steps.append(.commands(body.filter { !$0.isEmpty && !$0.hasPrefix("#") }))
                } else if kind == "text", afterCommands {
                    steps.append(.output(body))
                }
                afterCommands = kind == "sh"
                index = end + 1
                continue
            }
            if !line.isEmpty, !line.hasPrefix("<!--") { afterCommands = false }
            index += 1
        }
        return steps
    }

    /// Whether `line` of the guide matches a line of `output`: `…` stands for any text, and a
    /// timing `(12.3 ms)` for any timing.
    static func matches(_ line: String, in output: String) -> Bool {
        let timing = /\(\d+(\.\d+)? ms\)/
        let wanted = line.replacing(timing, with: "(… ms)").components(separatedBy: "…")
        return output.split(separator: "\n").contains { candidate in
            var rest = Substring(String(candidate).replacing(timing, with: "(… ms)").replacingOccurrences(of: "…", with: "\u{1}"))
            for (index, part) in wanted.enumerated() {
                guard let range = rest.range(of: part) else { return false }
                if index == 0, range.lowerBound != rest.startIndex { return false }
                rest = rest[range.upperBound...]
            }
            return wanted.last == "" || rest.isEmpty
        }
    }

    @Test func theGuideRunsAsWritten() async throws {
        let steps = try Self.steps()
        #expect(steps.count >= 10)
        let folder = try TestHandlers(copyExamples: false)
        defer { folder.remove() }
        var environment: [String: String] = [:]
        var server: MoonhookProcess?
        defer {
            server?.process.terminate()
            server?.process.waitUntilExit()
        }
        var address: String?
        var last = ""
        var ran: [String] = []
        for step in steps {
            switch step {
            case .file(let path, let text):
                try folder.write(path, text)
            case .commands(let commands):
                for command in commands {
                    if command.hasPrefix("export ") {
                        let assignment = command.dropFirst("export ".count).split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                        environment[String(assignment[0])] = String(assignment[1])
                        continue
                    }
                    #expect(command.hasPrefix("moonhook "), "the guide runs moonhook only: \(command)")
                    var arguments = command.split(separator: " ").dropFirst().map(String.init)
                    if arguments.first == "serve" {
                        let process = try MoonhookProcess(arguments + ["--listen", "127.0.0.1:0"], environment: environment, directory: folder.folder)
                        server = process
                        let logs = LogLines(process.stderr)
                        address = try #require(await logs.first("moonhook listening")?["address"], "the server did not start: \(logs.all)")
                        continue
                    }
                    if let address { arguments = arguments.map { $0.replacingOccurrences(of: "127.0.0.1:8080", with: address) } }
                    let (given, frozen, directory) = (arguments, environment, folder.folder)
                    let result = try await MoonhookProcess.detached { try MoonhookProcess.run(given, environment: frozen, directory: directory) }
                    #expect(result.status == 0, "\(command): \(result.out)\(result.err)")
                    last = result.out + result.err
                    ran.append(arguments[0])
                }
            case .output(let lines):
                for line in lines where !line.isEmpty {
                    #expect(Self.matches(line, in: last), "the guide shows \"\(line)\", the command printed:\n\(last)")
                }
            }
        }
        #expect(ran == ["new", "test", "test", "check", "send", "deliveries", "fixture"])
    }
}
