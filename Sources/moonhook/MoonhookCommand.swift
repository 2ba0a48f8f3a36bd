import ArgumentParser
import Moonhook

@main
struct MoonhookCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "moonhook",
        abstract: "A self-hosted webhook receiver that runs Lua handlers.",
        version: MoonhookVersion.current,
        subcommands: [ServeCommand.self, RunCommand.self, CheckCommand.self, TestCommand.self, TypesCommand.self, NewCommand.self, FixtureCommand.self, SignCommand.self, SendCommand.self, DeliveriesCommand.self, RefusalsCommand.self, TailCommand.self, StoreCommand.self]
    )
}
