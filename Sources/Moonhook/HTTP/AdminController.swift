import Foundation
import Hummingbird
import MoonhookStore
import WebhookVerification

/// `/admin`, behind `Authorization: Bearer <admin_token>`. Off (404) when no token is configured.
///
/// - `GET /admin/handlers`: every source folder and its handlers.
/// - `GET /admin/deliveries?status=dead&source=S&since=2h&limit=100`: deliveries, newest first.
/// - `GET /admin/deliveries/{seq}`: one delivery with its body, headers and every attempt.
/// - `POST /admin/deliveries/{seq}/replay`: runs its handlers again, on their current version.
/// - `POST /admin/deliveries/replay?status=dead&source=S&since=T`: replays every dead pair.
/// - `POST /admin/deliveries/purge?older_than=30d`: deletes deliveries, whatever their state.
/// - `GET /admin/stats`: the dispatcher's counters and the inbox's group-commit batches.
struct AdminController: Sendable {
    let token: String?
    let sources: SourceDirectory
    let inbox: SQLiteStore
    let dispatcher: HandlerDispatcher

    func addRoutes(to router: Router<BasicRequestContext>) {
        router.get("/admin/handlers") { request, _ in
            try authorize(request)
            return handlers()
        }
        router.get("/admin/deliveries") { request, _ in
            try authorize(request)
            let filter = try filter(request, defaultStatus: nil)
            let list = try await store { try await inbox.list(filter) }
            return json(["deliveries": list.map(DeliveryReport.summary)])
        }
        router.get("/admin/deliveries/:seq") { request, context in
            try authorize(request)
            let seq = try seq(context)
            guard let detail = try await store({ try await inbox.show(seq) }) else { throw HTTPFailure(.notFound, "no delivery \(seq)") }
            return json(DeliveryReport.detail(detail))
        }
        router.post("/admin/deliveries/:seq/replay") { request, context in
            try authorize(request)
            let seq = try seq(context)
            let count = try await store { try await inbox.replay(.delivery(seq)) }
            guard count > 0 else { throw HTTPFailure(.notFound, "no delivery \(seq)") }
            dispatcher.wake()
            return json(["replayed": count])
        }
        router.post("/admin/deliveries/replay") { request, _ in
            try authorize(request)
            let filter = try filter(request, defaultStatus: .dead)
            guard filter.status == .dead else { throw HTTPFailure(.badRequest, "replay by filter takes status=dead only") }
            let count = try await store { try await inbox.replay(.dead(filter)) }
            dispatcher.wake()
            return json(["replayed": count])
        }
        router.post("/admin/deliveries/purge") { request, _ in
            try authorize(request)
            guard let text = request.uri.queryParameters.get("older_than"), let cutoff = DeliveryReport.time(text) else {
                throw HTTPFailure(.badRequest, "purge needs older_than=DURATION (such as 30d) or an ISO 8601 time")
            }
            let count = try await store { try await inbox.purge(before: cutoff, onlyFinished: false) }
            return json(["purged": count])
        }
        router.get("/admin/stats") { request, _ in
            try authorize(request)
            let counters = dispatcher.counters
            let batches = inbox.groupCommitStatistics
            return json([
                "dispatcher": ["succeeded": counters.succeeded, "failed": counters.failed, "dead_lettered": counters.deadLettered, "in_flight": counters.inFlight],
                "group_commit": [
                    "batches": batches.batches, "writes": batches.writes, "largest_batch": batches.largestBatch,
                    "busy_ms": batches.busy.totalMilliseconds,
                ],
            ])
        }
    }

    private func filter(_ request: Request, defaultStatus: TaskStatus?) throws -> DeliveryFilter {
        let query = request.uri.queryParameters
        do {
            var filter = try DeliveryReport.filter(
                status: query.get("status"), source: query.get("source"), since: query.get("since"), limit: query.get("limit"),
                defaultStatus: defaultStatus)
            filter.limit = min(filter.limit, 10_000)
            return filter
        } catch {
            throw HTTPFailure(.badRequest, error.message)
        }
    }

    private func seq(_ context: BasicRequestContext) throws -> Int64 {
        guard let text = context.parameters.get("seq"), let seq = Int64(text) else { throw HTTPFailure(.badRequest, "delivery number must be a whole number") }
        return seq
    }

    /// Runs a store call; a database failure is a 503 with its reason.
    private func store<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            throw HTTPFailure(.serviceUnavailable, "store: \(error)")
        }
    }

    private func json(_ object: Any) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: DeliveryReport.text(object) + "\n")))
    }

    private func authorize(_ request: Request) throws {
        guard let token else { throw HTTPFailure(.notFound, "the admin API is off (set admin_token)") }
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer "),
            Digest.constantTimeEquals(Array(header.dropFirst(7).utf8), Array(token.utf8))
        else { throw HTTPFailure(.unauthorized, "admin API needs Authorization: Bearer <admin_token>") }
    }

    /// Every source folder: its version, when it was loaded, its handlers and its problems.
    private func handlers() -> Response {
        let catalog = sources.catalog
        let status = sources.status
        var entries: [[String: Any]] = []
        for name in Set(status.keys).union(catalog.sources.keys).sorted() {
            var entry: [String: Any] = ["source": name, "serving": catalog.sources[name] != nil]
            if let state = status[name] {
                entry["version"] = state.version
                entry["loaded_at"] = state.loadedAt.map { $0.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)) } ?? NSNull()
                entry["problems"] = state.problems.map(\.description)
            }
            if let source = catalog.sources[name] {
                entry["scheme"] = source.configuration.verifier.scheme.rawValue
                entry["handlers"] = source.handlers.map { handler -> [String: Any] in
                    ["path": handler.path, "on": handler.options.on]
                }
            }
            entries.append(entry)
        }
        let data = (try? JSONSerialization.data(withJSONObject: ["sources": entries], options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
