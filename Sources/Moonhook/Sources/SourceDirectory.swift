import Synchronization

/// The sources being served now. Requests take a snapshot; a reload swaps in a new catalog at once.
public final class SourceDirectory: Sendable {
    private let current: Mutex<SourceCatalog>

    public init(_ catalog: SourceCatalog) {
        current = Mutex(catalog)
    }

    /// The catalog as of now.
    public var catalog: SourceCatalog { current.withLock { $0 } }

    public func source(named name: String) -> Source? {
        current.withLock { $0.sources[name] }
    }

    /// Replaces the catalog.
    public func replace(with catalog: SourceCatalog) {
        current.withLock { $0 = catalog }
    }
}
