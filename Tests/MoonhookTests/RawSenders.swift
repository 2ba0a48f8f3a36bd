import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Plain nonblocking TCP sockets to 127.0.0.1, for senders that misbehave on purpose: they send
/// part of a request and stall, or trickle it. Nothing here blocks a thread (the server under test
/// shares the process's few cooperative threads): sockets are polled with a zero timeout between
/// short sleeps.
final class RawSenders {
    struct Connection {
        var fd: Int32
        /// When `connect` was called: the server cannot have accepted it before.
        var started: ContinuousClock.Instant
        /// When the handshake was done: the server accepts it right after, unless it is at its cap.
        var established: ContinuousClock.Instant
        /// When the server closed it (end of file or reset); nil while open.
        var closed: ContinuousClock.Instant?
        var received: [UInt8] = []

        var text: String { String(decoding: received, as: UTF8.self) }
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    let port: Int
    private(set) var connections: [Connection] = []
    private let clock = ContinuousClock()

    init(port: Int) {
        self.port = port
    }

    deinit {
        for connection in connections where connection.closed == nil { close(connection.fd) }
    }

    /// Lets this process open `count` more files than it has open now (raising the soft limit up
    /// to the hard one); false if the hard limit is too low.
    static func allowOpenFiles(_ count: Int) -> Bool {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return false }
        let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 256
        let wanted = rlim_t(open + count)
        if limit.rlim_cur >= wanted { return true }
        guard limit.rlim_max >= wanted else { return false }
        limit.rlim_cur = limit.rlim_max
        return setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0
    }

    /// Opens `count` connections, in batches so as not to overflow the server's listen queue,
    /// and sends `bytes` on each. Returns the indices of the new connections.
    @discardableResult
    func open(_ count: Int, sending bytes: [UInt8], batch: Int = 100) async throws -> Range<Int> {
        let first = connections.count
        var remaining = count
        while remaining > 0 {
            let size = min(batch, remaining)
            // Wait for the server to take what is queued: a full listen queue drops handshakes,
            // which the kernel retries only a second later.
            while listenQueue() > max(0, 200 - size) { try await Task.sleep(for: .milliseconds(2)) }
            var pending: [(fd: Int32, started: ContinuousClock.Instant)] = []
            for _ in 0..<size { pending.append((try connectSocket(), clock.now)) }
            let opened = try await waitUntilWritable(pending.map(\.fd))
            for (index, item) in pending.enumerated() {
                connections.append(Connection(fd: item.fd, started: item.started, established: opened[index]))
                if !bytes.isEmpty { try send(bytes, on: connections.count - 1) }
            }
            remaining -= size
        }
        return first..<connections.count
    }

    /// Sends `bytes` on connection `index` (small writes: they fit the socket's buffer).
    func send(_ bytes: [UInt8], on index: Int) throws {
        let written = bytes.withUnsafeBytes { Glibc.send(connections[index].fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard written == bytes.count else { throw Failure(description: "send on connection \(index) wrote \(written) of \(bytes.count) bytes (errno \(errno))") }
    }

    /// Reads what has arrived and notes connections the server closed; returns how many are open.
    @discardableResult
    func poll() -> Int {
        var descriptors = connections.map { pollfd(fd: $0.closed == nil ? $0.fd : -1, events: Int16(POLLIN), revents: 0) }
        _ = Glibc.poll(&descriptors, nfds_t(descriptors.count), 0)
        let now = clock.now
        var buffer = [UInt8](repeating: 0, count: 4096)
        for (index, descriptor) in descriptors.enumerated() where descriptor.fd >= 0 && descriptor.revents != 0 {
            while true {
                let count = buffer.withUnsafeMutableBytes { recv(descriptor.fd, $0.baseAddress, $0.count, 0) }
                if count > 0 {
                    connections[index].received += buffer[0..<count]
                    continue
                }
                if count == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) {
                    connections[index].closed = now
                    close(descriptor.fd)
                }
                break
            }
        }
        return connections.filter { $0.closed == nil }.count
    }

    /// Polls until every connection in `range` is closed or `limit` has passed.
    func waitUntilClosed(_ range: Range<Int>, within limit: Duration) async {
        let deadline = clock.now + limit
        while clock.now < deadline {
            poll()
            if connections[range].allSatisfy({ $0.closed != nil }) { return }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Polls until connection `index` has received `bytes` or closed, for at most `limit`.
    func waitForBytes(_ bytes: Int, on index: Int, within limit: Duration) async {
        let deadline = clock.now + limit
        while clock.now < deadline, connections[index].received.count < bytes, connections[index].closed == nil {
            poll()
            try? await Task.sleep(for: .milliseconds(2))
        }
    }

    /// Connections waiting in the server's listen queue (Linux reports it as the listening
    /// socket's receive queue); 0 when that cannot be read.
    func listenQueue() -> Int {
        guard let table = try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8) else { return 0 }
        let local = String(format: "0100007F:%04X", port)
        for line in table.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ")
            guard fields.count > 4, fields[1] == local, fields[3] == "0A" else { continue }
            return fields[4].split(separator: ":").last.flatMap { Int($0, radix: 16) } ?? 0
        }
        return 0
    }

    private func connectSocket() throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket() failed: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 || errno == EINPROGRESS else {
            close(fd)
            throw Failure(description: "connect() failed: errno \(errno)")
        }
        return fd
    }

    /// Waits (for at most ten seconds) until each socket's handshake is done; returns when each was.
    private func waitUntilWritable(_ fds: [Int32]) async throws -> [ContinuousClock.Instant] {
        var done = [ContinuousClock.Instant?](repeating: nil, count: fds.count)
        let deadline = clock.now + .seconds(10)
        while done.contains(where: { $0 == nil }) {
            guard clock.now < deadline else { throw Failure(description: "connections to port \(port) were not established within 10 s") }
            var descriptors = fds.enumerated().map { pollfd(fd: done[$0.offset] == nil ? $0.element : -1, events: Int16(POLLOUT), revents: 0) }
            _ = Glibc.poll(&descriptors, nfds_t(descriptors.count), 0)
            let now = clock.now
            for (index, descriptor) in descriptors.enumerated() where descriptor.fd >= 0 && descriptor.revents != 0 {
                var error: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(descriptor.fd, SOL_SOCKET, SO_ERROR, &error, &length)
                guard error == 0 else { throw Failure(description: "connect to port \(port) failed: errno \(error)") }
                done[index] = now
            }
            if done.contains(where: { $0 == nil }) { try? await Task.sleep(for: .milliseconds(1)) }
        }
        return done.map { $0! }
    }
}
