import Foundation

/// Signs bodies with `scripts/sign.py`, which uses each sender's own library (standardwebhooks,
/// svix, stripe, slack_sdk, browser_use_sdk, twilio) or Python's hmac module: signatures computed
/// independently of the code under test.
public enum ReferenceSigner {
    public static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// - Parameters:
    ///   - url: `twilio`: the full URL the request goes to, query string included.
    ///   - json: `twilio`: the body is JSON, signed through the `bodySHA256` in `url`.
    public static func sign(
        _ scheme: String, secret: String, body: [UInt8], timestamp: Int64? = nil, id: String? = nil, payloadOnly: Bool = false, event: String? = nil,
        url: String? = nil, json: Bool = false
    ) throws -> [(name: String, value: String)] {
        let file = FileManager.default.temporaryDirectory.appending(path: "moonhook-body-\(UUID().uuidString)")
        try Data(body).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        var arguments = [root.appending(path: "scripts/sign.py").path, scheme, secret, file.path]
        if let timestamp { arguments += ["--timestamp", String(timestamp)] }
        if let id { arguments += ["--id", id] }
        if payloadOnly { arguments.append("--payload-only") }
        if let event { arguments += ["--event", event] }
        if let url { arguments += ["--url", url] }
        if json { arguments.append("--json") }
        let output = try python(arguments)
        guard let object = try JSONSerialization.jsonObject(with: output) as? [String: String] else {
            throw Failure(description: "sign.py printed no header object")
        }
        return object.sorted { $0.key < $1.key }.map { (name: $0.key, value: $0.value) }
    }

    /// Runs python3 with `arguments` and returns its standard output.
    public static func python(_ arguments: [String], input: [UInt8]? = nil) throws -> Data {
        let process = Process()
        // `make test` points MOONHOOK_PYTHON at a virtual environment holding the senders' libraries.
        if let python = ProcessInfo.processInfo.environment["MOONHOOK_PYTHON"], FileManager.default.isExecutableFile(atPath: python) {
            process.executableURL = URL(fileURLWithPath: python)
            process.arguments = arguments
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3"] + arguments
        }
        let stdout = Pipe()
        let stderr = Pipe()
        let stdin = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = stdin
        try process.run()
        if let input { stdin.fileHandleForWriting.write(Data(input)) }
        try stdin.fileHandleForWriting.close()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        let errors = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure(
                description: "python3 \(arguments.prefix(1).joined()) failed: \(String(decoding: errors, as: UTF8.self))\(String(decoding: output, as: UTF8.self))")
        }
        return output
    }
}
