import Foundation

/// Kept refusals as `GET /admin/refusals` answers them and `moonhook refusals` prints them.
public enum RefusalReport {
    /// One refusal as a JSON object.
    static func object(_ refusal: Refusal) -> [String: Any] {
        [
            "time": TimeAPI.iso8601(refusal.time), "source": refusal.source, "status": refusal.status, "reason": refusal.reason.rawValue,
            "message": refusal.message, "remote_address": refusal.remoteAddress ?? NSNull(), "headers": refusal.headerNames,
            "body_bytes": refusal.bodyBytes, "body": refusal.bodyPrefix,
        ]
    }

    /// The lines `moonhook refusals` prints for an `/admin/refusals` answer: one per refusal
    /// (`time source status reason: message`), then its address, header names and body start.
    public static func lines(fromAnswer data: [UInt8]) throws -> [String] {
        guard let answer = try JSONSerialization.jsonObject(with: Data(data)) as? [String: Any], let list = answer["refusals"] as? [[String: Any]] else {
            throw RefusalReportError("the server's answer has no refusals list")
        }
        var lines: [String] = []
        for item in list {
            let time = item["time"] as? String ?? "?"
            let source = item["source"] as? String ?? "?"
            let status = item["status"] as? Int ?? 0
            let reason = item["reason"] as? String ?? "?"
            let message = item["message"] as? String ?? ""
            lines.append("\(time) \(source) \(status) \(reason): \(message)")
            let address = item["remote_address"] as? String ?? "-"
            let headers = (item["headers"] as? [String] ?? []).joined(separator: ",")
            lines.append("    from \(address), \(item["body_bytes"] as? Int ?? 0) bytes, headers: \(headers)")
            if let body = item["body"] as? String, !body.isEmpty {
                lines.append("    body: \(body.debugDescription)")
            }
        }
        return lines
    }
}

/// An answer `moonhook refusals` cannot read.
public struct RefusalReportError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
