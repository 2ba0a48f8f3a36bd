import ArgumentParser
import Foundation
import Moonhook

struct FixtureCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fixture",
        abstract: "Make a stored delivery a test fixture, and print a test case that sends it.",
        discussion: """
            Writes the delivery's body, with its source's secrets replaced, to <handlers>/SOURCE/fixtures/TYPE.SEQ.json (.form \
            for a form), and prints a case for a *_test.lua file with the headers it came with (less the signature, which a test \
            makes anew, and the connection's). Reads the store as moonhook deliveries does.
            Example: moonhook fixture 1042 >> handlers/github/push_test.lua   (then move the case into the returned table)
            """
    )

    @Argument(help: "The delivery's number (SEQ in moonhook deliveries list), or the sender's delivery id.") var delivery: String
    @Option(help: "Handlers folder (default: the configuration's).") var handlers: String?
    @OptionGroup var options: DeliveriesCommand.StoreOptions

    func run() async throws {
        let detail = try await options.withStore { store in
            let seq: Int64
            do {
                seq = try await DeliveryReport.resolve(delivery, in: store)
            } catch let error as DeliveryQueryError {
                throw ValidationError(error.message)
            }
            guard let detail = try await store.show(seq) else { throw ValidationError("no delivery \(seq)") }
            return detail
        }
        let environment = ProcessInfo.processInfo.environment
        let folder = try handlers ?? options.configuration().handlersFolder
        let fixture = DeliveryFixture(delivery: detail.delivery, handlersFolder: URL(fileURLWithPath: folder), environment: environment)
        let url = URL(fileURLWithPath: folder).appending(path: detail.delivery.source).appending(path: "fixtures").appending(path: fixture.fileName)
        if FileManager.default.fileExists(atPath: url.path) { throw ValidationError("\(url.relativePath) exists already") }
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(fixture.body).write(to: url)
        FileHandle.standardError.write(Data("wrote \(url.relativePath)\n".utf8))
        print(fixture.caseText, terminator: "")
    }
}
