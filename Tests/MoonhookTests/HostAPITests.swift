import Foundation
import LuaRuntime
import Moonhook
import MoonhookStore
import Testing

@Suite("Host APIs: log and time")
struct HostAPITests {
    static func invoke(_ body: String, logger records: LogRecords, limits: LuaLimits = LuaLimits()) async throws -> (LuaOutcome, HandlerContext) {
        let worker = try HandlerRuntime.makeWorker(TestServices.make(records.logger(), limits: limits))
        defer { worker.shutdown() }
        let handler = try await worker.load(path: "src/h.lua", source: Array("return function(event)\n\(body)\nend".utf8))
        let context = HandlerContext(source: "src", logger: records.logger())
        let outcome = await worker.invoke(handler, arguments: [], info: LuaInvocationInfo(handlerPath: handler.path, context: context))
        return (outcome, context)
    }

    @Test func logLevelsAndFieldsReachSwiftLog() async throws {
        let records = LogRecords()
        let (outcome, context) = try await Self.invoke("""
            log.debug("d") log.info("i", {n = 1, t = {a = true}}) log.warn("w") log.error("e", {"x"}) print("p", 1, nil)
            """, logger: records)
        #expect(outcome.error == nil)
        #expect(records.all.map(\.level) == [.debug, .info, .warning, .error, .info])
        #expect(records.all.map(\.message) == ["d", "i", "w", "e", "p\t1\tnil"])
        #expect(records.all[1].metadata["n"] == "1")
        #expect(records.all[1].metadata["t"] == "{a=true}")
        #expect(records.all[3].metadata["1"] == "x")
        #expect(records.all.allSatisfy { $0.metadata["handler.path"] == "src/h.lua" })
        #expect(context.logLines.count == 5)
    }

    @Test func floodingIsRateLimitedAndCounted() async throws {
        let records = LogRecords()
        var limits = LuaLimits()
        limits.logLinesPerSecond = 1
        let (outcome, _) = try await Self.invoke("for i = 1, 1000 do log.info('line') end time.sleep(1100) log.info('after')", logger: records, limits: limits)
        #expect(outcome.error == nil)
        // A burst of twice the rate passes at once; a slow machine may refill one more token.
        let lines = records.all.filter { $0.message == "line" }
        #expect((2...3).contains(lines.count))
        let suppressed = try #require(records.all.first { $0.message == "handler log lines suppressed" })
        #expect(suppressed.metadata["suppressed"] == String(1000 - lines.count))
        #expect(records.all.last?.message == "after")
    }

    @Test func logArgumentsAreChecked() async throws {
        let (outcome, _) = try await Self.invoke("log.info({})", logger: LogRecords())
        #expect(outcome.error?.message == "src/h.lua:2: bad argument #1 to 'log.info' (string expected, got table)")
        let (fields, _) = try await Self.invoke("log.info('x', 5)", logger: LogRecords())
        #expect(fields.error?.message == "src/h.lua:2: bad argument #2 to 'log.info' (table expected)")
    }

    @Test func timeFunctions() async throws {
        let (outcome, _) = try await Self.invoke("""
            local before = time.now() time.sleep(20) local after = time.now()
            return after - before >= 0.015, time.iso(0), math.type(time.now())
            """, logger: LogRecords())
        #expect(try outcome.result.get() == [.boolean(true), .string("1970-01-01T00:00:00.000Z"), .string("float")])
        let (bad, _) = try await Self.invoke("time.sleep(-1)", logger: LogRecords())
        #expect(bad.error?.message == "src/h.lua:2: time.sleep: milliseconds must be between 0 and 60000")
    }
}
