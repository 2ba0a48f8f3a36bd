#if canImport(Glibc)
import Glibc
#endif
import NIOPosix

/// Resolves host names to addresses with the system resolver, on NIO's thread pool so that no
/// cooperative thread blocks in `getaddrinfo`.
enum HostResolver {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Every address `host` resolves to (an address literal resolves to itself).
    static func resolve(_ host: String) async throws -> [[UInt8]] {
        if let literal = IPRange.parse(host) { return [literal] }
        return try await NIOThreadPool.singleton.runIfActive {
            var hints = addrinfo()
            hints.ai_family = AF_UNSPEC
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var result: UnsafeMutablePointer<addrinfo>?
            let status = getaddrinfo(host, nil, &hints, &result)
            guard status == 0, let first = result else {
                throw Failure(description: "cannot resolve \(host): \(String(cString: gai_strerror(status)))")
            }
            defer { freeaddrinfo(first) }
            var addresses: [[UInt8]] = []
            var entry: UnsafeMutablePointer<addrinfo>? = first
            while let current = entry {
                if let socketAddress = current.pointee.ai_addr {
                    switch Int32(current.pointee.ai_family) {
                    case AF_INET:
                        socketAddress.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { v4 in
                            addresses.append(withUnsafeBytes(of: v4.pointee.sin_addr) { Array($0) })
                        }
                    case AF_INET6:
                        socketAddress.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { v6 in
                            addresses.append(withUnsafeBytes(of: v6.pointee.sin6_addr) { Array($0) })
                        }
                    default:
                        break
                    }
                }
                entry = current.pointee.ai_next
            }
            guard !addresses.isEmpty else { throw Failure(description: "cannot resolve \(host): no addresses") }
            return addresses
        }
    }
}
