import ArgumentParser
import AsyncHTTPClient
import Foundation
import Moonhook
import NIOCore
import WebhookVerification

struct SignCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sign",
        abstract: "Print the headers a sender would send with FILE under SOURCE's scheme and secret.",
        discussion: """
            A .form file is signed as application/x-www-form-urlencoded, anything else as JSON; --content-type says otherwise. \
            With --set or --type the body changes before it is signed: the headers are followed by a blank line and the body \
            they sign.
            Example: moonhook sign browser-use fixtures/browser-use/test.json --set /payload/status=stopped
            """
    )

    @Argument(help: "The source (a folder of the handlers folder).") var source: String
    @Argument(help: "The body to sign.") var file: String
    @Option(help: "The body's content type (default: by the file's extension).") var contentType: String?
    @OptionGroup var overrides: OverrideOptions
    @OptionGroup var options: ServerOptions

    func run() async throws {
        let signed = try SignedRequest.make(source: source, file: file, contentType: contentType, overrides: try overrides.parsed(), options: options)
        for (name, value) in signed.headers { print("\(name): \(value)") }
        if overrides.changesBody {
            print("")
            print(String(decoding: signed.body, as: UTF8.self), terminator: signed.body.last == 10 ? "" : "\n")
        }
    }
}

struct SendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Sign FILE as SOURCE would and POST it to URL.",
        discussion: """
            Prints the answer's status and body; exits 0 on a 2xx answer, 1 otherwise. --set and --type change the body \
            before it is signed; --header adds or replaces a header after signing (a wrong signature, say).
            Example: moonhook send http://127.0.0.1:8080/hooks/induced induced fixtures/induced/browser_ready.json --type browser.failed
            """
    )

    @Argument(help: "Where to post, e.g. http://127.0.0.1:8080/hooks/browser-use.") var url: String
    @Argument(help: "The source whose scheme and secret sign the body.") var source: String
    @Argument(help: "The body to send.") var file: String
    @Option(help: "The body's content type (default: by the file's extension, .form is a URL-encoded form).") var contentType: String?
    @OptionGroup var overrides: OverrideOptions
    @OptionGroup var options: ServerOptions

    func run() async throws {
        let signed = try SignedRequest.make(source: source, file: file, contentType: contentType, overrides: try overrides.parsed(), options: options)
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: signed.contentType)
        for (name, value) in signed.headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: signed.body))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        print("\(response.status.code) \(String(buffer: body))", terminator: body.readableBytes > 0 && body.getInteger(at: body.writerIndex - 1, as: UInt8.self) == 10 ? "" : "\n")
        if !(200..<300).contains(response.status.code) { throw ExitCode(1) }
    }
}

/// A body and the headers its source's scheme gives it.
struct SignedRequest {
    var headers: [(name: String, value: String)]
    var body: [UInt8]
    var contentType: String

    static func make(source: String, file: String, contentType: String?, overrides: FixtureOverrides, options: ServerOptions) throws -> SignedRequest {
        let environment = ProcessInfo.processInfo.environment
        let configuration = try options.load(environment: environment)
        let path = URL(fileURLWithPath: configuration.handlersFolder).appending(path: source).appending(path: "source.yaml").path
        guard let body = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read \(file)") }
        do {
            let sourceConfiguration = try SourceConfiguration.load(path: path, environment: environment, handlerSecrets: false)
            let verifier = try Verifier(sourceConfiguration.verifier)
            let contentType = contentType ?? FixtureContentType.of(file)
            let changed = try overrides.apply(to: Array(body), contentType: contentType, typeSources: sourceConfiguration.type)
            var headers = try verifier.sign(body: changed.body, now: Date(), contentType: contentType)
            for (name, value) in changed.headers + overrides.headers {
                headers.removeAll { $0.name.lowercased() == name.lowercased() }
                headers.append((name, value))
            }
            return SignedRequest(headers: headers, body: changed.body, contentType: contentType)
        } catch let error as ConfigurationError {
            throw ValidationError(error.description)
        } catch {
            throw ValidationError("\(error)")
        }
    }
}

/// `--set`, `--type` and `--header` of `sign` and `send`.
struct OverrideOptions: ParsableArguments {
    @Option(name: .customLong("set"), help: ArgumentHelp("Set a body value before signing (repeatable); VALUE is JSON or else a string.", valueName: "/json/pointer=VALUE"))
    var values: [String] = []
    @Option(help: "The event type, written where the source's type: reads it (a JSON pointer, a header or a form field).") var type: String?
    @Option(name: .customLong("header"), help: ArgumentHelp("Add or replace a header after signing (repeatable).", valueName: "NAME:VALUE"))
    var headers: [String] = []

    var changesBody: Bool { !values.isEmpty || type != nil }

    func parsed() throws -> FixtureOverrides {
        do {
            return FixtureOverrides(values: try values.map(FixtureOverrides.value), type: type, headers: try headers.map(FixtureOverrides.header))
        } catch {
            throw ValidationError(error.description)
        }
    }
}
