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
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "moonhook",
            dependencies: [
                "Moonhook",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "LuaRuntimeBenchmark",
            dependencies: ["LuaRuntime", "Moonhook", "CLua", .product(name: "Logging", package: "swift-log")],
            path: "bench/LuaRuntimeBenchmark"
        ),
        .testTarget(name: "LuaRuntimeTests", dependencies: ["LuaRuntime"]),
        .testTarget(name: "WebhookVerificationTests", dependencies: ["WebhookVerification"]),
        .testTarget(name: "MoonhookTests", dependencies: ["Moonhook", "LuaRuntime"]),
    ]
)
