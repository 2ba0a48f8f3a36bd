import ArgumentParser
import Foundation
import Moonhook

struct TypesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "types",
        abstract: "Write the lua-language-server definition file of the handler API.",
        discussion: """
            Writes moonhook.d.lua (---@meta) into the handlers folder, or to --output (- for standard output). Editors with \
            lua-language-server then complete and check kv, http, log, json, time, crypto, secrets and the rest. moonhook check \
            reports a moonhook.d.lua that no longer matches the moonhook in use.
            """
    )

    @Option(name: .shortAndLong, help: ArgumentHelp("Where to write (default: <handlers>/moonhook.d.lua; - for standard output).", valueName: "FILE"))
    var output: String?
    @OptionGroup var options: ServerOptions

    func run() async throws {
        let text = HandlerTypes.definitions()
        if output == "-" {
            print(text, terminator: "")
            return
        }
        let path: String
        if let output {
            path = output
        } else {
            let configuration = try options.load(environment: ProcessInfo.processInfo.environment)
            path = URL(fileURLWithPath: configuration.handlersFolder).appending(path: HandlerTypes.fileName).path
        }
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        } catch {
            throw ValidationError("cannot write \(path): \(error.localizedDescription)")
        }
        print("wrote \(path)")
    }
}
