import ArgumentParser
import Foundation
import Logging
import Moonhook
import MoonhookStore

struct StoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Work on stores as a whole.",
        subcommands: [Copy.self]
    )

    struct Copy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy the keys and the unfinished deliveries of one store to another.",
            discussion: """
                Copies every live key (with what is left of its TTL) and every delivery with a pair \
                still to run (pending, due for a retry, or left running), due at once in the target. \
                Done and dead-lettered pairs stay behind: replay dead letters first to take them along. \
                Stop every server on FROM first, or a pair one of them holds runs on both sides. \
                Running it again copies nothing twice.

                Example: moonhook store copy sqlite:data/moonhook.sqlite 'postgres://moonhook:${PGPASSWORD}@db:5432/moonhook'
                """
        )

        @Argument(help: "The store to copy from: sqlite:PATH or postgres://…")
        var from: String

        @Argument(help: "The store to copy to (created or migrated as needed): sqlite:PATH or postgres://…")
        var to: String

        func run() async throws {
            let logger = Logger(label: "moonhook")
            let environment = ProcessInfo.processInfo.environment
            let source: any Store
            let target: any Store
            do {
                let fromLocation = try StoreLocation(Self.substitute(from, environment))
                if case .sqlite(let path) = fromLocation, !FileManager.default.fileExists(atPath: path) {
                    throw ValidationError("no store at \(path)")
                }
                source = try await fromLocation.open(logger: logger)
            } catch let error as ValidationError {
                throw error
            } catch {
                throw ValidationError("cannot open \(from): \(error)")
            }
            do {
                target = try await StoreLocation(Self.substitute(to, environment)).open(logger: logger)
            } catch {
                await source.close()
                throw ValidationError("cannot open \(to): \(error)")
            }
            do {
                let summary = try await StoreCopy.run(from: source, to: target)
                var line = "copied \(summary.keys) keys and \(summary.deliveries) deliveries (\(summary.pairs) pairs to run) to \(target.location)"
                if summary.present > 0 { line += "; \(summary.present) deliveries were there already" }
                print(line)
            } catch {
                await source.close()
                await target.close()
                throw ValidationError("copy stopped: \(error)")
            }
            await source.close()
            await target.close()
        }

        /// `${VAR}` from the environment, as in moonhook.yaml, so a password need not be on the command line.
        static func substitute(_ text: String, _ environment: [String: String]) throws -> String {
            do {
                return try EnvironmentReference.expand(text, environment: environment)
            } catch {
                throw ValidationError("\(error) in \(text)")
            }
        }
    }
}
