import Foundation
import Logging
import LuaRuntime
import WebhookVerification

/// What came of one case: how the request was taken, what the handlers returned, stored, sent and
/// logged. `check` functions receive it as a table; `failures` compares it with the expectation.
struct HandlerTestObservation: Sendable {
    /// A handler's error.
    struct Failure: Sendable {
        var handler: String
        var message: String
    }

    /// A log line and the handler that wrote it.
    struct Line: Sendable {
        var handler: String
        var line: HandlerContext.LogLine
    }

    /// Why the request was refused (signature, body, type), if it was.
    var refusal: String?
    var type: String?
    var id: String?
    var handlers: [String] = []
    var result: LuaValue?
    var errors: [Failure] = []
    var kv: [(key: String, value: [UInt8])] = []
    var calls: [CannedHTTP.Call] = []
    var unusedStubs: [CannedHTTP.Stub] = []
    var logs: [Line] = []

    /// Tells which texts match a Lua pattern (`string.find`, run by the test's worker).
    typealias Matcher = ([String], String) async throws -> [Bool]

    /// One line per way the observation differs from `expected`; empty when the case passes.
    func failures(against expected: HandlerTestExpectation, source: String, matcher: Matcher) async throws -> [String] {
        if let refusal {
            guard let pattern = expected.refused else { return ["the request was refused: \(refusal)"] }
            return try await matcher([refusal], pattern)[0] ? [] : ["refused with \"\(refusal)\", which does not match \"\(pattern)\""]
        }
        if let pattern = expected.refused { return ["expected the request to be refused (\"\(pattern)\"), it was accepted as type '\(type ?? "")'"] }
        var failures: [String] = []
        if let wanted = expected.type, wanted != type { failures.append("event type: expected '\(wanted)', got '\(type ?? "")'") }
        if let wanted = expected.id, wanted != id { failures.append("delivery id: expected '\(wanted)', got '\(id ?? "")'") }
        if let wanted = expected.handlers {
            if wanted != handlers { failures.append("handlers run: expected \(Self.list(wanted)), got \(Self.list(handlers))") }
        } else if handlers.isEmpty {
            failures.append("no handler of source '\(source)' runs for event type '\(type ?? "")' (check source.yaml's type: and the handler's file name or 'on')")
        }
        failures += try await errorFailures(expected.error, matcher: matcher)
        if let wanted = expected.result {
            let got = result.flatMap { try? JSONText.encode($0, what: "result") }.flatMap(JSONText.parse)
            if got.map({ !JSONText.equal($0, wanted) }) ?? true {
                failures.append("result: expected \(JSONText.show(wanted)), got \(got.map(JSONText.show) ?? "nothing")")
            }
        }
        if let wanted = expected.kv { failures += kvFailures(wanted) }
        failures += callFailures(expected.calls)
        failures += try await logFailures(expected.logs, matcher: matcher)
        return failures
    }

    private func errorFailures(_ pattern: String?, matcher: Matcher) async throws -> [String] {
        guard let pattern else { return errors.map { "handler failed: \($0.message)" } }
        guard !errors.isEmpty else { return ["expected an error matching \"\(pattern)\", the handlers succeeded"] }
        let matched = try await matcher(errors.map(\.message), pattern)
        return zip(errors, matched).filter { !$1 }.map { "error \"\($0.0.message)\" does not match \"\(pattern)\"" }
    }

    private func kvFailures(_ wanted: [String: JSONValue]) -> [String] {
        var failures: [String] = []
        let stored = Dictionary(kv.map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
        for key in Set(wanted.keys).union(stored.keys).sorted() {
            switch (wanted[key], stored[key]) {
            case (let expected?, nil): failures.append("kv \"\(key)\": expected \(JSONText.show(expected)), not set")
            case (nil, let value?): failures.append("kv \"\(key)\": not expected, holds \(JSONText.show(value))")
            case (let expected?, let value?):
                if JSONText.parse(value).map({ !JSONText.equal($0, expected) }) ?? true {
                    failures.append("kv \"\(key)\": expected \(JSONText.show(expected)), got \(JSONText.show(value))")
                }
            case (nil, nil): break
            }
        }
        return failures
    }

    private func callFailures(_ wanted: [HandlerTestExpectation.Call]?) -> [String] {
        var failures: [String] = []
        for (index, call) in calls.enumerated() where !call.answered {
            failures.append("call \(index + 1): \(call.method) \(call.url) has no canned response in the case's http list")
        }
        for stub in unusedStubs {
            failures.append("canned response http[\(stub.index)] (\(stub.method ?? "any method") \(stub.url)) was not used")
        }
        guard let wanted else { return failures }
        for index in 0..<max(wanted.count, calls.count) {
            let place = "call \(index + 1)"
            guard index < calls.count else {
                failures.append("\(place): expected \(wanted[index].method ?? "a call to") \(wanted[index].url), no call was made")
                continue
            }
            let call = calls[index]
            guard index < wanted.count else {
                failures.append("\(place): not expected: \(call.method) \(call.url)")
                continue
            }
            let expected = wanted[index]
            if expected.url != call.url || (expected.method.map { $0 != call.method } ?? false) {
                failures.append("\(place): expected \(expected.method ?? call.method) \(expected.url), got \(call.method) \(call.url)")
                continue
            }
            if let body = expected.body, body != call.body {
                failures.append("\(place) (\(call.method) \(call.url)): expected body \(JSONText.show(body)), got \(JSONText.show(call.body))")
            }
            if let json = expected.json {
                if JSONText.parse(call.body).map({ !JSONText.contains($0, json) }) ?? true {
                    failures.append("\(place) (\(call.method) \(call.url)): body \(JSONText.show(call.body)) lacks \(JSONText.show(json))")
                }
            }
            for (name, value) in expected.headers.sorted(by: { $0.key < $1.key }) {
                let sent = call.headers.first { $0.name.lowercased() == name.lowercased() }?.value
                if sent != value { failures.append("\(place) (\(call.method) \(call.url)): header \(name): expected \"\(value)\", got \(sent.map { "\"\($0)\"" } ?? "none")") }
            }
        }
        return failures
    }

    private func logFailures(_ wanted: [HandlerTestExpectation.Log], matcher: Matcher) async throws -> [String] {
        var failures: [String] = []
        var used = Set<Int>()
        var next = 0
        for expected in wanted {
            let candidates = logs.indices.filter { index in index >= next && (expected.level.map { logs[index].line.level == $0 } ?? true) }
            let matched = try await matcher(candidates.map { logs[$0].line.message }, expected.message)
            if let found = zip(candidates, matched).first(where: { $1 })?.0 {
                used.insert(found)
                next = found + 1
            } else {
                let written = logs.map { "\(LogAPI.levelName($0.line.level)) \"\($0.line.message)\"" }.joined(separator: ", ")
                let kind = expected.level.map { "no \(LogAPI.levelName($0)) log line" } ?? "no log line"
                let after = next > 0 ? " after the lines matched before it" : ""
                failures.append("\(kind) matching \"\(expected.message)\"\(after) (logged: \(written.isEmpty ? "nothing" : written))")
            }
        }
        for (index, entry) in logs.enumerated() where entry.line.level >= .error && !used.contains(index) {
            failures.append("\(entry.handler) logged an error: \"\(entry.line.message)\" (expect it in logs if it is meant)")
        }
        return failures
    }

    private static func list(_ paths: [String]) -> String {
        paths.isEmpty ? "none" : paths.joined(separator: ", ")
    }

    /// The table a case's `check` function receives.
    var luaValue: LuaValue {
        func text(_ value: String?) -> LuaValue { value.map { .string($0) } ?? .nil }
        return .table(array: [], fields: [
            "refused": text(refusal),
            "type": text(type),
            "id": text(id),
            "handlers": .table(array: handlers.map { .string($0) }, fields: [:]),
            "result": result ?? .nil,
            "error": text(errors.first?.message),
            "kv": .table(array: [], fields: Dictionary(kv.map { ($0.key, LuaValue.json($0.value)) }, uniquingKeysWith: { $1 })),
            "calls": .table(array: calls.map { call in
                var fields: [String: LuaValue] = [
                    "method": .string(call.method), "url": .string(call.url), "body": .string(call.body),
                    "headers": .table(array: [], fields: Dictionary(call.headers.map { ($0.name.lowercased(), $0.value) }, uniquingKeysWith: { "\($0), \($1)" }).mapValues { .string($0) }),
                ]
                if JSONText.parse(call.body) != nil { fields["json"] = .json(call.body) }
                return .table(array: [], fields: fields)
            }, fields: [:]),
            "logs": .table(array: logs.map { entry in
                .table(array: [], fields: [
                    "handler": .string(entry.handler), "level": .string(LogAPI.levelName(entry.line.level)), "message": .string(entry.line.message),
                    "fields": .table(array: [], fields: entry.line.fields.mapValues { .string($0) }),
                ])
            }, fields: [:]),
        ])
    }
}
