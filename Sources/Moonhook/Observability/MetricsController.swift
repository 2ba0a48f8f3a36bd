import Hummingbird
import NIOCore

/// `GET /metrics` in the Prometheus text format: on the main listener behind the admin token (off
/// without one), and without authentication on `metrics.listen`, a listener of its own.
struct MetricsController: Sendable {
    let metrics: ServerMetrics
    /// The admin token asked for; nil on the metrics listener, which asks for none.
    let token: BearerToken?

    func addRoutes(to router: Router<some RequestContext>) {
        router.get("/metrics") { request, _ in
            try token?.authorize(request)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .cacheControl: "no-store"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: metrics.exposition())))
        }
    }
}
