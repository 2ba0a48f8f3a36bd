import Foundation
import Hummingbird
import Logging
import MoonhookStore
import ServiceLifecycle
import Synchronization
import UnixSignals

/// Whether this instance should get traffic, for `GET /readyz` (a load balancer's health check):
/// ready once the handlers folder has been loaded (whatever problems single sources have: one bad
/// source.yaml must not take every instance out of rotation) and the store takes writes; not
/// ready from SIGTERM or SIGINT on, while the server drains. `/healthz` stays a liveness check.
public final class Readiness: Sendable {
    private struct State {
        var loaded = false
        var storeProblem: String?
        var draining = false
    }

    private let state = Mutex(State())

    public init() {}

    /// Nil when ready, else why not, in one line.
    public var problem: String? {
        state.withLock { state in
            if state.draining { return "shutting down" }
            if !state.loaded { return "the handlers folder has not been loaded yet" }
            if let problem = state.storeProblem { return "the store does not take writes: \(problem)" }
            return nil
        }
    }

    func handlersLoaded() { state.withLock { $0.loaded = true } }
    func store(_ problem: String?) { state.withLock { $0.storeProblem = problem } }
    func drain() { state.withLock { $0.draining = true } }

    /// `/readyz`: 200 `{"ready":true}`, or 503 `{"ready":false,"reason":"…"}`.
    func response() -> Response {
        struct Answer: Encodable {
            var ready: Bool
            var reason: String?
        }
        let problem = problem
        var body = (try? JSONEncoder().encode(Answer(ready: problem == nil, reason: problem))) ?? Data(#"{"ready":false}"#.utf8)
        body.append(UInt8(ascii: "\n"))
        return Response(
            status: problem == nil ? .ok : .serviceUnavailable, headers: [.contentType: "application/json", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }
}

/// Keeps `Readiness` current: asks the store every second whether it takes writes, and marks the
/// instance draining as soon as SIGTERM or SIGINT arrives (before the server stops listening).
struct ReadinessProbe: Service {
    let readiness: Readiness
    let store: any Store
    let interval: Duration
    let logger: Logger

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    for await _ in signals {
                        readiness.drain()
                        return
                    }
                }
                group.addTask {
                    var last: String?
                    while !Task.isCancelled {
                        let problem = await store.writeProblem()
                        readiness.store(problem)
                        if problem != last {
                            if let problem {
                                logger.error("not ready: the store does not take writes", metadata: ["error": "\(problem)"])
                            } else if last != nil {
                                logger.info("ready: the store takes writes again")
                            }
                            last = problem
                        }
                        try? await Task.sleep(for: interval)
                    }
                }
            }
        }
        readiness.drain()
    }
}
