import Synchronization

/// Hands what happens on this instance to the readers of the live stream. Publishing never waits:
/// each reader has a buffer of its own, and what does not fit is dropped for that reader only and
/// counted, so that a slow or stalled reader never slows the receiver or the handlers. With no
/// reader, publishing is one atomic load.
public final class LiveFeed: Sendable {
    /// Events a reader may fall behind by before its events are dropped.
    public let bufferSize: Int

    private struct Reader {
        let filter: LiveFilter
        let continuation: AsyncStream<Message>.Continuation
        let dropped: Subscription.DropCount
    }

    private let readers = Mutex<[Int: Reader]>([:])
    private let readerCount = Atomic<Int>(0)
    private let nextID = Atomic<Int>(0)

    public init(bufferSize: Int = 1024) {
        self.bufferSize = max(1, bufferSize)
    }

    /// Whether anyone reads: callers skip building events otherwise.
    public var hasReaders: Bool { readerCount.load(ordering: .relaxed) > 0 }

    public func publish(_ event: @autoclosure () -> LiveEvent) {
        guard hasReaders else { return }
        let event = event()
        let current = readers.withLock { Array($0.values) }
        for reader in current where reader.filter.admits(event) {
            if case .dropped = reader.continuation.yield(.event(event)) { reader.dropped.add() }
        }
    }

    /// A new reader's events, until the subscription's stream is no longer iterated.
    public func subscribe(_ filter: LiveFilter) -> Subscription {
        let id = nextID.add(1, ordering: .relaxed).newValue
        let (stream, continuation) = AsyncStream<Message>.makeStream(bufferingPolicy: .bufferingOldest(bufferSize))
        let dropped = Subscription.DropCount()
        readers.withLock { $0[id] = Reader(filter: filter, continuation: continuation, dropped: dropped) }
        readerCount.add(1, ordering: .relaxed)
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            if self.readers.withLock({ $0.removeValue(forKey: id) }) != nil { self.readerCount.subtract(1, ordering: .relaxed) }
        }
        return Subscription(messages: stream, dropped: dropped, continuation: continuation)
    }

    /// What a reader receives: events, and a heartbeat now and then that keeps an idle connection
    /// open through proxies and finds readers that went away.
    public enum Message: Sendable {
        case event(LiveEvent)
        case heartbeat
    }

    /// One reader: its events and how many of them did not fit its buffer.
    public struct Subscription: Sendable {
        public let messages: AsyncStream<Message>
        let dropped: DropCount
        let continuation: AsyncStream<Message>.Continuation

        /// Queues a heartbeat (dropped like an event when the buffer is full).
        public func heartbeat() { continuation.yield(.heartbeat) }

        /// Ends the stream: the reader went away.
        public func end() { continuation.finish() }

        /// Events dropped since the last call.
        public func takeDropped() -> Int { dropped.take() }

        final class DropCount: Sendable {
            private let count = Atomic<Int>(0)
            func add() { count.add(1, ordering: .relaxed) }
            func take() -> Int { count.exchange(0, ordering: .relaxed) }
        }
    }
}
