import ArgumentParser

@main
struct MoonhookCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "moonhook",
        abstract: "A self-hosted webhook receiver that runs Lua handlers.",
        subcommands: [ServeCommand.self, RunCommand.self, CheckCommand.self, SignCommand.self, SendCommand.self, DeliveriesCommand.self, StoreCommand.self]
    )
}
