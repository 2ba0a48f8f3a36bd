import Foundation

/// A serial executor backed by one dedicated thread with a stack size we chose.
///
/// Lua needs 512 KiB to 1 MiB of C stack for deep (but legal) recursion through C functions such as
/// `gsub` callbacks and `coroutine.wrap`; the threads of Swift's global executor do not promise that.
/// Every job of the `LuaWorker` actor that owns this executor runs here, so its `lua_State` is only
/// ever touched by this thread.
final class LuaThreadExecutor: SerialExecutor, @unchecked Sendable {
    // @unchecked: `jobs`, `stopped` and `looping` are only accessed with `condition` locked.
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var stopped = false
    private var looping = false
    private let name: String
    private let stackSize: Int

    init(name: String, stackSize: Int) {
        self.name = name
        self.stackSize = stackSize
        condition.lock()
        startThread()
        condition.unlock()
    }

    /// Starts the loop's thread. Called with `condition` locked, when no loop runs.
    private func startThread() {
        looping = true
        let thread = Thread { [self] in runLoop() }
        thread.name = name
        thread.stackSize = stackSize
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        // A job that arrives after `stop` let the thread end must still run, or whoever awaits it
        // would wait forever: start the loop again, still one thread at a time.
        if !looping { startThread() }
        condition.signal()
        condition.unlock()
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// Lets the thread exit once the jobs already queued have run.
    func stop() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    private func runLoop() {
        var batch: [UnownedJob] = []
        while true {
            condition.lock()
            while jobs.isEmpty && !stopped { condition.wait() }
            if jobs.isEmpty && stopped {
                looping = false
                condition.unlock()
                return
            }
            swap(&batch, &jobs)
            condition.unlock()
            for job in batch { job.runSynchronously(on: asUnownedSerialExecutor()) }
            batch.removeAll(keepingCapacity: true)
        }
    }
}
