import Foundation

/// Every source folder as operators see it (`GET /admin/handlers`, the console's Sources page):
/// whether it is served, its version and load time, its problems, its scheme and handlers.
struct SourceReport: Sendable {
    struct Handler: Sendable {
        var path: String
        /// The event types it runs on besides its file name (`on` patterns).
        var on: [String]
    }

    var name: String
    var serving: Bool
    var version: Int?
    var loadedAt: Date?
    /// `path:line: message` of each problem of its last load.
    var problems: [String]
    var scheme: String?
    var handlers: [Handler]

    /// One report per source folder, by name.
    static func all(_ directory: SourceDirectory) -> [SourceReport] {
        let catalog = directory.catalog
        let status = directory.status
        return Set(status.keys).union(catalog.sources.keys).sorted().map { name in
            let state = status[name]
            let source = catalog.sources[name]
            return SourceReport(
                name: name, serving: source != nil, version: state?.version, loadedAt: state?.loadedAt, problems: state?.problems.map(\.description) ?? [],
                scheme: source?.configuration.verifier.scheme.rawValue,
                handlers: source?.handlers.map { Handler(path: $0.path, on: $0.options.on) } ?? [])
        }
    }

    /// As `GET /admin/handlers` gives it.
    var object: [String: Any] {
        var entry: [String: Any] = ["source": name, "serving": serving]
        if let version {
            entry["version"] = version
            entry["loaded_at"] = loadedAt.map { $0.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)) } ?? NSNull()
            entry["problems"] = problems
        }
        if let scheme {
            entry["scheme"] = scheme
            entry["handlers"] = handlers.map { ["path": $0.path, "on": $0.on] as [String: Any] }
        }
        return entry
    }
}
