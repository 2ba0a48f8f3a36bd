import Synchronization

/// Hands what happens on this instance to the readers of the live stream. Publishing never waits:
/// each reader has a queue of its own, and what does not fit is dropped for that reader only and
/// counted, so that a slow or stalled reader never slows the receiver or the handlers. An event is
/// written out once, whatever the number of readers; with no reader, publishing is one atomic load.
public final class LiveFeed: Sendable {
    /// Events a reader may fall behind by before its events are dropped.
    public let queueSize: Int

    private struct Reader {
        let filter: LiveFilter
        let queue: LiveQueue
    }

    private let readers = Mutex<[Int: Reader]>([:])
    private let readerCount = Atomic<Int>(0)
    private let nextID = Atomic<Int>(0)

    public init(queueSize: Int = 1024) {
        self.queueSize = max(1, queueSize)
    }

    /// Whether anyone reads: callers skip building events otherwise.
    public var hasReaders: Bool { readerCount.load(ordering: .relaxed) > 0 }

    public func publish(_ event: @autoclosure () -> LiveEvent) {
        guard hasReaders else { return }
        let event = event()
        // A full queue counts the event dropped at once: a stalled reader costs no more than that.
        let queues = readers.withLock { readers in readers.values.filter { $0.filter.admits(event) }.map(\.queue) }.filter { !$0.dropIfFull() }
        guard !queues.isEmpty else { return }
        let frame = event.frame
        for queue in queues { queue.push(frame) }
    }

    /// A new reader's queue; `end` removes it.
    public func subscribe(_ filter: LiveFilter) -> (queue: LiveQueue, end: @Sendable () -> Void) {
        let id = nextID.add(1, ordering: .relaxed).newValue
        let queue = LiveQueue(capacity: queueSize)
        readers.withLock { $0[id] = Reader(filter: filter, queue: queue) }
        readerCount.add(1, ordering: .relaxed)
        return (queue, { [self] in
            queue.finish()
            if readers.withLock({ $0.removeValue(forKey: id) }) != nil { readerCount.subtract(1, ordering: .relaxed) }
        })
    }
}

/// One reader's events, written out, waiting to be sent. The reader takes all that waits at once
/// (`next`), so that a reader that fell behind catches up with one write, not one per event.
public final class LiveQueue: Sendable {
    /// What `next` returns: the frames in order, and how many were dropped after them since the
    /// last batch because the queue was full.
    public struct Batch: Sendable {
        public var frames: [[UInt8]]
        public var dropped: Int
    }

    private struct State {
        var frames: [[UInt8]] = []
        var dropped = 0
        var waiter: CheckedContinuation<Batch?, Never>?
        var finished = false

        mutating func take() -> Batch {
            defer {
                frames.removeAll(keepingCapacity: true)
                dropped = 0
            }
            return Batch(frames: frames, dropped: dropped)
        }
    }

    private let capacity: Int
    private let state = Mutex(State())

    static let heartbeatFrame = Array(": heartbeat\n\n".utf8)

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// Queues `frame`, or counts it dropped when the queue is full (a heartbeat is left out
    /// without counting: the reader has plenty to read then).
    func push(_ frame: [UInt8], counted: Bool = true) {
        let waiter = state.withLock { state -> (CheckedContinuation<Batch?, Never>, Batch)? in
            guard !state.finished else { return nil }
            guard state.frames.count < capacity else {
                if counted { state.dropped += 1 }
                return nil
            }
            state.frames.append(frame)
            guard let waiter = state.waiter else { return nil }
            state.waiter = nil
            return (waiter, state.take())
        }
        if let (continuation, batch) = waiter { continuation.resume(returning: batch) }
    }

    /// Counts an event dropped when the queue is full; false when it has room.
    func dropIfFull() -> Bool {
        state.withLock { state in
            guard !state.finished, state.frames.count >= capacity else { return false }
            state.dropped += 1
            return true
        }
    }

    /// Queues a comment line that keeps an idle connection open.
    public func heartbeat() {
        push(Self.heartbeatFrame, counted: false)
    }

    /// Everything queued, waiting for something when nothing is; nil once finished (or cancelled).
    public func next() async -> Batch? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let ready = state.withLock { state -> Batch?? in
                    if !state.frames.isEmpty || state.dropped > 0 { return .some(state.take()) }
                    if state.finished { return .some(nil) }
                    state.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            finish()
        }
    }

    /// Ends the queue: a waiting `next` returns nil, later pushes are ignored.
    public func finish() {
        let waiter = state.withLock { state -> CheckedContinuation<Batch?, Never>? in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }
}
