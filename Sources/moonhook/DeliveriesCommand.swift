import ArgumentParser
import Foundation
import Logging
import Moonhook
import MoonhookStore

struct DeliveriesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deliveries",
        abstract: "Look into the inbox: list, show, replay and purge deliveries.",
        discussion: """
            Works on the store named by moonhook.yaml (or --store), whether or not a server is \
            running on it. A running server picks replayed deliveries up within its poll interval \
            (one second by default); a stopped one when it starts. The same is served under /admin.
            """,
        subcommands: [List.self, Show.self, Replay.self, Purge.self]
    )

    /// Flags every subcommand takes: where the store is.
    struct StoreOptions: ParsableArguments {
        @Option(help: "Configuration file (default: ./moonhook.yaml when it exists).")
        var config: String?

        @Option(help: "Storage: sqlite:PATH or postgres://… (default: the configuration's, else sqlite:data/moonhook.sqlite).")
        var store: String?

        /// Runs `body` with the store open, and closes it after.
        func withStore<T>(_ body: (any Store) async throws -> T) async throws -> T {
            let store = try await open()
            do {
                let result = try await body(store)
                await store.close()
                return result
            } catch {
                await store.close()
                throw error
            }
        }

        /// The configuration file's settings.
        func configuration() throws -> ServerConfiguration {
            try ServerConfiguration.load(file: config ?? "moonhook.yaml", required: config != nil, environment: ProcessInfo.processInfo.environment)
        }

        func open() async throws -> any Store {
            var configuration: ServerConfiguration
            do {
                configuration = try self.configuration()
                if let store { configuration.store = store }
                let location = try StoreLocation(configuration.store)
                if case .sqlite(let path) = location, !FileManager.default.fileExists(atPath: path) {
                    throw ValidationError("no store at \(path) (has the server run here? pass --store sqlite:PATH)")
                }
                return try await location.open(logger: Logger(label: "moonhook"), options: configuration.deliveries.storeOptions)
            } catch let error as ValidationError {
                throw error
            } catch {
                throw ValidationError("\(error)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List deliveries, newest first.")

        @OptionGroup var options: StoreOptions
        @Option(help: "Only deliveries with a handler in this state: pending, running, done, retry, dead.")
        var status: String?
        @Option(help: "Only this source's deliveries.")
        var source: String?
        @Option(help: "Only deliveries of this event type.")
        var type: String?
        @Option(help: "Only deliveries with this sender's delivery id.")
        var id: String?
        @Option(help: "Only deliveries received since this time (ISO 8601) or for this long (2h, 7d).")
        var since: String?
        @Option(help: "Only deliveries received before this time (ISO 8601) or this long ago (2h, 7d).")
        var until: String?
        @Option(help: "At most this many.")
        var limit = 50
        @Option(help: "Start after this delivery number: the NEXT printed under the previous page.")
        var cursor: String?
        @Flag(help: "Print JSON, one object per line, and the next cursor as a last object {\"next\": N}.")
        var json = false

        func run() async throws {
            let filter = try await usage {
                try DeliveryReport.filter(
                    status: status, source: source, type: type, id: id, since: since, until: until, limit: String(limit), cursor: cursor, prefix: "--")
            }
            let page = try await options.withStore { try await $0.deliveries(filter) }
            if json {
                for summary in page.deliveries { print(DeliveryReport.text(DeliveryReport.summary(summary))) }
                if let next = page.next { print(DeliveryReport.text(["next": next])) }
                return
            }
            print("SEQ\tRECEIVED\tSOURCE\tTYPE\tID\tHANDLERS")
            for summary in page.deliveries {
                let states = summary.statuses.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue):\($0.value)" }
                let received = summary.receivedAt.formatted(Date.ISO8601FormatStyle())
                print("\(summary.seq)\t\(received)\t\(summary.source)\t\(summary.type)\t\(summary.id)\t\(states.isEmpty ? "unhandled" : states.joined(separator: ","))")
            }
            if let next = page.next { print("NEXT\t\(next)\t(more: --cursor \(next))") }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one delivery: body, headers, every attempt with its error and logs.")

        @OptionGroup var options: StoreOptions
        @Argument(help: "The delivery's number (SEQ in list), or the sender's delivery id.")
        var delivery: String

        func run() async throws {
            let detail = try await options.withStore { store in
                let seq = try await lookup(delivery, store)
                guard let detail = try await store.show(seq) else { throw ValidationError("no delivery \(seq)") }
                return detail
            }
            let folder = try? options.configuration().handlersFolder
            print(DeliveryReport.text(DeliveryReport.detail(detail, handlersFolder: folder.map { URL(fileURLWithPath: $0) }), pretty: true))
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run handlers again, on their current version.",
            discussion: "Either one delivery (every handler its type has now), or with --status dead every dead-lettered handler, optionally limited by --source, --type, --since and --until.")

        @OptionGroup var options: StoreOptions
        @Argument(help: "The delivery's number or the sender's delivery id.")
        var delivery: String?
        @Option(help: "Replay every pair in this state (only dead).")
        var status: String?
        @Option(help: "With --status: only this source's deliveries.")
        var source: String?
        @Option(help: "With --status: only deliveries of this event type.")
        var type: String?
        @Option(help: "With --status: only deliveries received since this time (ISO 8601) or for this long (2h, 7d).")
        var since: String?
        @Option(help: "With --status: only deliveries received before this time (ISO 8601) or this long ago (2h, 7d).")
        var until: String?
        @Flag(help: "A serial handler's replayed event runs at its own place in its key's order, ahead of newer ones, instead of behind them.")
        var outOfOrder = false

        func validate() throws {
            if delivery == nil && status == nil { throw ValidationError("give a delivery, or --status dead") }
            if delivery != nil && status != nil { throw ValidationError("give a delivery or --status dead, not both") }
            if let status, status != "dead" { throw ValidationError("--status takes dead only") }
        }

        func run() async throws {
            let filter = try await usage { try DeliveryReport.filter(status: nil, source: source, type: type, since: since, until: until, limit: nil, defaultStatus: .dead, prefix: "--") }
            let count = try await options.withStore { store in
                if let delivery {
                    let count = try await store.replay(.delivery(try await lookup(delivery, store)), order: outOfOrder ? .ignore : .keep)
                    guard count > 0 else { throw ValidationError("no delivery \(delivery)") }
                    return count
                }
                return try await store.replay(.dead(filter), order: outOfOrder ? .ignore : .keep)
            }
            print("replaying \(count) deliver\(count == 1 ? "y" : "ies")")
        }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete deliveries received before a time, whatever their state.")

        @OptionGroup var options: StoreOptions
        @Option(name: .customLong("older-than"), help: "A duration back from now (30d) or an ISO 8601 time.")
        var olderThan: String
        @Option(help: "Only this source's deliveries.")
        var source: String?
        @Option(help: "Only deliveries of this event type.")
        var type: String?

        func run() async throws {
            guard let cutoff = DeliveryReport.time(olderThan) else { throw ValidationError("--older-than must be a duration (30d) or an ISO 8601 time") }
            let filter = DeliveryFilter(source: source, type: type, until: cutoff)
            let count = try await options.withStore { try await $0.purge(filter, onlyFinished: false) }
            print("purged \(count) deliver\(count == 1 ? "y" : "ies")")
        }
    }
}

private func lookup(_ argument: String, _ store: any Store) async throws -> Int64 {
    try await usage { try await DeliveryReport.resolve(argument, in: store) }
}

/// Runs `body`; a delivery or filter it cannot make out is the command's usage error.
private func usage<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as DeliveryQueryError {
        throw ValidationError(error.message)
    }
}
