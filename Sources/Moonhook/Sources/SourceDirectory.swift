import Foundation
import Synchronization

/// The sources being served now. Requests take a snapshot of one source; a reload swaps one source
/// at a time, atomically, so a request sees either the old version or the new one, never a mix.
public final class SourceDirectory: Sendable {
    /// How one source folder stands, for `/admin/handlers` and the logs.
    public struct Status: Sendable {
        /// Counts successful loads of the folder (1 at start).
        public var version: Int
        public var loadedAt: Date?
        /// Problems of the last attempt; the previous version keeps serving meanwhile.
        public var problems: [ConfigurationError]
    }

    private struct State {
        var catalog: SourceCatalog
        var status: [String: Status]
    }

    private let state: Mutex<State>

    public init(_ catalog: SourceCatalog) {
        state = Mutex(State(catalog: catalog, status: Self.status(of: catalog)))
    }

    /// Serves `catalog`, the first load of the handlers folder.
    public func start(with catalog: SourceCatalog) {
        state.withLock { $0 = State(catalog: catalog, status: Self.status(of: catalog)) }
    }

    private static func status(of catalog: SourceCatalog) -> [String: Status] {
        var status: [String: Status] = [:]
        for name in catalog.sources.keys { status[name] = Status(version: 1, loadedAt: Date(), problems: []) }
        for problem in catalog.problems {
            let name = String(problem.path.split(separator: "/").first ?? "")
            status[name, default: Status(version: 0, loadedAt: nil, problems: [])].problems.append(problem)
        }
        return status
    }

    /// The catalog as of now.
    public var catalog: SourceCatalog { state.withLock { $0.catalog } }

    /// Every source folder's status.
    public var status: [String: Status] { state.withLock { $0.status } }

    public func source(named name: String) -> Source? {
        state.withLock { $0.catalog.sources[name] }
    }

    /// Replaces the whole catalog.
    public func replace(with catalog: SourceCatalog) {
        state.withLock { $0.catalog = catalog }
    }

    /// Serves `source` from now on in place of the version before it.
    func install(_ source: Source) {
        state.withLock { state in
            state.catalog.sources[source.name] = source
            var status = state.status[source.name] ?? Status(version: 0, loadedAt: nil, problems: [])
            status.version += 1
            status.loadedAt = Date()
            status.problems = []
            state.status[source.name] = status
        }
    }

    /// Records why a folder could not be loaded; whatever version it had keeps serving.
    func fail(_ name: String, problems: [ConfigurationError]) {
        state.withLock { $0.status[name, default: Status(version: 0, loadedAt: nil, problems: [])].problems = problems }
    }

    /// Stops serving a source whose folder is gone.
    func remove(_ name: String) {
        state.withLock { state in
            state.catalog.sources[name] = nil
            state.status[name] = nil
        }
    }
}
