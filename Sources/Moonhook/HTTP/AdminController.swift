import Foundation
import Hummingbird
import MoonhookStore
import WebhookVerification

/// `/admin`, behind `Authorization: Bearer <admin_token>`. Off (404) when no token is configured.
///
/// - `GET /admin/handlers`: every source folder and its handlers.
/// - `GET /admin/deliveries?status=dead&source=S&type=T&id=I&since=2h&until=1h&limit=100&cursor=N`:
///   deliveries, newest first, a page at a time (`next` is the cursor of the following page).
/// - `GET /admin/deliveries/{seq}`: one delivery with its body, headers and every attempt.
/// - `POST /admin/deliveries/{seq}/replay`: runs its handlers again, on their current version.
/// - `POST /admin/deliveries/replay?status=dead&source=S&type=T&since=T&until=T`: replays every dead pair.
/// - `POST /admin/deliveries/purge?older_than=30d&source=S&type=T`: deletes deliveries, whatever their state.
/// - `GET /admin/stats`: the dispatcher's counters, the inbox's write batches and its pairs by state.
/// - `GET /admin/refusals?source=S`: the refused requests this instance kept, newest first.
struct AdminController: Sendable {
    let token: String?
    let sources: SourceDirectory
    let inbox: any Store
    let dispatcher: HandlerDispatcher
    let refusals: RefusalLog
    /// Where the handlers are: a failed attempt's error is shown with the line it points at.
    let handlersFolder: URL

    func addRoutes(to router: Router<MoonhookRequestContext>) {
        router.get("/admin/handlers") { request, _ in
            try authorize(request)
            return handlers()
        }
        router.get("/admin/deliveries") { request, _ in
            try authorize(request)
            let filter = try filter(request, defaultStatus: nil)
            let page = try await AdminCall.store { try await inbox.deliveries(filter) }
            return json(DeliveryReport.page(page))
        }
        router.get("/admin/deliveries/:seq") { request, context in
            try authorize(request)
            let seq = try AdminCall.seq(context)
            guard let detail = try await AdminCall.store({ try await inbox.show(seq) }) else { throw HTTPFailure(.notFound, "no delivery \(seq)") }
            return json(DeliveryReport.detail(detail, handlersFolder: handlersFolder))
        }
        router.post("/admin/deliveries/:seq/replay") { request, context in
            try authorize(request)
            let seq = try AdminCall.seq(context)
            let order = try replayOrder(request)
            let count = try await AdminCall.store { try await inbox.replay(.delivery(seq), order: order) }
            guard count > 0 else { throw HTTPFailure(.notFound, "no delivery \(seq)") }
            dispatcher.wake()
            return json(["replayed": count])
        }
        router.post("/admin/deliveries/replay") { request, _ in
            try authorize(request)
            let filter = try filter(request, defaultStatus: .dead)
            guard filter.status == .dead else { throw HTTPFailure(.badRequest, "replay by filter takes status=dead only") }
            let order = try replayOrder(request)
            let count = try await AdminCall.store { try await inbox.replay(.dead(filter), order: order) }
            dispatcher.wake()
            return json(["replayed": count])
        }
        /// `order=ignore`: a serial handler's replayed pair takes its own place in its key's order
        /// instead of waiting behind the pending ones.
        @Sendable func replayOrder(_ request: Request) throws -> ReplayOrder {
            guard let text = request.uri.queryParameters.get("order") else { return .keep }
            guard let order = ReplayOrder(rawValue: text) else { throw HTTPFailure(.badRequest, "order must be keep or ignore, got '\(text)'") }
            return order
        }
        router.post("/admin/deliveries/purge") { request, _ in
            try authorize(request)
            guard let text = request.uri.queryParameters.get("older_than"), let cutoff = DeliveryReport.time(text) else {
                throw HTTPFailure(.badRequest, "purge needs older_than=DURATION (such as 30d) or an ISO 8601 time")
            }
            var filter = try filter(request, defaultStatus: nil)
            filter.until = min(filter.until ?? cutoff, cutoff)
            let purge = filter
            let count = try await AdminCall.store { try await inbox.purge(purge, onlyFinished: false) }
            return json(["purged": count])
        }
        router.get("/admin/refusals") { request, _ in
            try authorize(request)
            let source = request.uri.queryParameters.get("source")
            return json(["refusals": refusals.list(source: source).map(RefusalReport.object)])
        }
        router.get("/admin/stats") { request, _ in
            try authorize(request)
            let counters = dispatcher.counters
            let batches = inbox.writeStatistics
            let pairs = try await AdminCall.store { try await inbox.pairCounts() }
            return json([
                "dispatcher": ["succeeded": counters.succeeded, "failed": counters.failed, "dead_lettered": counters.deadLettered, "in_flight": counters.inFlight],
                "pairs": Dictionary(uniqueKeysWithValues: PairStatus.allCases.map { ($0.rawValue, pairs.byStatus[$0] ?? 0) }),
                "oldest_waiting": pairs.oldestWaiting.mapValues(TimeAPI.iso8601),
                "group_commit": [
                    "batches": batches.batches, "writes": batches.writes, "largest_batch": batches.largestBatch,
                    "busy_ms": batches.busy.totalMilliseconds,
                ],
            ])
        }
    }

    private func filter(_ request: Request, defaultStatus: PairStatus?) throws -> DeliveryFilter {
        let query = request.uri.queryParameters
        do {
            var filter = try DeliveryReport.filter(
                status: query.get("status"), source: query.get("source"), type: query.get("type"), id: query.get("id"), since: query.get("since"),
                until: query.get("until"), limit: query.get("limit"), cursor: query.get("cursor"), defaultStatus: defaultStatus)
            filter.limit = min(filter.limit, 10_000)
            return filter
        } catch {
            throw HTTPFailure(.badRequest, error.message)
        }
    }

    private func json(_ object: Any) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: DeliveryReport.text(object) + "\n")))
    }

    private func authorize(_ request: Request) throws {
        try BearerToken(token: token, guarding: "the admin API").authorize(request)
    }

    /// Every source folder: its version, when it was loaded, its handlers and its problems.
    private func handlers() -> Response {
        let entries = SourceReport.all(sources).map(\.object)
        let data = (try? JSONSerialization.data(withJSONObject: ["sources": entries], options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
