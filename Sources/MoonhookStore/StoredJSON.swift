/// The JSON text of the inbox's `headers` and `handlers` columns, written by hand: it is built for
/// every delivery on the receiving path, where Foundation's encoder costs more than the insert.
enum StoredJSON {
    static func object(_ fields: [String: String]) -> String {
        var output = "{"
        for (index, key) in fields.keys.sorted().enumerated() {
            if index > 0 { output += "," }
            string(key, into: &output)
            output += ":"
            string(fields[key]!, into: &output)
        }
        return output + "}"
    }

    static func array(_ items: [String]) -> String {
        var output = "["
        for (index, item) in items.enumerated() {
            if index > 0 { output += "," }
            string(item, into: &output)
        }
        return output + "]"
    }

    static func string(_ text: String, into output: inout String) {
        output += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                output += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: output.unicodeScalars.append(scalar)
            }
        }
        output += "\""
    }
}
