import LuaRuntime

/// Which host functions a handler file's top level may call, in one place.
///
/// A file's top level runs in every worker on every reload, outside any delivery: what it does
/// there it does once per worker per edit, with no event, no deadline of a call and nobody to
/// retry. So only pure functions and logging run at load time (a lookup table built with
/// `json.decode`, a constant digest, a log line saying the handler loaded); everything that does
/// I/O or waits (`http`, `kv`, `time.sleep`) raises "… is available inside a handler call, not
/// while its file loads". A function missing from this list is refused at load time: a new host
/// function is safe until someone decides otherwise here. `json` (built into the runtime) always
/// works.
enum LoadTimeAccess {
    static let allowed: Set<String> = [
        "log.debug", "log.info", "log.warn", "log.error",
        "time.now", "time.iso",
        "crypto.hmac", "crypto.sha1", "crypto.sha256", "crypto.sha512", "crypto.equals", "crypto.random_bytes",
        "hex.encode", "hex.decode", "base64.encode", "base64.decode",
        "uuid",
    ]

    /// `libraries` with every function not in `allowed` restricted to handler calls.
    static func apply(to libraries: [LuaLibrary]) -> [LuaLibrary] {
        libraries.map { library in
            var library = library
            library.setAvailability { allowed.contains($0) ? .anywhere : .insideCall }
            return library
        }
    }
}
