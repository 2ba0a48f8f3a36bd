import LuaRuntime

extension LuaValue {
    /// A number's or a boolean's text, as `tostring` writes it.
    var scalarText: String? {
        switch self {
        case .integer(let number): String(number)
        case .number(let number): String(number)
        case .boolean(let flag): String(flag)
        default: nil
        }
    }
}
