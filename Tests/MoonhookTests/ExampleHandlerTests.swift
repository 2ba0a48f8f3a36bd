import Foundation
import LuaRuntime
import Moonhook
import Testing

/// The example handlers in `handlers/` run against their fixtures in `fixtures/`, so that neither
/// can go stale.
@Suite("Example handlers")
struct ExampleHandlerTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func trial(_ handler: String, _ fixture: String, type: String? = nil) -> HandlerTrial {
        var trial = HandlerTrial(
            handlerFile: root.appending(path: "handlers/\(handler)"),
            eventFile: root.appending(path: "fixtures/\(fixture)"),
            type: type,
            handlersFolder: root.appending(path: "handlers")
        )
        trial.environment = ["CHAT_WEBHOOK_URL": ""]
        return trial
    }

    @Test func browserUseTaskFinished() async throws {
        let records = LogRecords()
        let report = try await Self.trial("browser-use/agent.task.status_update.lua", "browser-use/agent.task.status_update.json").run(logger: records.logger())
        #expect(try report.outcome.get() == [.table(array: [], fields: ["task": .string("task_abc123"), "status": .string("finished"), "notified": .boolean(true)])])
        #expect(report.logLines.map(\.message) == ["task finished", "no chat webhook configured; not posting"])
        #expect(report.logLines.first?.fields == ["task": "task_abc123", "session": "session_xyz"])
        let record = try #require(records.all.first { $0.message == "task finished" })
        #expect(record.metadata["handler.path"] == "browser-use/agent.task.status_update.lua")
        #expect(record.metadata["source"] == "browser-use")
        #expect(record.metadata["event.type"] == "agent.task.status_update")
        #expect(record.metadata["delivery.id"]?.count == 64)
    }

    @Test(arguments: [("started", "task started"), ("stopped", "task stopped before finishing")])
    func browserUseOtherStatuses(_ status: String, _ message: String) async throws {
        let folder = FileManager.default.temporaryDirectory.appending(path: "moonhook-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let fixture = try String(contentsOf: Self.root.appending(path: "fixtures/browser-use/agent.task.status_update.json"), encoding: .utf8)
        let event = folder.appending(path: "event.json")
        try fixture.replacingOccurrences(of: "\"finished\"", with: "\"\(status)\"").write(to: event, atomically: true, encoding: .utf8)
        var trial = Self.trial("browser-use/agent.task.status_update.lua", "browser-use/agent.task.status_update.json")
        trial.eventFile = event
        let report = try await trial.run(logger: LogRecords().logger())
        #expect(try report.outcome.get() == [.table(array: [], fields: ["task": .string("task_abc123"), "status": .string(status)])])
        #expect(report.logLines.map(\.message) == [message])
    }

    @Test func browserUseTest() async throws {
        let report = try await Self.trial("browser-use/test.lua", "browser-use/test.json").run(logger: LogRecords().logger())
        #expect(try report.outcome.get() == [.table(array: [], fields: ["ok": .boolean(true)])])
        #expect(report.logLines.first?.fields["sent_at"] == "2025-01-15T10:29:00Z")
    }

    @Test func inducedBrowserReady() async throws {
        let report = try await Self.trial("induced/browser_ready.lua", "induced/browser_ready.json").run(logger: LogRecords().logger())
        #expect(try report.outcome.get() == [.table(array: [], fields: [
            "session": .string("browser_iwnx132n1"), "stream": .string("https://chromebrowser.stream/streams?id=XXX"),
        ])])
    }

    @Test func inducedStepCompleted() async throws {
        let report = try await Self.trial("induced/step_completed.lua", "induced/step_completed.json").run(logger: LogRecords().logger())
        #expect(try report.outcome.get() == [.table(array: [], fields: ["session": .string("browser_iwnx132n1"), "steps": .integer(1)])])
    }

    @Test func failuresCarryTheHandlersPath() async throws {
        let report = try await Self.trial("browser-use/agent.task.status_update.lua", "induced/browser_ready.json").run(logger: LogRecords().logger())
        #expect(report.outcome.error?.message == "browser-use/agent.task.status_update.lua:22: attempt to index a nil value (local 'task')")
    }
}

extension Result where Failure == LuaError {
    var error: LuaError? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
