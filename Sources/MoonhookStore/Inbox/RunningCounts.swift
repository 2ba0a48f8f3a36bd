/// Pairs running now (live leases) per source and per handler, across every process sharing the
/// store: what a claim tells `choose` so that concurrency limits hold store-wide.
struct RunningCounts {
    private var perSource: [String: Int] = [:]
    private var perHandler: [String: Int] = [:]

    mutating func add(source: String, handler: String, count: Int) {
        perSource[source, default: 0] += count
        perHandler[handler, default: 0] += count
    }

    func annotate(_ candidates: inout [PairCandidate]) {
        for index in candidates.indices {
            candidates[index].sourceRunning = perSource[candidates[index].source, default: 0]
            candidates[index].handlerRunning = perHandler[candidates[index].handler, default: 0]
        }
    }
}
