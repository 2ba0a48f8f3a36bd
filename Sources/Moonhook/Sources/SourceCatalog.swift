import Foundation
import Logging
import LuaRuntime
import WebhookVerification

/// Every source of a handlers folder, loaded and compiled, plus what could not be loaded.
///
/// A folder with any problem (a bad `source.yaml`, a handler that does not compile or whose top
/// level fails) is not served, and its problems are listed; other folders are not affected.
public struct SourceCatalog: Sendable {
    public var sources: [String: Source]
    /// Problems as `path:line: message`, paths relative to the handlers folder.
    public var problems: [ConfigurationError]

    public init(sources: [String: Source] = [:], problems: [ConfigurationError] = []) {
        self.sources = sources
        self.problems = problems
    }

    /// Loads every subfolder of `folder` into `pool`.
    public static func load(folder: String, pool: WorkerPool, environment: [String: String]) async -> SourceCatalog {
        var catalog = SourceCatalog()
        let root = URL(fileURLWithPath: folder)
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        } catch {
            catalog.problems.append(ConfigurationError(path: folder, "cannot read the handlers folder"))
            return catalog
        }
        for name in names where !name.hasPrefix(".") {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: root.appending(path: name).path, isDirectory: &isDirectory), isDirectory.boolValue else { continue }
            switch await loadSource(name: name, root: root, pool: pool, environment: environment) {
            case .success(let source): catalog.sources[name] = source
            case .failure(let list): catalog.problems += list.problems
            }
        }
        return catalog
    }

    /// Loads one source folder; all of it or nothing.
    public static func loadSource(name: String, root: URL, pool: WorkerPool, environment: [String: String]) async -> Result<Source, ProblemList> {
        let folder = root.appending(path: name)
        var problems: [ConfigurationError] = []
        let configuration: SourceConfiguration
        do {
            configuration = try SourceConfiguration.load(path: folder.appending(path: "source.yaml").path, environment: environment)
        } catch {
            let message = FileManager.default.fileExists(atPath: folder.appending(path: "source.yaml").path) ? error.message : "missing source.yaml (every source folder needs one; see docs/sources.md)"
            return .failure(ProblemList([ConfigurationError(path: "\(name)/source.yaml", line: error.line, message)]))
        }
        let verifier: Verifier
        do {
            verifier = try Verifier(configuration.verifier)
        } catch {
            return .failure(ProblemList([ConfigurationError(path: "\(name)/source.yaml", error.message)]))
        }
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).filter { $0.hasSuffix(".lua") && !$0.hasSuffix(HandlerTestRunner.suffix) }.sorted()
        var handlers: [LoadedHandler] = []
        for file in files {
            let path = "\(name)/\(file)"
            guard let data = FileManager.default.contents(atPath: folder.appending(path: file).path) else {
                problems.append(ConfigurationError(path: path, "cannot read the file"))
                continue
            }
            do {
                let secrets = LuaValue.table(array: [], fields: configuration.handlerSecrets.mapValues { .string($0) })
                let instances = try await pool.load(path: path, source: Array(data), extras: ["secrets": secrets])
                let name = String(file.dropLast(4))
                if name == DeadLetterAlert.handlerName, !instances[0].options.on.isEmpty {
                    await pool.unload(instances)
                    problems.append(ConfigurationError(path: path, "_dead.lua runs for dead-letter alerts (\(DeadLetterAlert.type)) only: it takes no 'on' patterns"))
                    continue
                }
                if name == DeadLetterAlert.type {
                    await pool.unload(instances)
                    problems.append(ConfigurationError(path: path, "\(DeadLetterAlert.type) is reserved for dead-letter alerts: name the handler _dead.lua"))
                    continue
                }
                let options = instances[0].options
                var serialKey: SourceConfiguration.FieldSource?
                var startInterval: Duration?
                if let text = options.maxRate {
                    guard let rate = Rate(text) else {
                        await pool.unload(instances)
                        problems.append(ConfigurationError(path: path, "'max_rate' must be a rate such as \"10/s\", \"600/m\" or \"20/h\", got '\(text)'"))
                        continue
                    }
                    startInterval = .nanoseconds(Int64((1e9 / rate.perSecond).rounded()))
                }
                if let serial = options.serial {
                    do throws(ConfigurationError) {
                        serialKey = try SourceConfiguration.FieldSource(serial, field: "serial", path: path)
                        if serialKey == .bodyHash { throw ConfigurationError(path: path, "'serial' must be a JSON pointer (/payload/taskId), header:NAME or form:NAME") }
                    } catch {
                        await pool.unload(instances)
                        problems.append(error)
                        continue
                    }
                }
                handlers.append(
                    LoadedHandler(path: path, name: String(file.dropLast(4)), options: options, serialKey: serialKey, startInterval: startInterval, version: HandlerVersion(instances: instances, pool: pool)))
            } catch {
                problems.append(ConfigurationError.fromLua(error, path: path))
            }
        }
        if !problems.isEmpty {
            handlers.removeAll()  // their versions go back to the pool
            await pool.collectRetired()
            return .failure(ProblemList(problems))
        }
        return .success(Source(name: name, configuration: configuration, verifier: verifier, handlers: handlers))
    }
}

/// The problems that kept a source from loading.
public struct ProblemList: Error, Sendable {
    public let problems: [ConfigurationError]
    init(_ problems: [ConfigurationError]) { self.problems = problems }
}

extension ConfigurationError {
    /// A Lua error whose message already starts with `path:line:` keeps it; others get the path.
    static func fromLua(_ error: LuaError, path: String) -> ConfigurationError {
        let message = error.message
        if message.hasPrefix(path + ":") {
            let rest = message.dropFirst(path.count + 1)
            if let colon = rest.firstIndex(of: ":"), let line = Int(rest[..<colon]) {
                return ConfigurationError(path: path, line: line, String(rest[rest.index(after: colon)...]).trimmingCharacters(in: .whitespaces))
            }
            return ConfigurationError(path: path, String(rest).trimmingCharacters(in: .whitespaces))
        }
        return ConfigurationError(path: path, message)
    }
}
