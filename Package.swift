// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "mcp-supervisor",
    // Linux only (pidfds, SO_PEERCRED, posix_spawn file actions, /proc): no Apple platform is claimed.
    products: [
        .executable(name: "mcp-plugin-host", targets: ["mcp-plugin-host"]),
        .executable(name: "mcp-supervisor", targets: ["mcp-supervisor"]),
        .executable(name: "mcpctl", targets: ["mcpctl"]),
        .executable(name: "mcp-gateway", targets: ["mcp-gateway"]),
        .library(name: "MCPProtocol", targets: ["MCPProtocol"]),
        // The Swift SDK for plugin authors.
        .library(name: "MCPPluginKit", targets: ["MCPPluginKit"]),
        // The Swift reference plugin, a .so the host loads.
        .library(name: "SwiftReferencePlugin", type: .dynamic, targets: ["SwiftReferencePlugin"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // Observability (docs/metrics.md): the metrics API and its Prometheus registry and text rendering.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // TLS for a gateway reached from other hosts (docs/gateway.md "TLS"): only mcp-gateway links it.
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        // The plugin ABI: one C header and nothing else.
        .systemLibrary(name: "PluginABI", path: "Sources/PluginABI"),
        // C shims the host needs and Swift cannot express (crash reporting, ELF checks, dlopen of an fd).
        .target(name: "CHostSupport", path: "Sources/CHostSupport"),
        // Plugin trust (docs/security.md): the sealed memfd copy, SHA-256 and Ed25519 with OpenSSL's libcrypto
        // (apt libssl-dev).
        .target(name: "CTrust", path: "Sources/CTrust", linkerSettings: [.linkedLibrary("crypto")]),
        // The child's box (docs/security.md): Landlock, seccomp (libseccomp, apt libseccomp-dev), capabilities.
        .target(name: "CBox", path: "Sources/CBox", linkerSettings: [.linkedLibrary("seccomp")]),
        // The lock every executable uses for shared state: Synchronization's Mutex, or a pthread one that
        // ThreadSanitizer can see in scripts/sanitize.sh's thread build (Sources/Locking/Locked.swift).
        .target(
            name: "Locking", dependencies: [.product(name: "NIOConcurrencyHelpers", package: "swift-nio")],
            path: "Sources/Locking"),
        // The MCP protocol engine: JSON, JSON-RPC, protocol revisions, sessions. No I/O.
        .target(name: "MCPProtocol", path: "Sources/MCPProtocol"),
        // The contracts between the processes (control channel, control socket, exit statuses, health levels,
        // log keys, line framing): one definition that the host, the supervisor and mcpctl all import. No I/O.
        .target(name: "Contracts", dependencies: ["MCPProtocol"], path: "Sources/Contracts"),
        // Our swift-log handler: the readable terminal line or one JSON object per line, for all three executables.
        .target(
            name: "StructuredLog",
            dependencies: ["Contracts", "MCPProtocol", .product(name: "Logging", package: "swift-log")],
            path: "Sources/StructuredLog"),
        // The plugin host: loads one plugin through the ABI and serves it over Streamable HTTP.
        .target(
            name: "PluginHost",
            dependencies: [
                "PluginABI", "CHostSupport", "CTrust", "CBox", "Locking", "MCPProtocol", "Contracts", "StructuredLog",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPCompression", package: "swift-nio-extras"),
            ],
            path: "Sources/PluginHost"
        ),
        // The command-line options both HTTP executables share (mcp-plugin-host, mcp-gateway).
        .target(
            name: "EndpointOptions",
            dependencies: [
                "PluginHost", "Contracts", "StructuredLog",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/EndpointOptions"),
        // The Swift SDK: declare tools, resources and prompts as Swift values; export with @c.
        .target(name: "MCPPluginKit", dependencies: ["PluginABI"], path: "Sources/MCPPluginKit"),
        .target(name: "SwiftReferencePlugin", dependencies: ["MCPPluginKit"], path: "Plugins/swift-reference"),
        .executableTarget(
            name: "mcp-plugin-host",
            dependencies: [
                "PluginHost", "EndpointOptions", "Locking", "MCPProtocol", "Contracts", "StructuredLog",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/mcp-plugin-host"
        ),
        // The gateway (docs/gateway.md): one MCP endpoint in front of every server, on the host's engine.
        .executableTarget(
            name: "mcp-gateway",
            dependencies: [
                "PluginHost", "EndpointOptions", "MCPProtocol", "Contracts", "StructuredLog",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/mcp-gateway"
        ),
        // The supervisor's pure logic: configuration, restart policy, port allocation, ordering. No I/O.
        .target(name: "SupervisorCore", dependencies: ["MCPProtocol", "Contracts"], path: "Sources/SupervisorCore"),
        // Fuzz targets for the parsers (docs/reliability.md): replays inputs in a normal build, fuzzes with libFuzzer
        // in scripts/fuzz.sh's instrumented one.
        .executableTarget(
            name: "mcp-fuzz",
            dependencies: ["MCPProtocol", "Contracts", "SupervisorCore", "PluginHost", "CHostSupport"],
            path: "Sources/mcp-fuzz"),
        // The supervisor daemon: spawning and reaping children, sockets, timers, signals.
        .target(name: "CSupervisorSupport", path: "Sources/CSupervisorSupport"),
        // libsystemd (apt libsystemd-dev): sd_notify, the fd store, socket activation, the journal.
        .systemLibrary(
            name: "CSystemd", path: "Sources/CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        .target(
            name: "Supervisor",
            dependencies: [
                "SupervisorCore", "CSupervisorSupport", "CSystemd", "Locking", "MCPProtocol", "Contracts",
                "StructuredLog",
                .product(name: "Logging", package: "swift-log"),
                // The metrics listener (Metrics/): served with SwiftNIO, rendered with swift-prometheus.
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Sources/Supervisor"),
        .executableTarget(
            name: "mcp-supervisor",
            dependencies: [
                "Supervisor", "SupervisorCore", "Contracts", "StructuredLog",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/mcp-supervisor"),
        // The admin client of the supervisor's control socket.
        .executableTarget(
            name: "mcpctl",
            dependencies: [
                "MCPProtocol", "Contracts", "StructuredLog", .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/mcpctl"),
        .testTarget(
            name: "SupervisorCoreTests", dependencies: ["SupervisorCore", "MCPProtocol", "Contracts"],
            path: "Tests/SupervisorCoreTests"),
        .testTarget(
            name: "ContractsTests",
            dependencies: [
                "Contracts", "StructuredLog", "MCPProtocol", .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/ContractsTests"),
        .testTarget(name: "MCPProtocolTests", dependencies: ["MCPProtocol"], path: "Tests/MCPProtocolTests"),
        // The dispatcher driven without a socket, against a fake plugin; the ABI struct reader.
        .testTarget(
            name: "PluginHostTests",
            dependencies: [
                "PluginHost", "MCPProtocol", "PluginABI", .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            path: "Tests/PluginHostTests"),
        // The supervisor daemon's pure pieces: the status page's history and renderer.
        .testTarget(
            name: "SupervisorTests", dependencies: ["Supervisor", "Contracts", "MCPProtocol"],
            path: "Tests/SupervisorTests"),
    ],
    swiftLanguageModes: [.v6]
)
