import Foundation
import Logging
import LuaRuntime
import MoonhookStore
import WebhookVerification

/// Runs `*_test.lua` files: `moonhook test`. Each case gets a fresh Lua worker with the server's
/// sandbox, host APIs and limits, except that kv starts empty (or as the case seeds it), outbound
/// HTTP is answered from the case's canned responses and the time stands still. Its event is signed
/// with the case's secrets by the source's scheme and taken the server's way: verify, decode, find
/// type and id, route, run every matching handler.
public struct HandlerTestRunner: Sendable {
    public var limits: LuaLimits
    /// Per-call limits of `http` (calls per invocation); nothing is sent anywhere.
    public var outbound: OutboundPolicy

    public init(limits: LuaLimits = LuaLimits(), outbound: OutboundPolicy = OutboundPolicy()) {
        self.limits = limits
        self.outbound = outbound
    }

    /// What marks a test file; the loader never serves such a file as a handler.
    public static let suffix = "_test.lua"

    /// The test files of `paths` (test files, source folders or handlers folders), sorted.
    public static func testFiles(in paths: [String]) throws -> [URL] {
        var files: [URL] = []
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw HandlerTestError("\(path): no such file or folder") }
            let url = URL(fileURLWithPath: path).standardizedFileURL
            guard isDirectory.boolValue else {
                guard path.hasSuffix(suffix) else { throw HandlerTestError("\(path): a test file's name ends in \(suffix)") }
                files.append(url)
                continue
            }
            let enumerator = FileManager.default.enumerator(at: url, includingPropertiesForKeys: nil, options: [.skipsHiddenFiles])
            while let next = enumerator?.nextObject() as? URL {
                if next.lastPathComponent.hasSuffix(suffix) { files.append(next.standardizedFileURL) }
            }
        }
        return files.sorted { $0.path < $1.path }
    }

    /// Runs every case of the test file at `file` (inside a source folder), in order.
    public func run(file: URL) async -> [HandlerTestResult] {
        let suite = Suite(file: file)
        let started = ContinuousClock.now
        func failed(_ message: String) -> [HandlerTestResult] {
            [HandlerTestResult(file: suite.path, name: "(the test file)", line: nil, duration: .now - started, failures: [suite.withExcerpt(message)])]
        }
        guard let data = FileManager.default.contents(atPath: file.path) else { return failed("cannot read \(file.path)") }
        let source = Array(data)
        let cases: [LuaValue]
        let defaults: [String: LuaValue]
        do {
            let world = try CaseWorld(runner: self, now: HandlerTestCase.defaultNow, stubs: [])
            defer { world.pool.shutdown() }
            let driver = try await world.loadTestFile(suite, source: source)
            switch await world.call(driver, suite: suite, [.string("cases")]) {
            case .success(let values):
                guard case .table(let array, let fields)? = values.first else { return failed("\(suite.path): a test file must return a table of cases") }
                cases = array
                defaults = fields
            case .failure(let error):
                return failed(error.message.hasPrefix(suite.path + ":") ? error.message : "\(suite.path): \(error.message)")
            }
        } catch {
            return failed("\(error)")
        }
        let fileFields: Set<String> = ["secrets", "now"]
        if let unknown = defaults.keys.sorted().first(where: { !fileFields.contains($0) }) {
            return failed("\(suite.path): unknown file-level field '\(unknown)' (a file's table holds its cases, and may give 'secrets' and 'now' for all of them)")
        }
        guard !cases.isEmpty else { return failed("\(suite.path): the file returns no cases") }
        var results: [HandlerTestResult] = []
        for (offset, value) in cases.enumerated() {
            results.append(await run(case: offset + 1, value: value, defaults: defaults, suite: suite, source: source))
        }
        return results
    }

    private func run(case index: Int, value: LuaValue, defaults: [String: LuaValue], suite: Suite, source: [UInt8]) async -> HandlerTestResult {
        let started = ContinuousClock.now
        var name = "case \(index)"
        if case .table(_, let fields) = value, let text = fields["name"]?.text { name = text }
        var failures: [String]
        do {
            let testCase = try HandlerTestCase(index: index, value: value, defaults: defaults, testFile: suite.file)
            failures = try await run(testCase, suite: suite, source: source).map(suite.withExcerpt)
        } catch {
            failures = [suite.withExcerpt("\(error)")]
        }
        return HandlerTestResult(file: suite.path, name: name, line: suite.line(of: name), duration: .now - started, failures: failures)
    }

    private func run(_ testCase: HandlerTestCase, suite: Suite, source testSource: [UInt8]) async throws -> [String] {
        let world = try CaseWorld(runner: self, now: testCase.now, stubs: testCase.stubs)
        defer { world.pool.shutdown() }
        for (key, value) in testCase.seed { try await world.store.set(suite.source, key, value, ttl: nil) }
        var environment: [String: String] = [:]
        // Values of their own for what the case does not give; a `${NAME}` is a signing secret,
        // which Standard Webhooks wants in base64 after `whsec_` (any scheme takes that text).
        let variables = SourceConfiguration.variables(path: suite.folder.appending(path: "source.yaml").path)
        for name in variables.handlerSecrets { environment[name] = "test-\(name)" }
        for name in variables.references { environment[name] = "whsec_" + Data("test-\(name)".utf8).base64EncodedString() }
        environment.merge(testCase.secrets) { $1 }
        let source: Source
        switch await SourceCatalog.loadSource(name: suite.source, root: suite.root, pool: world.pool, environment: environment) {
        case .success(let loaded): source = loaded
        case .failure(let list): return list.problems.map(\.description)
        }
        let driver = try await world.loadTestFile(suite, source: testSource)
        let observation = try await world.observe(testCase, source: source)
        let matcher: HandlerTestObservation.Matcher = { texts, pattern in
            guard !texts.isEmpty else { return [] }
            switch await world.call(driver, suite: suite, [.string("match"), .nil, .table(array: texts.map { .string($0) }, fields: [:]), .string(pattern)]) {
            case .success(let values):
                guard case .table(let flags, _)? = values.first else { return texts.map { _ in false } }
                return flags.map { $0 == .boolean(true) }
            case .failure(let error):
                throw HandlerTestError("pattern \"\(pattern)\": \(error.message)")
            }
        }
        var failures = try await observation.failures(against: testCase.expectation, source: suite.source, matcher: matcher)
        if testCase.hasCheck, case .failure(let error) = await world.call(driver, suite: suite, [.string("check"), .integer(Int64(testCase.index)), observation.luaValue]) {
            failures.append("check: \(error.message)")
        }
        return failures
    }

    /// A test file and where it lies: `<root>/<source>/<name>_test.lua`.
    struct Suite {
        let file: URL
        let folder: URL
        let root: URL
        let source: String
        /// `<source>/<name>_test.lua`, as messages name it.
        let path: String

        init(file: URL) {
            self.file = file
            folder = file.deletingLastPathComponent()
            root = folder.deletingLastPathComponent()
            source = folder.lastPathComponent
            path = "\(source)/\(file.lastPathComponent)"
        }

        /// The line that names the case `name`, if the file spells it out.
        func line(of name: String) -> Int? {
            guard let text = try? String(contentsOf: file, encoding: .utf8) else { return nil }
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
            where line.contains("\"\(name)\"") || line.contains("'\(name)'") {
                return number + 1
            }
            return nil
        }

        /// `message` followed by the source line it points at, if it points at one.
        func withExcerpt(_ message: String) -> String {
            ([message] + SourceExcerpt.lines(for: message, handlersFolder: root)).joined(separator: "\n")
        }
    }
}

/// What one case's handlers run in: a worker of their own, a store, canned HTTP and a frozen clock.
private struct CaseWorld {
    let clock: FrozenClock
    let http: CannedHTTP
    let store: MemoryKeyValueStore
    let pool: WorkerPool
    let logger = Logger(label: "moonhook-test") { _ in SwiftLogNoOpLogHandler() }

    init(runner: HandlerTestRunner, now: Date, stubs: [CannedHTTP.Stub]) throws {
        let clock = FrozenClock(now)
        let http = CannedHTTP(stubs: stubs)
        let store = MemoryKeyValueStore(clock: { clock.milliseconds })
        let logger = self.logger
        self.clock = clock
        self.http = http
        self.store = store
        pool = try WorkerPool(count: 1, limits: runner.limits) {
            HandlerRuntime.libraries(
                logger: logger, limits: runner.limits, store: store, time: TimeAPI.library(clock: clock.handlerClock),
                http: http.library(policy: runner.outbound), extra: [FrozenClock.osLibrary()])
        }
    }

    func loadTestFile(_ suite: HandlerTestRunner.Suite, source: [UInt8]) async throws(LuaError) -> LuaHandler {
        try await pool.workers[0].loadModule(path: suite.path, source: source, prelude: HandlerTestLua.prelude, driver: HandlerTestLua.driver)
    }

    /// Invokes the test file's driver; a `check` function runs as a handler of the source would,
    /// so it may read the case's kv itself.
    func call(_ driver: LuaHandler, suite: HandlerTestRunner.Suite, _ arguments: [LuaValue]) async -> Result<[LuaValue], LuaError> {
        let context = HandlerContext(source: suite.source, logger: logger)
        return await pool.workers[0].invoke(driver, arguments: arguments, info: LuaInvocationInfo(handlerPath: suite.path, context: context)).result
    }

    /// Signs the case's request, takes it the server's way and runs the handlers it routes to.
    func observe(_ testCase: HandlerTestCase, source: Source) async throws -> HandlerTestObservation {
        let raw: [UInt8]
        var contentType = testCase.contentType
        switch testCase.body {
        case .file(let url):
            guard let data = FileManager.default.contents(atPath: url.path) else { throw HandlerTestError("case \(testCase.index): cannot read the event file \(url.path)") }
            raw = Array(data)
            contentType = contentType ?? FixtureContentType.of(url.path)
        case .inline(let bytes):
            raw = bytes
        }
        let type = contentType ?? "application/json"
        let overrides = FixtureOverrides(values: testCase.values, type: testCase.type, headers: testCase.headers)
        let changed: (body: [UInt8], headers: [(name: String, value: String)])
        do {
            changed = try overrides.apply(to: raw, contentType: type, typeSources: source.configuration.type)
        } catch {
            throw HandlerTestError("case \(testCase.index): \(error.description.replacingOccurrences(of: "--set", with: "set").replacingOccurrences(of: "--type", with: "type"))")
        }
        var headers = [(name: "Content-Type", value: type)] + (try source.verifier.sign(body: changed.body, now: clock.now, contentType: type))
        for (name, value) in changed.headers + overrides.headers {
            headers.removeAll { $0.name.lowercased() == name.lowercased() }
            headers.append((name, value))
        }
        let webhook = WebhookRequest(headers: headers, body: changed.body)
        var observation = HandlerTestObservation()
        let envelope: Envelope
        do {
            let format = try Envelope.format(of: webhook, scheme: source.configuration.verifier.scheme)
            try source.verifier.verify(webhook, now: clock.now)
            envelope = try Envelope.open(webhook, format: format, source: source)
        } catch let failure as HTTPFailure {
            observation.refusal = failure.message
            return observation
        } catch let failure as VerificationError {
            observation.refusal = failure.message
            return observation
        }
        observation.type = envelope.type
        observation.id = envelope.id
        let handlers = source.handlers(for: envelope.type)
        observation.handlers = handlers.map(\.path)
        for handler in handlers {
            let context = HandlerContext(source: source.name, logger: logger, redactions: source.redactions)
            let event = HandlerEvent(
                id: envelope.id, source: source.name, type: envelope.type, receivedAt: clock.now, attempt: testCase.attempt,
                headers: HookController.lowercased(headers), raw: changed.body, formJSON: source.configuration.formJSON)
            let outcome = await pool.invoke(handler, arguments: [event.luaValue], info: LuaInvocationInfo(handlerPath: handler.path, context: context))
            observation.logs += context.logLines.map { HandlerTestObservation.Line(handler: handler.path, line: $0) }
            switch outcome.result {
            case .success(let values):
                if handler.path == handlers.first?.path { observation.result = values.first }
            case .failure(let error):
                observation.errors.append(HandlerTestObservation.Failure(handler: handler.path, message: error.message))
            }
        }
        observation.kv = await store.list(source.name, prefix: "", limit: 100_000, after: nil)
        observation.calls = http.calls
        observation.unusedStubs = http.unused
        return observation
    }
}

/// One case's outcome.
public struct HandlerTestResult: Sendable {
    /// The test file, as `<source>/<name>_test.lua`.
    public var file: String
    public var name: String
    /// The line of the test file that names the case, when it does.
    public var line: Int?
    public var duration: Duration
    /// Why the case failed, one message each (with the source line it points at, when it does).
    public var failures: [String]

    public var passed: Bool { failures.isEmpty }
}
