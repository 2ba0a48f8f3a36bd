import ArgumentParser
import Foundation
import Moonhook
import WebhookVerification

struct NewCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "new",
        abstract: "Start a source: source.yaml, and a handler, a test and a fixture per event.",
        discussion: """
            Writes into the handlers folder: SOURCE/source.yaml (commented, for the scheme), for each EVENT (default: _default, \
            which runs for every type) SOURCE/EVENT.lua, SOURCE/EVENT_test.lua and SOURCE/fixtures/EVENT.json, and beside the \
            sources moonhook.d.lua and .luarc.json for editors. Files that exist are left as they are.
            Example: moonhook new github push pull_request --scheme github
            """
    )

    @Argument(help: "The source's name: its folder, and its URL /hooks/SOURCE.") var source: String
    @Argument(help: "Event types to write a handler for.") var events: [String] = []
    @Option(help: ArgumentHelp("How the sender signs: \(VerificationScheme.allCases.map(\.rawValue).joined(separator: ", ")).", valueName: "SCHEME"))
    var scheme: String
    @OptionGroup var options: ServerOptions

    func run() async throws {
        guard let scheme = VerificationScheme(rawValue: scheme) else {
            throw ValidationError("unknown scheme '\(self.scheme)' (one of \(VerificationScheme.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        let configuration = try options.load(environment: ProcessInfo.processInfo.environment)
        let scaffold: SourceScaffold
        do {
            scaffold = try SourceScaffold(source: source, events: events, scheme: scheme)
        } catch {
            throw ValidationError(error.description)
        }
        let folder = URL(fileURLWithPath: configuration.handlersFolder)
        let written = try scaffold.write(to: folder)
        for path in written { print("wrote \(folder.appending(path: path).relativePath)") }
        if written.count <= 1 { print("nothing new: \(source)'s files exist already") }
        print("next: moonhook test \(folder.appending(path: source).relativePath)")
    }
}
