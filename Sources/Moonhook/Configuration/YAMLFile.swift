import Foundation
import Yams

/// Reads YAML configuration files: `${VAR}` references in values are filled from the environment
/// (so secrets stay out of files), and every problem is reported as `path:line: message`.
enum YAMLFile {
    /// Decodes `text` (read from `path`) into `T`, expanding `${VAR}` in scalar values.
    static func decode<T: Decodable>(_ type: T.Type, from text: String, path: String, environment: [String: String], expand: Bool = true) throws(ConfigurationError) -> T {
        let node: Node
        do {
            guard let composed = try Yams.compose(yaml: text) else {
                return try decodeEmpty(type, path: path)
            }
            node = composed
        } catch let error as YamlError {
            throw ConfigurationError(path: path, line: line(of: error), "invalid YAML: \(summary(of: error))")
        } catch {
            throw ConfigurationError(path: path, "invalid YAML: \(error)")
        }
        let expanded = expand ? try Self.expand(node, path: path, environment: environment) : node
        do {
            return try YAMLDecoder().decode(T.self, from: expanded)
        } catch let error as DecodingError {
            throw ConfigurationError(path: path, line: line(for: error, in: expanded), describe(error))
        } catch let error as ConfigurationError {
            throw ConfigurationError(path: path, line: error.line, error.message)
        } catch {
            throw ConfigurationError(path: path, "\(error)")
        }
    }

    private static func decodeEmpty<T: Decodable>(_ type: T.Type, path: String) throws(ConfigurationError) -> T {
        do {
            return try YAMLDecoder().decode(T.self, from: "{}")
        } catch {
            throw ConfigurationError(path: path, "the file is empty")
        }
    }

    /// Replaces `${NAME}` in every scalar with the environment's value; an unset variable is an error
    /// (a secret silently becoming empty would be worse).
    static func expand(_ node: Node, path: String, environment: [String: String]) throws(ConfigurationError) -> Node {
        switch node {
        case .scalar(var scalar):
            guard scalar.string.contains("${") else { return node }
            let result: String
            do {
                result = try EnvironmentReference.expand(scalar.string, environment: environment)
            } catch {
                throw ConfigurationError(path: path, line: scalar.mark?.line, error.description)
            }
            scalar.string = result
            return .scalar(scalar)
        case .mapping(var mapping):
            for (key, value) in mapping {
                mapping[key] = try expand(value, path: path, environment: environment)
            }
            return .mapping(mapping)
        case .sequence(var sequence):
            for index in sequence.indices {
                sequence[index] = try expand(sequence[index], path: path, environment: environment)
            }
            return .sequence(sequence)
        default:
            return node
        }
    }

    private static func line(of error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _):
            return mark.line
        default:
            return nil
        }
    }

    private static func summary(of error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, _, _), .parser(_, let problem, _, _), .composer(_, let problem, _, _):
            return problem
        default:
            return "\(error)".split(separator: "\n").first.map(String.init) ?? "\(error)"
        }
    }

    /// The line of the key a decoding error is about, when it can be found.
    private static func line(for error: DecodingError, in node: Node) -> Int? {
        let path: [CodingKey]
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            path = context.codingPath
        case .keyNotFound(_, let context):
            path = context.codingPath
        @unknown default:
            return nil
        }
        var current = node
        var line = node.mark?.line
        for key in path {
            if let index = key.intValue, let sequence = current.sequence, index < sequence.count {
                current = sequence[index]
            } else if let value = current.mapping?[Node(key.stringValue)] {
                current = value
            } else {
                break
            }
            line = current.mark?.line ?? line
        }
        return line
    }

    private static func describe(_ error: DecodingError) -> String {
        func name(_ path: [CodingKey]) -> String { path.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".") }
        switch error {
        case .typeMismatch(let type, let context):
            return "'\(name(context.codingPath))' must be \(typeName(type))"
        case .valueNotFound(let type, let context):
            return "'\(name(context.codingPath))' must be \(typeName(type))"
        case .keyNotFound(let key, let context):
            return "missing '\(name(context.codingPath + [key]))'"
        case .dataCorrupted(let context):
            let field = name(context.codingPath)
            return field.isEmpty ? context.debugDescription : "'\(field)': \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type, is Int64.Type: "a whole number"
        case is Double.Type: "a number"
        case is Bool.Type: "true or false"
        default: "a \(type)".lowercased()
        }
    }
}
