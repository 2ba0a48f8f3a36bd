import ArgumentParser
import Foundation
import Moonhook

struct TestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Run the handler tests (*_test.lua) beside the handlers.",
        discussion: """
            Each case's event is signed by its source's scheme and taken the server's way (verify, decode, type, route) to the \
            handlers, in the server's sandbox and limits, with a fresh kv, outbound HTTP answered from the case's canned responses \
            and the time frozen. Prints one line per case and the reasons under a failed one; exits 1 if any case fails. \
            See docs/handlers.md.
            Example: moonhook test handlers/induced
            """
    )

    @Argument(help: "Test files or folders holding them (default: the handlers folder).") var paths: [String] = []
    @Option(help: ArgumentHelp("Also write the results as JUnit XML to FILE.", valueName: "FILE")) var junit: String?
    @Flag(help: "Print the results as JSON instead of text.") var json = false
    @Flag(help: "Run again whenever a file under the paths changes (Ctrl-C ends it).") var watch = false
    @OptionGroup var options: ServerOptions

    func run() async throws {
        let configuration: ServerConfiguration
        do {
            configuration = try options.load(environment: ProcessInfo.processInfo.environment)
        } catch {
            throw ValidationError("\(error)")
        }
        let paths = self.paths.isEmpty ? [configuration.handlersFolder] : self.paths
        let runner = HandlerTestRunner(limits: configuration.limits, outbound: configuration.outbound)
        guard watch else {
            if try await runOnce(runner, paths: paths) == false { throw ExitCode(1) }
            return
        }
        var seen = Self.fingerprint(paths)
        while true {
            _ = try? await runOnce(runner, paths: paths)
            Self.write("watching \(paths.joined(separator: ", ")) for changes\n")
            while Self.fingerprint(paths) == seen { try await Task.sleep(for: .milliseconds(300)) }
            // Let an editor finish writing (save via a temporary file and a rename) before running.
            try await Task.sleep(for: .milliseconds(100))
            seen = Self.fingerprint(paths)
        }
    }

    /// Runs every test file once and reports; whether every case passed.
    private func runOnce(_ runner: HandlerTestRunner, paths: [String]) async throws -> Bool {
        let files: [URL]
        do {
            files = try HandlerTestRunner.testFiles(in: paths)
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let started = ContinuousClock.now
        var results: [HandlerTestResult] = []
        for file in files {
            let cases = await runner.run(file: file)
            if !json { Self.write(HandlerTestReport(results: cases, duration: .zero).caseLines) }
            results += cases
        }
        let report = HandlerTestReport(results: results, duration: .now - started)
        Self.write(json ? report.json : report.summary)
        if let junit {
            do {
                try Data(report.junit.utf8).write(to: URL(fileURLWithPath: junit))
            } catch {
                FileHandle.standardError.write(Data("error: cannot write \(junit): \(error.localizedDescription)\n".utf8))
                throw ExitCode(1)
            }
        }
        if files.isEmpty { FileHandle.standardError.write(Data("no test files (*_test.lua) under \(paths.joined(separator: ", "))\n".utf8)) }
        return report.failed == 0
    }

    /// Writes to standard output at once (not buffered: `--watch` output goes to a pipe too).
    private static func write(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    /// Size and modification time of every file under `paths`: what `--watch` compares.
    private static func fingerprint(_ paths: [String]) -> [String: [Int]] {
        var result: [String: [Int]] = [:]
        for path in paths {
            let enumerator = FileManager.default.enumerator(atPath: path)
            for name in [""] + ((enumerator?.allObjects as? [String]) ?? []) {
                let file = name.isEmpty ? path : path + "/" + name
                var info = stat()
                if stat(file, &info) == 0 { result[file] = [Int(info.st_size), Int(info.st_mtim.tv_sec), Int(info.st_mtim.tv_nsec)] }
            }
        }
        return result
    }
}
