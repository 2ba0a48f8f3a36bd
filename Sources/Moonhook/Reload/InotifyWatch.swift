#if canImport(Glibc)
import Glibc
#endif

/// Watches the handlers folder and its source folders with inotify (non-blocking), and tells which
/// source folders saw changes. Watches are re-added as folders come and go, so a folder replaced
/// wholesale (`git checkout`, `mv new old`) keeps being watched.
final class InotifyWatch {
    private let descriptor: Int32
    private let root: String
    /// Watch descriptor -> source folder name ("" for the root).
    private var folders: [Int32: String] = [:]
    private static let mask = UInt32(IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO
        | IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB)

    init?(root: String) {
        let descriptor = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard descriptor >= 0 else { return nil }
        self.descriptor = descriptor
        self.root = root
        add("")
    }

    deinit { close(descriptor) }

    /// Adds watches for the root and every folder in it (again, after folders were replaced).
    func rewatch(_ names: some Sequence<String>) {
        add("")
        for name in names { add(name) }
    }

    private func add(_ name: String) {
        let path = name.isEmpty ? root : root + "/" + name
        let watch = inotify_add_watch(descriptor, path, Self.mask)
        if watch >= 0 { folders[watch] = name }
    }

    /// Drains pending events; returns the source folders they touched and whether the set of
    /// folders itself may have changed. Never blocks.
    func drain() -> (folders: Set<String>, rootChanged: Bool) {
        var touched: Set<String> = []
        var rootChanged = false
        // Called on every poll of the watcher: a small buffer, not zeroed (read fills what it
        // returns); a burst of events takes several reads.
        withUnsafeTemporaryAllocation(byteCount: 4096, alignment: MemoryLayout<inotify_event>.alignment) { buffer in
            while true {
                let count = read(descriptor, buffer.baseAddress, buffer.count)
                guard count > 0 else { break }
                var offset = 0
                while offset + MemoryLayout<inotify_event>.size <= count {
                    let event = UnsafeRawBufferPointer(buffer).loadUnaligned(fromByteOffset: offset, as: inotify_event.self)
                    let nameStart = offset + MemoryLayout<inotify_event>.size
                    let nameBytes = UnsafeRawBufferPointer(buffer)[nameStart..<min(count, nameStart + Int(event.len))].prefix { $0 != 0 }
                    let (watch, mask, name) = (event.wd, event.mask, String(decoding: nameBytes, as: UTF8.self))
                    offset = nameStart + Int(event.len)
                    if mask & UInt32(IN_Q_OVERFLOW) != 0 { rootChanged = true }
                    if mask & UInt32(IN_IGNORED) != 0 {
                        folders[watch] = nil
                        continue
                    }
                    guard let folder = folders[watch] else { continue }
                    if folder.isEmpty {
                        rootChanged = true
                        if !name.isEmpty, !name.hasPrefix(".") { touched.insert(name) }
                    } else {
                        touched.insert(folder)
                    }
                }
            }
        }
        return (touched, rootChanged)
    }
}
