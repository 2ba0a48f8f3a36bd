import Synchronization

/// Metric handles already made, by a key of their label values: a request looks its handles up
/// here with one hash of a small struct, instead of building label arrays and going through the
/// registry, which checks the name and labels again under its lock.
final class HandleCache<Key: Hashable & Sendable, Handle: Sendable>: Sendable {
    private let handles = Mutex<[Key: Handle]>([:])

    /// The handle of `key`, made by `make` the first time.
    func handle(_ key: Key, make: () -> Handle) -> Handle {
        if let handle = handles.withLock({ $0[key] }) { return handle }
        let handle = make()
        return handles.withLock { handles in
            if let made = handles[key] { return made }
            handles[key] = handle
            return handle
        }
    }
}
