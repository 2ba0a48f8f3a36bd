import Foundation
import LuaRuntime

/// What `moonhook check` reports about a handlers folder beyond what loading it finds: unknown
/// globals and API members in every handler and test file (`HandlerLint`), problems; and a
/// definition file (`moonhook.d.lua`) that no longer matches this moonhook, a warning (editors
/// read it, the server does not).
public enum HandlerFolderCheck {
    /// Problems as `path:line: message` (paths relative to the handlers folder), in file order.
    public static func findings(handlersFolder: String, worker: LuaWorker) async throws -> [String] {
        let root = URL(fileURLWithPath: handlersFolder)
        let lint = HandlerLint(names: try await SandboxNames.read(from: worker))
        var findings: [String] = []
        let folders = ((try? FileManager.default.contentsOfDirectory(atPath: handlersFolder)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
        for folder in folders {
            let files = ((try? FileManager.default.contentsOfDirectory(atPath: root.appending(path: folder).path)) ?? []).filter { $0.hasSuffix(".lua") }.sorted()
            for file in files {
                guard let data = FileManager.default.contents(atPath: root.appending(path: folder).appending(path: file).path) else { continue }
                let extra: Set<String> = file.hasSuffix(HandlerTestRunner.suffix) ? ["expect"] : []
                findings += lint.findings(path: "\(folder)/\(file)", source: Array(data), extraGlobals: extra).map(\.description)
            }
        }
        return findings
    }

    /// Warnings: a checked-in `moonhook.d.lua` that does not describe this moonhook's API.
    public static func warnings(handlersFolder: String) -> [String] {
        let types = URL(fileURLWithPath: handlersFolder).appending(path: HandlerTypes.fileName)
        guard let data = FileManager.default.contents(atPath: types.path), String(decoding: data, as: UTF8.self) != HandlerTypes.definitions() else { return [] }
        return ["warning: \(HandlerTypes.fileName): stale: it does not describe this moonhook's API (\(MoonhookVersion.current)); run moonhook types to write it anew"]
    }
}
