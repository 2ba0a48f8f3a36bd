import Foundation

/// What a source folder looks like on disk: every file's name, size, modification time and inode.
/// Two equal fingerprints mean nothing worth reloading changed; it catches what inotify cannot see
/// (network filesystems, bind-mounted files replaced behind the mount, lost events).
struct FolderFingerprint: Equatable {
    private var entries: [String: [Int]] = [:]

    init(folder: URL) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { return }
        for name in names where (name.hasSuffix(".lua") && !name.hasSuffix(HandlerTestRunner.suffix)) || name == "source.yaml" {
            var info = stat()
            guard stat(folder.appending(path: name).path, &info) == 0 else { continue }
            entries[name] = [Int(info.st_size), Int(info.st_mtim.tv_sec), Int(info.st_mtim.tv_nsec), Int(info.st_ino)]
        }
    }

    /// Fingerprints of every source folder under `root`.
    static func scan(root: URL) -> [String: FolderFingerprint] {
        var result: [String: FolderFingerprint] = [:]
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: root.path) else { return result }
        for name in names where !name.hasPrefix(".") {
            var isDirectory: ObjCBool = false
            let folder = root.appending(path: name)
            guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDirectory), isDirectory.boolValue else { continue }
            result[name] = FolderFingerprint(folder: folder)
        }
        return result
    }
}
