import Logging
import LuaRuntime
import MoonhookStore
import Synchronization

/// The Lua workers of the process (default one per core). Every handler is loaded into every
/// worker; invocations are spread over the workers round-robin.
public final class WorkerPool: Sendable {
    public let workers: [LuaWorker]
    private let next = Atomic<Int>(0)
    /// Handler versions nothing refers to any more, waiting to be unloaded.
    private let retired = Mutex<[[LuaHandler]]>([])

    public convenience init(count: Int, services: HostServices) throws(LuaError) {
        try self.init(count: count, limits: services.limits) { HandlerRuntime.libraries(services) }
    }

    /// Workers with `libraries` (built anew for each worker) instead of the server's.
    init(count: Int, limits: LuaLimits, libraries: () -> [LuaLibrary]) throws(LuaError) {
        var workers: [LuaWorker] = []
        for index in 0..<max(1, count) {
            workers.append(try LuaWorker(libraries: libraries(), limits: limits, name: "lua-worker-\(index)"))
        }
        self.workers = workers
    }

    /// Compiles `source` in every worker. All or nothing: on failure nothing stays loaded.
    public func load(path: String, source: [UInt8], extras: [String: LuaValue] = [:]) async throws(LuaError) -> [LuaHandler] {
        var loaded: [LuaHandler] = []
        for worker in workers {
            do {
                loaded.append(try await worker.load(path: path, source: source, extras: extras))
            } catch {
                for (worker, handler) in zip(workers, loaded) { await worker.unload(handler) }
                throw error
            }
        }
        return loaded
    }

    /// Releases a handler from every worker.
    public func unload(_ instances: [LuaHandler]) async {
        for (worker, handler) in zip(workers, instances) { await worker.unload(handler) }
    }

    /// Queues a handler version for unloading (called when its last reference goes).
    func retire(_ instances: [LuaHandler]) {
        retired.withLock { $0.append(instances) }
    }

    /// Unloads every retired handler version; returns how many.
    @discardableResult
    public func collectRetired() async -> Int {
        let versions = retired.withLock { list in
            defer { list.removeAll() }
            return list
        }
        for instances in versions { await unload(instances) }
        return versions.count
    }

    /// Invokes one handler on the next worker; `timeout` replaces the handler's own limit.
    public func invoke(_ handler: LoadedHandler, arguments: [LuaValue], info: LuaInvocationInfo, timeout: Duration? = nil) async -> LuaOutcome {
        let index = next.wrappingAdd(1, ordering: .relaxed).oldValue % workers.count
        return await workers[index].invoke(handler.instances[index], arguments: arguments, info: info, timeout: timeout)
    }

    /// Lets the workers' threads end. Call once nothing invokes handlers any more.
    public func shutdown() {
        for worker in workers { worker.shutdown() }
    }
}
