import ArgumentParser
import AsyncHTTPClient
import Foundation
import Moonhook
import NIOCore

/// `moonhook tail`: follows a running server's live stream (`GET /admin/stream`).
struct TailCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tail",
        abstract: "Follow a running server's deliveries, attempts and handler log lines as they happen.",
        discussion: """
            Reads GET /admin/stream of the server at --url (default: the configured listen address) with the admin token from \
            MOONHOOK_ADMIN_TOKEN (or admin_token in moonhook.yaml). Prints one line per event, coloured on a terminal, and JSON \
            lines when its output is not a terminal (or with --json). Each server streams its own events: behind a load \
            balancer, tail each instance. When this reader falls behind, the server drops events for it alone and says how \
            many; when the connection ends, tail connects again. Ctrl-C stops it.

            Example: moonhook tail --source github --level warn
            """
    )

    @Option(help: "Only this source's events.") var source: String?
    @Option(help: "Only this handler's events (a path such as github/push.lua).") var handler: String?
    @Option(help: "Only log lines and attempts at this level or above: debug, info, warn, error.") var level: String?
    @Option(help: "The server's base URL (default: http://HOST:PORT of the configured listen address).") var url: String?
    @Flag(help: "Print each event as a JSON line, also on a terminal.") var json = false
    @OptionGroup var options: ServerOptions

    func run() async throws {
        if let level, !["debug", "info", "warn", "warning", "error"].contains(level) {
            throw ValidationError("--level must be one of debug, info, warn, error")
        }
        let endpoint = try AdminEndpoint(url: url, options: options)
        let address = try endpoint.address("/admin/stream", query: [("source", source), ("handler", handler), ("level", level)])
        let asJSON = json || isatty(STDOUT_FILENO) == 0
        let colour = !asJSON && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
        // Three missed heartbeats (15 s apart) and the connection counts as dead.
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(timeout: .init(connect: .seconds(5), read: .seconds(45))))
        do {
            try await follow(address, endpoint: endpoint, client: client, json: asJSON, colour: colour)
        } catch {
            try? await client.shutdown()
            throw error
        }
        try? await client.shutdown()
    }

    private func follow(_ address: String, endpoint: AdminEndpoint, client: HTTPClient, json asJSON: Bool, colour: Bool) async throws {
        var connected = false
        while !Task.isCancelled {
            var request = HTTPClientRequest(url: address)
            request.headers.add(name: "Authorization", value: "Bearer \(endpoint.token)")
            request.headers.add(name: "Accept", value: "text/event-stream")
            do {
                let response = try await client.execute(request, timeout: .seconds(10))
                guard response.status == .ok else {
                    let body = try await response.body.collect(upTo: 1 << 16)
                    let answer = "the server answered \(response.status.code): \(String(buffer: body).trimmingCharacters(in: .whitespacesAndNewlines))"
                    // Refused (the token, the filter, no stream there) ends tail; a proxy's 502 or
                    // a restarting server's 503 is waited out like a lost connection.
                    if !connected || [400, 401, 403, 404].contains(response.status.code) { throw ValidationError(answer) }
                    throw TailInterruption(answer)
                }
                if connected { FileHandle.standardError.write(Data("moonhook tail: connected again\n".utf8)) }
                connected = true
                var parser = ServerSentEventParser()
                for try await chunk in response.body {
                    for event in parser.feed(chunk.readableBytesView) {
                        // Unbuffered, a line at a time: a pipe's reader sees each event as it comes.
                        FileHandle.standardOutput.write(Data((Self.render(event, json: asJSON, colour: colour) + "\n").utf8))
                    }
                }
                FileHandle.standardError.write(Data("moonhook tail: the stream ended; connecting again\n".utf8))
            } catch let error as ValidationError {
                throw error
            } catch {
                guard connected else { throw ValidationError("cannot reach the server at \(endpoint.base): \(error)") }
                FileHandle.standardError.write(Data("moonhook tail: connection lost (\(error)); connecting again\n".utf8))
            }
            try await Task.sleep(for: .seconds(2))
        }
    }

    static func render(_ event: ServerSentEventParser.Event, json: Bool, colour: Bool) -> String {
        let object = (try? JSONSerialization.jsonObject(with: Data(event.data.utf8))) as? [String: Any] ?? [:]
        guard json else { return LiveEventText.line(event: event.name, object: object, colour: colour) }
        if event.name == "dropped" { return #"{"kind":"dropped","dropped":\#(object["dropped"] as? Int ?? 0)}"# }
        return event.data
    }
}

/// A stream that could not be read this time, though it was before: tail connects again.
struct TailInterruption: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
