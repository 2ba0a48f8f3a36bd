import Foundation
import LuaRuntime
@testable import Moonhook
import MoonhookStore
import Testing

/// Values that have trapped hosts: integer limits (overflowing arithmetic), floats with no Int64
/// (conversions), NaN, -0.0, 2^53 + 1, empty and huge strings, deep and cyclic tables, wrong types.
let extremeValues: [String] = [
    "math.maxinteger", "math.mininteger", "math.huge", "-math.huge", "0/0", "-0.0", "2^53 + 1", "2^63", "-(2^63)", "1e308", "-1e308",
    "5e-324", "0", "-1", "1.5", "''", "big", "'\\0\\255'", "deep", "cyclic", "{}", "{1, 2, 3}", "{[math.maxinteger] = 1}", "liar", "true",
    "print", "coroutine.running()", "json.null", "nil",
]

/// Every host function, with `X` where each extreme value goes in turn (one argument or one option at
/// a time), so that no crossing from Lua into Swift is left untried.
let hostCallTemplates: [String] = [
    "log.info(X)", "log.error('m', X)", "log.warn('m', {field = X})", "log.debug('m', {X})", "print(X, X)",
    "time.iso(X)", "time.sleep(X)", "time.now(X)",
    "kv.get(X)", "kv.set(X, 1)", "kv.set('k', X)", "kv.set('k', 1, X)", "kv.set('k', 1, {ttl = X})",
    "kv.delete(X)", "kv.incr(X)", "kv.incr('n', X)", "kv.incr('n', 1, {ttl = X})", "kv.incr('n', X, {ttl = X})",
    "kv.add(X, 1)", "kv.add('a', X, {ttl = X})", "kv.cas('c', X, 1)", "kv.cas('c', nil, X, {ttl = X})",
    "kv.list(X)", "kv.list('', X)", "kv.list('', {limit = X})", "kv.list('', {cursor = X})",
    "http.request(X)", "http.request({url = X})", "http.request({url = 'http://127.0.0.1:9/', method = X})",
    "http.request({url = 'http://127.0.0.1:9/', timeout = X})", "http.request({url = 'http://127.0.0.1:9/', headers = X})",
    "http.request({url = 'http://127.0.0.1:9/', headers = {x = X}})", "http.request({url = 'http://127.0.0.1:9/', body = X})",
    "http.request({url = 'http://127.0.0.1:9/', json = X})", "http.get(X)", "http.post('http://127.0.0.1:9/', X)",
    "crypto.hmac(X, 'k', 'd')", "crypto.hmac('sha256', X, 'd')", "crypto.hmac('sha256', 'k', X)",
    "crypto.sha256(X)", "crypto.sha1(X)", "crypto.sha512(X)", "crypto.equals(X, X)", "crypto.random_bytes(X)",
    "hex.encode(X)", "hex.decode(X)", "base64.encode(X)", "base64.decode(X)", "uuid(X)",
    "json.encode(X)", "json.decode(X)", "json.array(X)", "json.encode({X})", "json.encode({k = X})",
    "secrets[X]", "string.rep('x', X)", "string.rep('', X, '')", "table.unpack({}, 1, X)", "table.unpack({}, X, X)",
    "table.move({}, 1, X, 2)", "table.concat({}, '', 1, X)", "string.byte('abc', X, X)", "utf8.char(X)", "select(X, 1)",
    "string.format('%d', X)", "string.format('%5.1f', X)", "math.tointeger(X)", "('x'):sub(X, X)", "tostring(X)",
]

@Suite("No value a handler passes can trap the host")
struct HostValueFuzzTests {
    /// Definitions every case can use: a huge string, a deep table, a cyclic table.
    static let prelude = """
        local big = ('x'):rep(300000)
        local deep = {} do local t = deep for i = 1, 200 do t.next = {} t = t.next end end
        local cyclic = {} cyclic.self = cyclic cyclic[1] = cyclic
        local liar = {} for i = 62, 0, -1 do liar[1 << i] = 1 end   -- 63 elements, #liar = 2^62
        """

    @Test func everyHostFunctionWithEveryExtremeValue() async throws {
        let records = LogRecords()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("moonhook-fuzz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try await openStore(directory.appendingPathComponent("kv.sqlite").path, logger: records.logger())
        do {
            try await Self.callEverything(store: store, records: records)
        } catch {
            await store.close()
            throw error
        }
        await store.close()
    }

    private static func callEverything(store: any Store, records: LogRecords) async throws {
        var limits = LuaLimits()
        limits.wallClock = .seconds(120)
        limits.instructions = 1 << 40
        let harness = try HandlerHarness(services: { TestServices.make($0, limits: limits, store: store) }, records: records)
        defer { harness.shutdown() }
        var calls: [String] = []
        for template in hostCallTemplates {
            for value in extremeValues { calls.append(template.replacingOccurrences(of: "X", with: value)) }
        }
        let body = prelude + "\nlocal failures = {}\n" + calls.enumerated().map { index, call in
            "do local ok, err = pcall(function() return \(call) end) if not ok then failures[#failures + 1] = tostring(err) end end"
        }.joined(separator: "\n") + "\nreturn failures"
        let outcome = try await harness.run(body, secrets: ["TOKEN": "s3cret"])
        // Getting here at all is the main assertion: a trap would have ended the test process.
        let failures = try outcome.result.get()
        guard case .table(let messages, _)? = failures.first else { Issue.record("no list of failures: \(failures)"); return }
        #expect(messages.count > calls.count / 3, "most extreme values are refused: \(messages.count) of \(calls.count)")
        for message in messages {
            let text = message.text ?? ""
            #expect(!text.isEmpty && !text.contains("\n"), "one-line error: \(text.prefix(300))")
            #expect(!text.contains("moonhook.sandbox"), "names the handler's line: \(text.prefix(300))")
        }
        // The same worker still serves an ordinary invocation.
        #expect(try await harness.run("return 1 + 1").result.get() == [.integer(2)])
    }

    @Test(arguments: ["timeout", "retries", "retry_delay", "concurrency", "on"])
    func handlerOptionsWithEveryExtremeValue(_ option: String) async throws {
        let harness = try HandlerHarness()
        defer { harness.shutdown() }
        for value in extremeValues {
            let source = HostValueFuzzTests.prelude + "\nreturn { \(option) = \(value), handle = function() end }"
            do {
                let handler = try await harness.worker.load(path: "src/options.lua", source: Array(source.utf8))
                await harness.worker.unload(handler)
            } catch {
                #expect(!error.message.contains("\n"), "one-line error: \(error.message)")
                #expect(error.message.hasPrefix("src/options.lua"), "\(error.message)")
            }
        }
        #expect(try await harness.run("return 'still serving'").result.get() == [.string(Array("still serving".utf8))])
    }

    /// What a `respond: sync` handler returns becomes an HTTP answer: its status and headers too.
    @Test func syncAnswersWithEveryExtremeValue() async throws {
        let harness = try HandlerHarness()
        defer { harness.shutdown() }
        let shapes = ["{status = X}", "{status = 200, headers = {x = X}}", "{status = 200, headers = {[X] = 'v'}}", "{status = 200, body = X}", "X"]
        for shape in shapes {
            for value in extremeValues {
                let outcome = try await harness.run(HostValueFuzzTests.prelude + "\nreturn " + shape.replacingOccurrences(of: "X", with: value))
                guard case .success(let values) = outcome.result else { continue }
                do {
                    _ = try HandlerResponse.make(from: values.first)
                } catch {
                    #expect(!error.message.contains("\n"), "one-line error: \(error.message)")
                }
            }
        }
    }
}
