import ArgumentParser
import AsyncHTTPClient
import Foundation
import Moonhook
import NIOCore

/// `moonhook refusals`: asks a running server which requests it refused, and why.
struct RefusalsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "refusals",
        abstract: "List the requests a running server refused, newest first, with their reasons.",
        discussion: """
            Asks GET /admin/refusals of the server at --url (default: the configured listen address) with the admin token from \
            MOONHOOK_ADMIN_TOKEN (or admin_token in moonhook.yaml). Each server keeps its own last refusals.keep refusals per \
            source, in memory: behind a load balancer, ask each instance.

            Example: moonhook refusals --source github
            """
    )

    @Option(help: "Only this source's refusals (_unknown: requests to sources that are not served).") var source: String?
    @Option(help: "The server's base URL (default: http://HOST:PORT of the configured listen address).") var url: String?
    @Flag(help: "Print the server's JSON answer as it is.") var json = false
    @OptionGroup var options: ServerOptions

    func run() async throws {
        let endpoint = try AdminEndpoint(url: url, options: options)
        let base = endpoint.base
        let address = try endpoint.address("/admin/refusals", query: [("source", source)])
        var request = HTTPClientRequest(url: address)
        request.headers.add(name: "Authorization", value: "Bearer \(endpoint.token)")
        let response: HTTPClientResponse
        let body: ByteBuffer
        do {
            response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
            body = try await response.body.collect(upTo: 64 << 20)
        } catch {
            throw ValidationError("cannot reach the server at \(base): \(error)")
        }
        guard response.status == .ok else {
            throw ValidationError("the server answered \(response.status.code): \(String(buffer: body).trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        if json {
            print(String(buffer: body), terminator: "")
            return
        }
        let lines = try RefusalReport.lines(fromAnswer: Array(buffer: body))
        print(lines.isEmpty ? "no refusals kept" : lines.joined(separator: "\n"))
    }
}
