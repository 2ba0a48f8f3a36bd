import Foundation
import LuaRuntime
import Moonhook
import MoonhookTestSupport
import Testing

/// Every ```lua example of docs/lua-api.md runs as a handler body and must succeed, so the
/// documentation cannot drift from the API.
@Suite("docs/lua-api.md examples")
struct LuaAPIDocumentationTests {
    static let examples: [String] = {
        let text = (try? String(contentsOf: ReferenceSigner.root.appending(path: "docs/lua-api.md"), encoding: .utf8)) ?? ""
        var blocks: [String] = []
        var current: [Substring]?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if current == nil, line.trimmingCharacters(in: .whitespaces) == "```lua" {
                current = []
            } else if current != nil, line.trimmingCharacters(in: .whitespaces) == "```" {
                blocks.append(current!.joined(separator: "\n"))
                current = nil
            } else if current != nil {
                current!.append(line)
            }
        }
        return blocks
    }()

    @Test func thereAreExamples() {
        #expect(Self.examples.count >= 6)
    }

    @Test(arguments: 0..<examples.count)
    func exampleRuns(_ index: Int) async throws {
        let server = OutboundServer()
        var policy = OutboundPolicy()
        policy.allowedRanges = [IPRange("127.0.0.1")!]
        let harness = try HandlerHarness(services: { TestServices.make($0, outbound: policy) })
        defer { harness.shutdown() }
        let body = Array(try Data(contentsOf: ReferenceSigner.root.appending(path: "fixtures/browser-use/agent.task.status_update.json")))
        let event = LuaValue.table(array: [], fields: ["body": .json(body), "raw": .string(body), "type": .string("agent.task.status_update")])
        let example = Self.examples[index]
        let outcome = try await server.run { port in
            try await harness.run(example, secrets: ["CHAT_URL": "http://127.0.0.1:\(port)/chat"], event: event)
        }
        #expect(outcome.error == nil, "example \(index + 1):\n\(example)\n\(String(describing: outcome.error))")
    }
}
