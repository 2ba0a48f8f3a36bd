import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

/// Keeps the served sources in step with the handlers folder, without a restart or a dropped request.
///
/// Changes are noticed by inotify (every save pattern of editors and `git`: write in place,
/// write-then-rename, delete-then-create, whole folders replaced), by a periodic rescan of file
/// fingerprints (for what inotify cannot see), and on SIGHUP. A burst of changes becomes one reload
/// per folder after a short quiet time. A changed folder is loaded and compiled in full off the
/// serving path and swapped in only if all of it is valid; otherwise the last good version keeps
/// serving and the problems are logged and shown by `/admin/handlers`. One folder never affects
/// another.
public final class HandlerWatcher: Service {
    public struct Timing: Sendable {
        /// How long changes must be quiet before a reload.
        public var debounce: Duration = .milliseconds(100)
        /// How often fingerprints are compared regardless of inotify.
        public var rescan: Duration = .seconds(2)
        /// How often inotify is read.
        public var poll: Duration = .milliseconds(25)
        public init() {}
    }

    private let root: URL
    private let pool: WorkerPool
    private let directory: SourceDirectory
    private let environment: [String: String]
    private let logger: Logger
    private let timing: Timing
    private let configuration: ConfigurationWatch?
    private let metrics: ServerMetrics?
    /// The folders as they were just before the catalog being served was loaded: anything that
    /// changed since, even before this service started, is reloaded.
    private let baseline: [String: FolderFingerprint]

    /// The server's configuration file, re-read on SIGHUP to say which changes need a restart.
    public struct ConfigurationWatch: Sendable {
        public var file: String
        public var current: ServerConfiguration
        public init(file: String, current: ServerConfiguration) {
            self.file = file
            self.current = current
        }
    }

    public init(root: String, pool: WorkerPool, directory: SourceDirectory, environment: [String: String], logger: Logger,
                timing: Timing = Timing(), configuration: ConfigurationWatch? = nil, metrics: ServerMetrics? = nil) {
        self.metrics = metrics
        self.root = URL(fileURLWithPath: root)
        self.pool = pool
        self.directory = directory
        self.environment = environment
        self.logger = logger
        self.timing = timing
        self.configuration = configuration
        self.baseline = FolderFingerprint.scan(root: self.root)
    }

    public func run() async throws {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let forced = ForcedReloads()
        await withDiscardingTaskGroup { group in
            group.addTask {
                await cancelWhenGracefulShutdown {
                    for await _ in hangups { forced.request() }
                }
            }
            group.addTask {
                await cancelWhenGracefulShutdown { await self.watch(forced) }
            }
        }
    }

    private func watch(_ forced: ForcedReloads) async {
        var known = baseline
        let inotify = InotifyWatch(root: root.path)
        inotify?.rewatch(known.keys)
        if inotify == nil { logger.warning("inotify unavailable; handlers are picked up by the periodic rescan only") }
        let clock = ContinuousClock()
        // Changes made between the catalog's load and now have no inotify event: compare at once.
        var pending: Set<String> = []
        for (name, fingerprint) in FolderFingerprint.scan(root: root) where known[name] != fingerprint { pending.insert(name) }
        for name in known.keys where !FileManager.default.fileExists(atPath: root.appending(path: name).path) { pending.insert(name) }
        var lastEvent = clock.now
        var lastRescan = clock.now
        while !Task.isCancelled {
            try? await Task.sleep(for: timing.poll)
            if let (touched, rootChanged) = inotify?.drain(), !touched.isEmpty || rootChanged {
                pending.formUnion(touched)
                if rootChanged { pending.formUnion(Set(FolderFingerprint.scan(root: root).keys).symmetricDifference(known.keys)) }
                lastEvent = clock.now
            }
            var due: Set<String> = []
            if !pending.isEmpty, clock.now - lastEvent >= timing.debounce {
                due = pending
                pending = []
            }
            if clock.now - lastRescan >= timing.rescan {
                lastRescan = clock.now
                let now = FolderFingerprint.scan(root: root)
                for name in Set(now.keys).union(known.keys) where now[name] != known[name] { due.insert(name) }
            }
            if forced.take() {
                logger.info("reloading every source (SIGHUP)")
                due.formUnion(FolderFingerprint.scan(root: root).keys)
                due.formUnion(known.keys)
                checkConfiguration()
            }
            guard !due.isEmpty else { continue }
            for name in due.sorted() { await reload(name, known: &known) }
            inotify?.rewatch(known.keys)
            await pool.collectRetired()
        }
    }

    /// Loads one folder and swaps it in when all of it is valid.
    private func reload(_ name: String, known: inout [String: FolderFingerprint]) async {
        let folder = root.appending(path: name)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            known[name] = nil
            if directory.source(named: name) != nil || directory.status[name] != nil {
                directory.remove(name)
                logger.notice("source removed", metadata: ["source": "\(name)"])
            }
            return
        }
        // The fingerprint before loading: an edit made while loading triggers another reload.
        known[name] = FolderFingerprint(folder: folder)
        switch await SourceCatalog.loadSource(name: name, root: root, pool: pool, environment: environment) {
        case .success(let source):
            let added = directory.source(named: name) == nil
            directory.install(source)
            metrics?.prepare(source: name, handlers: source.handlers.map(\.path))
            metrics?.reload(source: name, failed: false)
            logger.notice(added ? "source added" : "source reloaded", metadata: [
                "source": "\(name)", "handlers": "\(source.handlers.map(\.path).joined(separator: ","))",
                "version": "\(directory.status[name]?.version ?? 0)",
            ])
        case .failure(let list):
            directory.fail(name, problems: list.problems)
            metrics?.reload(source: name, failed: true)
            for problem in list.problems {
                logger.error("source not reloaded; the previous version keeps serving", metadata: ["source": "\(name)", "problem": "\(problem)"])
            }
        }
    }

    /// Settings cannot change under a running server; say which ones changed.
    private func checkConfiguration() {
        guard let configuration else { return }
        do {
            let fresh = try ServerConfiguration.load(file: configuration.file, required: true, environment: environment)
            let changed = fresh.differences(from: configuration.current)
            if !changed.isEmpty {
                logger.warning("moonhook.yaml changed; these settings take effect after a restart", metadata: ["settings": "\(changed.joined(separator: ","))"])
            }
        } catch {
            logger.error("moonhook.yaml cannot be read", metadata: ["problem": "\(error)"])
        }
    }
}

/// SIGHUPs received and not acted on yet.
private final class ForcedReloads: Sendable {
    private let flag = Mutex(false)
    func request() { flag.withLock { $0 = true } }
    func take() -> Bool { flag.withLock { flag in defer { flag = false }; return flag } }
}

extension ServerConfiguration {
    /// Names of the settings that differ.
    func differences(from other: ServerConfiguration) -> [String] {
        var names: [String] = []
        if listen != other.listen { names.append("listen") }
        if handlersFolder != other.handlersFolder { names.append("handlers") }
        if store != other.store { names.append("store") }
        if maxBodyBytes != other.maxBodyBytes { names.append("max_body_bytes") }
        if workers != other.workers { names.append("workers") }
        if maxConcurrentInvocations != other.maxConcurrentInvocations { names.append("max_concurrent_invocations") }
        if adminToken != other.adminToken { names.append("admin_token") }
        if logLevel != other.logLevel { names.append("log_level") }
        if limits != other.limits { names.append("limits") }
        if outbound != other.outbound { names.append("http") }
        if server != other.server { names.append("server") }
        if metrics != other.metrics { names.append("metrics") }
        if refusals != other.refusals { names.append("refusals") }
        return names
    }
}
