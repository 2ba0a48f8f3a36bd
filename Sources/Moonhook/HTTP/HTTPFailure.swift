import Hummingbird

/// A refusal sent back to the sender: a status and a one-line reason, as plain text.
public struct HTTPFailure: HTTPResponseError, CustomStringConvertible {
    public let status: HTTPResponse.Status
    public let message: String
    /// Sent along, such as `Retry-After`.
    public let headers: HTTPFields
    /// Its class, for metrics and kept refusals: given where the status alone does not say it.
    public let reason: RefusalReason

    public init(_ status: HTTPResponse.Status, _ message: String, headers: HTTPFields = [:], reason: RefusalReason? = nil) {
        self.status = status
        self.message = message
        self.headers = headers
        self.reason = reason ?? RefusalReason(status: status.code)
    }

    public var description: String { message }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = self.headers
        headers[.contentType] = "text/plain; charset=utf-8"
        return Response(
            status: status,
            headers: headers,
            body: ResponseBody(byteBuffer: ByteBuffer(string: message + "\n"))
        )
    }
}
