import LuaRuntime

/// What `moonhook check` finds in a handler's text beyond what compiling finds: globals that are
/// read but never assigned in the file and that the sandbox does not have (`conifg.url` for
/// `config.url`), and members of the sandbox's tables that do not exist (`kv.incrby`). Each comes
/// with the closest known name. A scan of tokens, not of scopes: a name declared anywhere in the
/// file (a local, a parameter, a loop variable, a global assignment) counts as known everywhere in
/// it, so it misses some mistakes and never reports a name the file declares. Globals reached
/// dynamically (`_ENV[name]`) are out of its reach.
struct HandlerLint {
    let names: SandboxNames

    /// One finding, as `path:line: message`.
    struct Finding: Sendable, CustomStringConvertible {
        var path: String
        var line: Int
        var message: String
        var description: String { "\(path):\(line): \(message)" }
    }

    static let keywords: Set<String> = [
        "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in", "local", "nil", "not", "or",
        "repeat", "return", "then", "true", "until", "while",
    ]

    /// Findings for the Lua text `source` of the file at `path`; `extraGlobals` are names its
    /// environment has besides the sandbox's (`expect` in a test file).
    func findings(path: String, source: [UInt8], extraGlobals: Set<String> = []) -> [Finding] {
        let tokens = LuaTokens(source).all
        var declared = Set<String>()
        // Pass 1: every name the file declares.
        var index = 0
        func text(_ i: Int) -> String? { i >= 0 && i < tokens.count ? tokens[i].text : nil }
        func isName(_ i: Int) -> Bool { i >= 0 && i < tokens.count && tokens[i].kind == .name }
        while index < tokens.count {
            let token = tokens[index]
            switch token.text {
            case "local", "for":
                var i = index + 1
                if text(i) == "function" { i += 1 }
                while isName(i) {
                    declared.insert(tokens[i].text)
                    i += 1
                    if text(i) == "<" { i += 3 }  // <const>, <close>
                    guard text(i) == "," else { break }
                    i += 1
                }
            case "function":
                var i = index + 1
                var method = false
                while isName(i) || text(i) == "." || text(i) == ":" {
                    if text(i) == ":" { method = true }
                    i += 1
                }
                if isName(index + 1), text(index + 2) == "(" { declared.insert(tokens[index + 1].text) }
                if method { declared.insert("self") }
                if text(i) == "(" {
                    i += 1
                    while isName(i) {
                        declared.insert(tokens[i].text)
                        i += 2
                    }
                }
            default:
                // `a = 1`, `a, b = 1, 2` at the start of a statement (not after a dot, not a table key).
                if token.kind == .name, !Self.keywords.contains(token.text), text(index - 1) != ".", text(index - 1) != ":", !token.isTableKey {
                    var i = index
                    var list: [String] = []
                    while isName(i) {
                        list.append(tokens[i].text)
                        guard text(i + 1) == "," else { break }
                        i += 2
                    }
                    if text(i + 1) == "=" { declared.formUnion(list) }
                }
            }
            index += 1
        }
        // Pass 2: names read that nothing declares, and members of sandbox tables that do not exist.
        var findings: [Finding] = []
        var reported = Set<String>()
        let known = names.globals.union(extraGlobals).union(declared)
        for (i, token) in tokens.enumerated() where token.kind == .name && !Self.keywords.contains(token.text) {
            let before = text(i - 1)
            let attribute = before == "<" && text(i + 1) == ">"  // local x <const>
            if before == "." || before == ":" || before == "::" || before == "goto" || token.isTableKey || attribute { continue }
            if !known.contains(token.text) {
                if reported.insert(token.text).inserted {
                    let hint = Suggestion.phrase(token.text, among: names.globals.union(extraGlobals).union(declared))
                    findings.append(Finding(path: path, line: token.line, message: "unknown global '\(token.text)'\(hint)"))
                }
                continue
            }
            // A sandbox table the file does not redefine, read with `.name` or `:name`.
            guard !declared.contains(token.text), let members = names.members[token.text], text(i + 1) == "." || text(i + 1) == ":", isName(i + 2) else { continue }
            let member = tokens[i + 2].text
            // `kv.x = ...` adds to the handler's own copy of the table: not a mistake.
            if members.contains(member) || text(i + 3) == "=" { continue }
            let full = "\(token.text).\(member)"
            if reported.insert(full).inserted {
                let hint = Suggestion.closest(to: member, among: members).map { " (did you mean '\(token.text).\($0)'?)" } ?? ""
                findings.append(Finding(path: path, line: tokens[i + 2].line, message: "unknown member '\(full)'\(hint)"))
            }
        }
        return findings
    }
}

/// The tokens of Lua text that matter to `HandlerLint`: names (keywords included) and punctuation,
/// with their lines; strings, numbers and comments are skipped. Names used as keys of a table
/// constructor (`{ name = 1 }`) are marked.
struct LuaTokens {
    struct Token {
        enum Kind { case name, punctuation }
        var kind: Kind
        var text: String
        var line: Int
        var isTableKey = false
    }

    private(set) var all: [Token] = []

    init(_ source: [UInt8]) {
        var i = 0
        var line = 1
        var brackets: [UInt8] = []
        let count = source.count
        func at(_ offset: Int) -> UInt8 { i + offset < count ? source[i + offset] : 0 }
        /// Skips a long bracket `[==[ ... ]==]` starting at `i`, if there is one; whether there was.
        func skipLongBracket() -> Bool {
            guard at(0) == UInt8(ascii: "[") else { return false }
            var level = 0
            while at(1 + level) == UInt8(ascii: "=") { level += 1 }
            guard at(1 + level) == UInt8(ascii: "[") else { return false }
            i += 2 + level
            while i < count {
                if source[i] == 10 { line += 1 }
                if source[i] == UInt8(ascii: "]") {
                    var closing = 0
                    while at(1 + closing) == UInt8(ascii: "=") { closing += 1 }
                    if closing == level, at(1 + level) == UInt8(ascii: "]") {
                        i += 2 + level
                        return true
                    }
                }
                i += 1
            }
            return true
        }
        while i < count {
            let byte = source[i]
            switch byte {
            case 10:
                line += 1
                i += 1
            case UInt8(ascii: " "), 9, 13, 11, 12:
                i += 1
            case UInt8(ascii: "-") where at(1) == UInt8(ascii: "-"):
                i += 2
                if !skipLongBracket() {
                    while i < count, source[i] != 10 { i += 1 }
                }
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                i += 1
                while i < count, source[i] != byte {
                    if source[i] == UInt8(ascii: "\\") {
                        i += 1
                        // `\z` skips following white space, line breaks included.
                        if i < count, source[i] == 10 { line += 1 }
                    } else if source[i] == 10 {
                        break
                    }
                    i += 1
                }
                i += 1
            case UInt8(ascii: "["):
                if !skipLongBracket() {
                    brackets.append(byte)
                    all.append(Token(kind: .punctuation, text: "[", line: line))
                    i += 1
                }
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "_"):
                let start = i
                while i < count, Self.isNameByte(source[i]) { i += 1 }
                all.append(Token(kind: .name, text: String(decoding: source[start..<i], as: UTF8.self), line: line))
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                // Numbers, hex and exponents included (`0x1p-4`, `1e+5`).
                while i < count, Self.isNameByte(source[i]) || source[i] == UInt8(ascii: ".")
                    || ((source[i] == UInt8(ascii: "+") || source[i] == UInt8(ascii: "-")) && "eEpP".utf8.contains(source[i - 1]))
                {
                    i += 1
                }
            default:
                var text = String(UnicodeScalar(byte))
                for long in ["...", "..", "::", "==", "~=", "<=", ">=", "//", "<<", ">>"] where source[i...].starts(with: long.utf8) {
                    text = long
                    break
                }
                if text == "." && i + 1 < count && (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(source[i + 1]) {
                    i += 1
                    while i < count, Self.isNameByte(source[i]) { i += 1 }
                    continue
                }
                switch byte {
                case UInt8(ascii: "{"), UInt8(ascii: "("): brackets.append(byte)
                case UInt8(ascii: "}"), UInt8(ascii: ")"), UInt8(ascii: "]"): _ = brackets.popLast()
                default: break
                }
                // `{ name = value }`: the name is a key, directly inside braces, after `{`, `,` or `;`.
                if text == "=", brackets.last == UInt8(ascii: "{"), all.count >= 2, all[all.count - 1].kind == .name,
                    ["{", ",", ";"].contains(all[all.count - 2].text)
                {
                    all[all.count - 1].isTableKey = true
                }
                all.append(Token(kind: .punctuation, text: text, line: line))
                i += text.utf8.count
            }
        }
    }

    private static func isNameByte(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "_")
    }
}
