import ArgumentParser
import Contracts
import NIOCore
import PluginHost
import StructuredLog

#if canImport(Glibc)
    import Glibc
#endif

/// The command-line options `mcp-plugin-host` and `mcp-gateway` share: where they listen, what their HTTP endpoint
/// accepts, how long calls and the drain may take, their threads and their log format (docs/plugin-host.md,
/// docs/gateway.md). One definition, so the two commands spell and check them alike.
public struct EndpointOptions: ParsableArguments {
    @Option(
        help:
            "Listen on HOST:PORT (standalone use; port 0 picks a free one). Without it, MCP_LISTEN_FD names an inherited socket."
    )
    public var listen: String?

    @Option(help: "Also accept this Host header name (loopback names always pass).")
    public var allowedHost: [String] = []

    @Option(help: "Also accept this Origin (loopback origins always pass).")
    public var allowedOrigin: [String] = []

    @Option(help: "Largest request body in bytes.")
    public var maxBodyBytes: Int = 4 << 20

    @Option(help: "Per-call deadline in seconds.")
    public var callTimeout: Double = 60

    @Option(help: "Seconds in-flight calls get to finish after SIGTERM.")
    public var drainTimeout: Double = 10

    @Option(help: "Event loop threads.")
    public var threads: Int = min(System.coreCount, 4)

    @Option(
        help:
            "Log lines as text or json (one JSON object per line). Default: $\(ChildEnvironment.logFormat), else text.")
    public var logFormat: String?

    public init() {}

    public func validate() throws {
        guard maxBodyBytes > 0, callTimeout > 0, drainTimeout >= 0, threads > 0 else {
            throw ValidationError(
                "--max-body-bytes, --call-timeout and --threads must be positive, --drain-timeout not negative")
        }
        if let logFormat, LogFormat(rawValue: logFormat) == nil {
            throw ValidationError("--log-format must be text or json, not '\(logFormat)'")
        }
    }

    /// --log-format, else what the supervisor asked for in the environment, else text.
    public var format: LogFormat {
        if let logFormat, let f = LogFormat(rawValue: logFormat) { return f }
        if let env = getenv(ChildEnvironment.logFormat), let f = LogFormat(rawValue: String(cString: env)) { return f }
        return .text
    }

    /// The endpoint's settings into a host configuration.
    public func apply(to hc: inout HostConfig) {
        hc.maxBodyBytes = maxBodyBytes
        hc.callTimeout = .nanoseconds(Int64(callTimeout * 1e9))
        hc.allowedHosts = allowedHost.map { $0.lowercased() }
        hc.allowedOrigins = allowedOrigin
    }

    public func listenTarget() throws(HostFailure) -> ListenTarget { try HostRunner.listenTarget(listen) }
}
