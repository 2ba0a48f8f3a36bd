import LuaRuntime
import Testing

@Suite("JSON between bytes and Lua")
struct JSONTests {
    /// Documents that must come back byte for byte from `json.encode(json.decode(text))`.
    @Test(arguments: [
        "[]", "{}", "[[],{}]", "{\"a\":[],\"b\":{}}",
        "9223372036854775807", "-9223372036854775808", "9007199254740993",
        "1.5", "-0.25", "1e+300", "0", "-1",
        "\"\"", "\"caf\u{e9} \u{1F600}\"", "\"line\\nbreak \\\"quoted\\\" back\\\\slash \\u0001\"",
        "[1,2,3]", "[null,1,null]", "{\"a\":null}", "true", "false", "null",
        "{\"a\":1,\"b\":[1,2,{\"c\":\"d\"}]}",
    ])
    func roundTrip(_ text: String) async throws {
        let worker = try Harness.worker()
        defer { worker.shutdown() }
        let outcome = await Harness.call("return json.encode(json.decode(event))", arguments: [.string(text)], on: worker)
        #expect(try outcome.result.get() == [.string(text)])
    }

    @Test func integersStayIntegers() async throws {
        let worker = try Harness.worker()
        defer { worker.shutdown() }
        let outcome = await Harness.call(
            "local v = json.decode(event) return math.type(v.a), v.a, math.type(v.b), v.b, math.type(v.c), v.c == 9223372036854775807",
            arguments: [.string("{\"a\":123,\"b\":123.0,\"c\":9223372036854775807}")], on: worker)
        #expect(try outcome.result.get() == [.string("integer"), .integer(123), .string("float"), .number(123), .string("integer"), .boolean(true)])
    }

    @Test func integersBeyond64BitsBecomeFloats() async throws {
        let worker = try Harness.worker()
        defer { worker.shutdown() }
        let outcome = await Harness.call("local v = json.decode(event) return math.type(v)", arguments: [.string("18446744073709551616")], on: worker)
        #expect(try outcome.result.get() == [.string("float")])
    }

    @Test func nullIsDistinctAndKeepsKeys() async throws {
        let worker = try Harness.worker()
        defer { worker.shutdown() }
        let outcome = await Harness.call(
            "local v = json.decode(event) return v.a == json.null, v.b == nil, #v.list, v.list[2] == json.null",
            arguments: [.string("{\"a\":null,\"list\":[1,null,3]}")], on: worker)
        #expect(try outcome.result.get() == [.boolean(true), .boolean(true), .integer(3), .boolean(true)])
    }

    @Test func objectKeysAreSortedAndArraysMarked() async throws {
        let worker = try Harness.worker()
        defer { worker.shutdown() }
        let outcome = await Harness.call(
            "return json.encode({b = 1, a = {1, 2}, c = json.array({}), [10] = 'x'}), getmetatable(json.decode('[]'))",
            on: worker)
        #expect(try outcome.result.get() == [.string("{\"10\":\"x\",\"a\":[1,2],\"b\":1,\"c\":[]}"), .string("json.array")])
    }

    @Test(arguments: [
        ("{", "unexpected end of input"),
        ("[1,]", "unexpected character at byte 3"),
        ("{\"a\" 1}", "expected ':'"),
        ("01", "leading zero"),
        ("NaN", "unexpected character at byte 0"),
        ("\"\u{1}\"", "control character"),
        ("[1] 2", "unexpected data after the JSON value"),
        ("\"\\x\"", "invalid escape"),
        ("tru", "invalid literal"),
    ])
    func decodeErrorsAreOneLine(_ input: String, _ expected: String) async throws {
        let worker = try Harness.worker()
        defer { worker.shutdown() }
        let outcome = await Harness.call("return json.decode(event)", arguments: [.string(input)], on: worker)
        let message = try #require(outcome.error?.message)
        #expect(message.hasPrefix("test/case.lua:2: json.decode: invalid JSON: "), "\(message)")
        #expect(message.contains(expected), "\(message)")
    }

    @Test func invalidUTF8IsRefusedBothWays() async throws {
        let worker = try Harness.worker()
        defer { worker.shutdown() }
        let decode = await Harness.call("return json.decode(event)", arguments: [.string([0x22, 0xFF, 0xFE, 0x22])], on: worker)
        #expect(decode.error?.message.contains("string is not valid UTF-8") == true)
        let encode = await Harness.call("return json.encode({s = '\\xff'})", on: worker)
        #expect(encode.error?.message.contains("not valid UTF-8") == true)
        let overlong = await Harness.call("return json.decode(event)", arguments: [.string([0x22, 0xC0, 0xAF, 0x22])], on: worker)
        #expect(overlong.error?.message.contains("not valid UTF-8") == true)
    }

    @Test func loneSurrogatesBecomeReplacementCharacters() async throws {
        let worker = try Harness.worker()
        defer { worker.shutdown() }
        let outcome = await Harness.call("return json.decode(event)", arguments: [.string("\"a\\ud800b\\ud83d\\ude00\"")], on: worker)
        #expect(try outcome.result.get() == [.string("a\u{FFFD}b\u{1F600}")])
    }

    @Test func nanAndInfinityCannotBeEncoded() async throws {
        let worker = try Harness.worker()
        defer { worker.shutdown() }
        for expression in ["0/0", "math.huge", "-math.huge"] {
            let outcome = await Harness.call("return json.encode({x = \(expression)})", on: worker)
            #expect(outcome.error?.message.contains("cannot encode") == true, "\(expression)")
        }
    }

    @Test func depthIsCapped() async throws {
        let worker = try Harness.worker()
        defer { worker.shutdown() }
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        let refused = await Harness.call("return json.decode(event)", arguments: [.string(deep)], on: worker)
        #expect(refused.error?.message.contains("nesting deeper than 64 levels") == true)
        let accepted = await Harness.call("return json.encode(json.decode(event))", arguments: [.string(ok)], on: worker)
        #expect(try accepted.result.get() == [.string(ok)])
    }

    @Test func hostPushesJSONArguments() async throws {
        let worker = try Harness.worker()
        defer { worker.shutdown() }
        let outcome = await Harness.call("return event.payload.status, event.payload.n + 1", arguments: [.json(Array("{\"payload\":{\"status\":\"finished\",\"n\":41}}".utf8))], on: worker)
        #expect(try outcome.result.get() == [.string("finished"), .integer(42)])
        let broken = await Harness.call("return 1", arguments: [.json(Array("{broken".utf8))], on: worker)
        #expect(broken.error?.message.contains("argument 1: invalid JSON") == true)
    }
}
