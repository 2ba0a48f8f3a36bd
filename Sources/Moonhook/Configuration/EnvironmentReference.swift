/// `${NAME}` references in a setting, filled from the environment: in moonhook.yaml and
/// source.yaml values, and in store URLs given on the command line (so that a password need not be).
public enum EnvironmentReference {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case unterminated
        case unset(String)

        public var description: String {
            switch self {
            case .unterminated: "unterminated ${ in value"
            case .unset(let name): "environment variable \(name) is not set"
            }
        }
    }

    /// `text` with every `${NAME}` replaced; an unset variable is an error (a secret silently
    /// becoming empty would be worse).
    public static func expand(_ text: String, environment: [String: String]) throws(Failure) -> String {
        guard text.contains("${") else { return text }
        var result = ""
        var rest = Substring(text)
        while let start = rest.range(of: "${") {
            result += rest[..<start.lowerBound]
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else { throw .unterminated }
            let name = String(rest[start.upperBound..<end])
            guard let value = environment[name] else { throw .unset(name) }
            result += value
            rest = rest[rest.index(after: end)...]
        }
        return result + rest
    }

    /// The names `text` refers to as `${NAME}`, in order, each once.
    public static func names(in text: String) -> [String] {
        var names: [String] = []
        var rest = Substring(text)
        while let start = rest.range(of: "${"), let end = rest[start.upperBound...].firstIndex(of: "}") {
            let name = String(rest[start.upperBound..<end])
            if !names.contains(name) { names.append(name) }
            rest = rest[rest.index(after: end)...]
        }
        return names
    }
}
