// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "moonhook",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "moonhook", targets: ["moonhook"]),
        .library(name: "LuaRuntime", targets: ["LuaRuntime"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
        // NIOHTTPTypes: the HTTP part types Hummingbird's channel speaks, for the request-deadline handler.
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.20.0"),
        .package(url: "https://github.com/vapor/sqlite-nio.git", from: "1.10.0"),
        // The shared store: several servers on one PostgreSQL database.
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.0"),
        // TLS settings for PostgreSQL connections (sslmode).
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.25.0"),
        // Counters, gauges and histograms (the API), exposed in the Prometheus text format on /metrics.
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.1.0"),
        // The console's server-rendered pages, escaped for HTML by default.
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.0.0"),
    ],
    targets: [
        // Debian's liblua5.4 plus the C that Swift cannot be: macro wrappers, the allocator, the count hook,
        // the trampolines that raise Lua errors after Swift has returned, and a step-limited pattern matcher.
        .target(
            name: "CLua",
            linkerSettings: [.linkedLibrary("lua5.4")]
        ),
        // OpenSSL's libcrypto (libssl-dev): HMAC, SHA-2, constant-time compare.
        .target(
            name: "COpenSSL",
            linkerSettings: [.linkedLibrary("crypto")]
        ),
        .target(
            name: "WebhookVerification",
            dependencies: ["COpenSSL"]
        ),
        // Durable state: the inbox and key-value storage, on SQLite (embedded default) or PostgreSQL (shared).
        .target(
            name: "MoonhookStore",
            dependencies: [
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .target(
            name: "LuaRuntime",
            dependencies: [
                "CLua",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "Moonhook",
            dependencies: [
                "LuaRuntime",
                "WebhookVerification",
                "MoonhookStore",
                "COpenSSL",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
        .executableTarget(
            name: "moonhook",
            dependencies: [
                "Moonhook",
                "MoonhookStore",
                "WebhookVerification",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        .executableTarget(
            name: "LuaRuntimeBenchmark",
            dependencies: ["LuaRuntime", "Moonhook", "MoonhookStore", "CLua", .product(name: "Logging", package: "swift-log"), .product(name: "AsyncHTTPClient", package: "async-http-client")],
            path: "bench/LuaRuntimeBenchmark"
        ),
        .executableTarget(
            name: "HostAPIBenchmark",
            dependencies: [
                "Moonhook", "MoonhookStore", "LuaRuntime",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "bench/HostAPIBenchmark"
        ),
        .testTarget(name: "LuaRuntimeTests", dependencies: ["LuaRuntime"]),
        // Signs test requests with the senders' own libraries (scripts/sign.py).
        // and reaches the PostgreSQL cluster `make test` starts.
        .target(
            name: "MoonhookTestSupport",
            dependencies: [
                "MoonhookStore", .product(name: "PostgresNIO", package: "postgres-nio"), .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/TestSupport"
        ),
        .testTarget(name: "MoonhookStoreTests", dependencies: ["MoonhookStore", "MoonhookTestSupport"]),
        .testTarget(name: "WebhookVerificationTests", dependencies: ["WebhookVerification", "MoonhookTestSupport"]),
        .testTarget(
            name: "MoonhookTests",
            dependencies: [
                "Moonhook", "LuaRuntime", "WebhookVerification", "MoonhookStore", "MoonhookTestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
    ]
)
