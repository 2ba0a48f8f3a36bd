import Foundation
import Logging
import LuaRuntime
import Moonhook
import MoonhookStore
import Testing

@Suite("kv in handlers")
struct KVAPITests {
    static func sqlite() async throws -> (any Store, URL) {
        let folder = FileManager.default.temporaryDirectory.appending(path: "moonhook-kv-\(UUID().uuidString)")
        return (try await openStore(folder.appending(path: "kv.sqlite").path, logger: Logger(label: "test")), folder)
    }

    @Test func valuesKeepTheirTypes() async throws {
        let harness = try HandlerHarness()
        defer { harness.shutdown() }
        let outcome = try await harness.run("""
            kv.set("i", 5) kv.set("f", 2.5) kv.set("b", false) kv.set("s", "text") kv.set("t", {list = {1, 2}, empty = json.array({}), name = "x"})
            local t = kv.get("t")
            return math.type(kv.get("i")), math.type(kv.get("f")), kv.get("b"), kv.get("s"), t.list[2], json.encode(t.empty), t.name, kv.get("missing")
            """)
        #expect(try outcome.result.get() == [.string("integer"), .string("float"), .boolean(false), .string("text"), .integer(2), .string("[]"), .string("x"), .nil])
    }

    @Test func sourcesCannotReadEachOthersKeys() async throws {
        let harness = try HandlerHarness()
        defer { harness.shutdown() }
        _ = try await harness.run("kv.set('token', 'alpha-secret') kv.set('shared', 1)", source: "alpha")
        let other = try await harness.run("return kv.get('token'), kv.incr('shared'), #kv.list('').items", source: "beta")
        #expect(try other.result.get() == [.nil, .integer(1), .integer(1)])
        let own = try await harness.run("return kv.get('token'), kv.get('shared')", source: "alpha")
        #expect(try own.result.get() == [.string("alpha-secret"), .integer(1)])
    }

    @Test func idempotencyAndCompareAndSwap() async throws {
        let harness = try HandlerHarness()
        defer { harness.shutdown() }
        let outcome = try await harness.run("""
            local first = kv.add("notified:1", true, {ttl = 60})
            local second = kv.add("notified:1", true, {ttl = 60})
            kv.set("state", "open")
            local swapped = kv.cas("state", "open", "closed")
            local again = kv.cas("state", "open", "closed")
            return first, second, swapped, again, kv.get("state"), kv.delete("state"), kv.delete("state"), kv.incr("n"), kv.incr("n", 10)
            """)
        #expect(try outcome.result.get() == [.boolean(true), .boolean(false), .boolean(true), .boolean(false), .string("closed"), .boolean(true), .boolean(false), .integer(1), .integer(11)])
    }

    @Test func listPagesWithACursor() async throws {
        let harness = try HandlerHarness()
        defer { harness.shutdown() }
        let outcome = try await harness.run("""
            for i = 1, 7 do kv.set(string.format("job:%d", i), i) end
            kv.set("other", 0)
            local seen, cursor, pages = {}, nil, 0
            repeat
              local page = kv.list("job:", {limit = 3, cursor = cursor})
              for _, item in ipairs(page.items) do seen[#seen + 1] = item.key .. "=" .. item.value end
              cursor, pages = page.cursor, pages + 1
            until cursor == nil
            return table.concat(seen, ","), pages
            """)
        #expect(try outcome.result.get() == [.string("job:1=1,job:2=2,job:3=3,job:4=4,job:5=5,job:6=6,job:7=7"), .integer(3)])
    }

    @Test func ttlExpires() async throws {
        let harness = try HandlerHarness()
        defer { harness.shutdown() }
        let outcome = try await harness.run("kv.set('k', 1, {ttl = 1.5}) local before = kv.get('k') time.sleep(1700) return before, kv.get('k')")
        let values = try outcome.result.get()
        #expect(values == [.integer(1), .nil], "\(values)")
    }

    @Test(arguments: [
        ("kv.set(string.rep('k', 600), 1)", "kv.set: key longer than 512 bytes"),
        ("kv.set('k', string.rep('v', 300000))", "kv.set: value of 300002 bytes exceeds the limit of 262144 bytes"),
        ("kv.set('k', nil)", "kv.set: value #2 is nil (use kv.delete to remove a key)"),
        ("kv.set('k', 'x') kv.incr('k')", "kv.incr: the value at 'k' is not an integer"),
        ("kv.set('k', 1, {ttl = -1})", "kv.set: ttl must be a positive number of seconds"),
        ("kv.set('', 1)", "kv.set: the key is empty"),
        ("kv.set('k', function() end)", "cannot encode a function value"),
        ("kv.list('', {limit = 5000})", "kv.list: limit must be a whole number from 1 to 1000"),
    ])
    func mistakesAreOneLineErrors(_ code: String, _ message: String) async throws {
        let harness = try HandlerHarness()
        defer { harness.shutdown() }
        let outcome = try await harness.run(code)
        let error = try #require(outcome.error)
        #expect(error.message.hasPrefix("src/h.lua:2: "), "\(error.message)")
        #expect(error.message.contains(message), "\(error.message)")
    }

    @Test func notAvailableWhileAFileLoads() async throws {
        let harness = try HandlerHarness()
        defer { harness.shutdown() }
        do {
            _ = try await harness.worker.load(path: "src/top.lua", source: Array("kv.set('k', 1) return function() end".utf8))
            Issue.record("kv worked at load time")
        } catch {
            #expect(error.message == "src/top.lua:1: kv.set is available inside a handler call, not while its file loads")
        }
    }

    /// Many invocations at once on two workers, against one SQLite file: no increment is lost.
    @Test func concurrentIncrementsOnSQLite() async throws {
        let (store, folder) = try await Self.sqlite()
        defer { try? FileManager.default.removeItem(at: folder) }
        let pool = try WorkerPool(count: 2, services: TestServices.make(LogRecords().logger(), store: store))
        defer { pool.shutdown() }
        let catalogFolder = folder.appending(path: "handlers/counter")
        try FileManager.default.createDirectory(at: catalogFolder, withIntermediateDirectories: true)
        try "scheme: none\n".write(to: catalogFolder.appending(path: "source.yaml"), atomically: true, encoding: .utf8)
        try "return function() for i = 1, 5 do kv.incr('hits') end end".write(to: catalogFolder.appending(path: "hit.lua"), atomically: true, encoding: .utf8)
        let catalog = await SourceCatalog.load(folder: folder.appending(path: "handlers").path, pool: pool, environment: [:])
        let handler = try #require(catalog.sources["counter"]?.handlers.first)
        let failures = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<200 {
                group.addTask {
                    let context = HandlerContext(source: "counter", logger: LogRecords().logger())
                    return await pool.invoke(handler, arguments: [], info: LuaInvocationInfo(handlerPath: handler.path, context: context)).error != nil
                }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(failures == 0)
        #expect(try await store.get("counter", "hits") == Array("1000".utf8))
        await store.close()
    }
}

@Suite("crypto, encodings and secrets in handlers")
struct CryptoAPITests {
    @Test func publishedVectors() async throws {
        let harness = try HandlerHarness()
        defer { harness.shutdown() }
        let outcome = try await harness.run("""
            return hex.encode(crypto.sha256("abc")),
                   hex.encode(crypto.sha1("abc")),
                   hex.encode(crypto.hmac("sha256", "key", "The quick brown fox jumps over the lazy dog")),
                   base64.encode("hello"), base64.decode("aGVsbG8="), base64.decode("-_8"), hex.decode("00ff"),
                   crypto.equals("a", "a"), crypto.equals("a", "b"), #crypto.random_bytes(16), crypto.random_bytes(8) ~= crypto.random_bytes(8)
            """)
        #expect(try outcome.result.get() == [
            .string("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            .string("a9993e364706816aba3e25717850c26c9cd0d89d"),
            .string("f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"),
            .string("aGVsbG8="), .string("hello"), .string([0xFB, 0xFF]), .string([0x00, 0xFF]),
            .boolean(true), .boolean(false), .integer(16), .boolean(true),
        ])
    }

    @Test func uuidsAreVersion4() async throws {
        let harness = try HandlerHarness()
        defer { harness.shutdown() }
        let outcome = try await harness.run("local a, b = uuid(), uuid() return a, a ~= b")
        let values = try outcome.result.get()
        let text = try #require(values.first?.text)
        #expect(text.range(of: "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", options: .regularExpression) != nil)
        #expect(values.last == .boolean(true))
    }

    @Test(arguments: [
        ("crypto.hmac('md5', 'k', 'd')", "crypto.hmac: algorithm must be sha1, sha256 or sha512, got 'md5'"),
        ("crypto.random_bytes(5000)", "crypto.random_bytes: count must be between 0 and 4096"),
        ("hex.decode('xyz')", "hex.decode: not a hex string"),
        ("base64.decode('***')", "base64.decode: not base64"),
    ])
    func mistakes(_ code: String, _ message: String) async throws {
        let harness = try HandlerHarness()
        defer { harness.shutdown() }
        let outcome = try await harness.run(code)
        #expect(outcome.error?.message == "src/h.lua:2: \(message)")
    }

    @Test func secretsAreReadOnlyAndNeverLogged() async throws {
        let harness = try HandlerHarness()
        defer { harness.shutdown() }
        let outcome = try await harness.run("""
            log.info("calling " .. secrets.CHAT_URL, {url = secrets.CHAT_URL})
            local names = {}
            for name in pairs(secrets) do names[#names + 1] = name end
            local ok, err = pcall(function() secrets.CHAT_URL = "x" end)
            local _, backing = pairs(secrets)
            return secrets.CHAT_URL, table.concat(names, ","), ok, err, getmetatable(secrets), rawget(secrets, "CHAT_URL"), backing
            """, secrets: ["CHAT_URL": "https://chat.example/hook/T0K3N"])
        #expect(try outcome.result.get() == [
            .string("https://chat.example/hook/T0K3N"), .string("CHAT_URL"), .boolean(false), .string("src/h.lua:5: secrets is read-only"), .boolean(false), .nil, .nil,
        ])
        let line = try #require(harness.records.all.first { $0.message.hasPrefix("calling") })
        #expect(line.message == "calling [redacted]")
        #expect(line.metadata["url"] == "[redacted]")
    }
}
