import LuaRuntime
import Synchronization

/// Outbound HTTP in a handler test: every call is recorded and answered from the case's canned
/// responses; nothing is sent. A call no response was given for fails in the handler, as a
/// refused connection would, and fails the case.
final class CannedHTTP: Sendable {
    /// A canned response: for the first call to `url` (with `method`, when given) not answered yet.
    struct Stub: Sendable {
        var method: String?
        var url: String
        var status: Int64
        var headers: [String: String]
        var body: [UInt8]
        /// Where the case gave it, for messages.
        var index: Int
    }

    /// A call a handler made.
    struct Call: Sendable {
        var method: String
        var url: String
        var headers: [(name: String, value: String)]
        var body: [UInt8]
        /// Whether a canned response answered it.
        var answered: Bool
    }

    private struct State {
        var stubs: [(stub: Stub, used: Bool)]
        var calls: [Call] = []
    }

    private let state: Mutex<State>

    init(stubs: [Stub]) {
        state = Mutex(State(stubs: stubs.map { ($0, false) }))
    }

    var calls: [Call] { state.withLock { $0.calls } }

    /// The canned responses no call used.
    var unused: [Stub] { state.withLock { $0.stubs.filter { !$0.used }.map(\.stub) } }

    /// The `http` library, on this instead of the network; `policy` gives the per-call limits.
    func library(policy: OutboundPolicy) -> LuaLibrary {
        HTTPAPI.library(policy: policy, metrics: nil) { request, _ in
            try self.answer(request)
        }
    }

    private func answer(_ request: OutboundRequest) throws -> LuaValue {
        let method = request.method.rawValue
        let stub: Stub? = state.withLock { state in
            let index = state.stubs.firstIndex { !$0.used && $0.stub.url == request.url && ($0.stub.method.map { $0.uppercased() == method } ?? true) }
            if let index { state.stubs[index].used = true }
            state.calls.append(Call(method: method, url: request.url, headers: request.headers, body: request.body ?? [], answered: index != nil))
            return index.map { state.stubs[$0].stub }
        }
        guard let stub else {
            throw LuaHostError("http.request: no canned response for \(method) \(request.url) (add one to the case's http list)")
        }
        return .table(array: [], fields: [
            "status": .integer(stub.status),
            "headers": .table(array: [], fields: Dictionary(stub.headers.map { ($0.key.lowercased(), LuaValue.string($0.value)) }, uniquingKeysWith: { $1 })),
            "body": .string(stub.body),
        ])
    }
}
