import LuaRuntime
import Moonhook
import Testing

@Suite("Log volume is capped per line and per invocation")
struct LogCapTests {
    @Test func aLongLineIsCutWithAMarker() async throws {
        let records = LogRecords()
        var limits = LuaLimits()
        limits.logLineBytes = 200
        let (outcome, context) = try await HostAPITests.invoke("""
            log.info(('m'):rep(60), {a = ('x'):rep(30), b = ('y'):rep(500), c = 'dropped'})
            log.info('short', {k = 'v'})
            """, logger: records, limits: limits)
        #expect(outcome.error == nil)
        let long = try #require(records.all.first)
        #expect(long.message.hasPrefix(String(repeating: "m", count: 60)))
        #expect(long.message.hasSuffix(" [455 bytes dropped: log lines are capped at 200 bytes]"), "\(long.message)")
        #expect(long.metadata["a"] == String(repeating: "x", count: 30))
        #expect(long.metadata["b"] == String(repeating: "y", count: 53), "what is left of 200 bytes: the marker's 55, 60 + 1 + 30, 1 + 53")
        #expect(long.metadata["c"] == nil)
        let fields = ["a": long.metadata["a"] ?? "", "b": long.metadata["b"] ?? ""]
        #expect(long.message.utf8.count + fields.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count } == 200, "the marker counts")
        // What an attempt keeps is the cut line too.
        #expect(context.logLines.first?.message == long.message)
        #expect(records.all.last?.message == "short")
        #expect(records.all.last?.metadata["k"] == "v")
    }

    @Test func cutsFallOnCharacterBoundaries() async throws {
        let records = LogRecords()
        var limits = LuaLimits()
        limits.logLineBytes = 60
        _ = try await HostAPITests.invoke("log.info(('é'):rep(40))", logger: records, limits: limits)
        #expect(records.all.first?.message == "ééé [74 bytes dropped: log lines are capped at 60 bytes]", "\(records.all.first?.message ?? "")")
    }

    @Test func anInvocationStopsLoggingAtItsByteLimitWithOneWarning() async throws {
        let records = LogRecords()
        var limits = LuaLimits()
        limits.logLinesPerSecond = 100_000
        limits.logBytesPerInvocation = 10_000
        let (outcome, context) = try await HostAPITests.invoke(
            "for i = 1, 1000 do log.info(('z'):rep(1000)) end return 'done'", logger: records, limits: limits)
        #expect(try outcome.result.get() == [.string(Array("done".utf8))], "the handler goes on; only its lines are dropped")
        #expect(records.all.filter { $0.message.hasPrefix("zzz") }.count == 10)
        let warnings = records.all.filter { $0.message.contains("handler log lines dropped") }
        #expect(warnings.count == 1)
        #expect(warnings.first?.message.contains("10000 bytes") == true)
        #expect(context.logLines.count == 11, "the ten lines and the warning are kept with the attempt")
        #expect(context.logLines.last?.message.contains("handler log lines dropped") == true)
    }

    @Test func theDefaultsAreTheDocumentedOnes() {
        #expect(LuaLimits().logLineBytes == 8192)
        #expect(LuaLimits().logBytesPerInvocation == 65536)
    }
}

@Suite("No host I/O while a file loads")
struct LoadTimeAccessTests {
    @Test(arguments: [
        ("http.get('http://127.0.0.1:9/')", "http.request is available inside a handler call, not while its file loads"),
        ("http.post('http://127.0.0.1:9/', {body = 'x'})", "http.request is available inside a handler call, not while its file loads"),
        ("kv.get('k')", "kv.get is available inside a handler call, not while its file loads"),
        ("kv.set('k', 1)", "kv.set is available inside a handler call, not while its file loads"),
        ("time.sleep(1)", "time.sleep is available inside a handler call, not while its file loads"),
    ])
    func waitingFunctionsRaiseAtTheTopLevel(_ call: String, _ message: String) async throws {
        let worker = try HandlerRuntime.makeWorker(TestServices.make(LogRecords().logger()))
        defer { worker.shutdown() }
        do {
            _ = try await worker.load(path: "src/top.lua", source: Array("\(call)\nreturn function() end".utf8))
            Issue.record("\(call) ran at load time")
        } catch {
            #expect(error.message == "src/top.lua:1: \(message)")
        }
    }

    @Test func pureFunctionsAndLoggingWorkAtTheTopLevel() async throws {
        let records = LogRecords()
        let worker = try HandlerRuntime.makeWorker(TestServices.make(records.logger()))
        defer { worker.shutdown() }
        let handler = try await worker.load(path: "src/top.lua", source: Array("""
            local table = json.decode('{"a": 1}')
            local digest = hex.encode(crypto.sha256('x'))
            log.info('loaded', {digest = digest})
            local started = time.iso(time.now())
            return function() return table.a, #digest, #started > 0 end
            """.utf8))
        let outcome = await worker.invoke(handler, arguments: [], info: LuaInvocationInfo(handlerPath: handler.path))
        #expect(try outcome.result.get() == [.integer(1), .integer(64), .boolean(true)])
        #expect(records.all.contains { $0.message == "loaded" })
    }
}
