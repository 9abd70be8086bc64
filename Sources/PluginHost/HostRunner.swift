import Contracts
import Logging
import NIOCore
import NIOPosix
import StructuredLog

#if canImport(Glibc)
    import Glibc
#endif

/// What `mcp-plugin-host` and `mcp-gateway` share around their engine: where they listen, their loggers, and
/// serving until the supervisor's stop or a signal, then the drain.
public enum HostRunner {
    /// Serves `engine` until a termination signal or the supervisor's stop, then drains and exits.
    public static func serve(
        _ engine: MCPEngine, name: String, version: String, from path: String, target: ListenTarget, threads: Int,
        drainTimeout: Double, signals: TerminationSignals, log: HostLog, group: MultiThreadedEventLoopGroup? = nil,
        tls: (@Sendable () throws -> ChannelHandler)? = nil, fail: (HostFailure) -> Int32
    ) -> Never {
        let server = HostServer(engine: engine, threads: threads, group: group, tls: tls)
        let listener: Channel
        let port: Int
        do { (listener, port) = try server.start(target) } catch { Glibc.exit(fail(error)) }

        var control: ControlChannel?
        if let raw = getenv(ChildEnvironment.controlFD) {
            guard let fd = Int32(String(cString: raw)), fd >= 0 else {
                Glibc.exit(
                    fail(HostFailure(.listenFailed, "\(ChildEnvironment.controlFD) is not a file descriptor number")))
            }
            do {
                control = try ControlChannel.connect(fd: fd, group: server.group, engine: engine) { why in
                    log.stderr.notice("\(why): draining", metadata: [LogKey.event: .string(LogEventName.hostDrain)])
                    signals.trigger()
                }
            } catch { Glibc.exit(fail(error)) }
            control?.send(.ready(pid: getpid(), port: port, protocolVersion: ControlChannelProtocol.version))
        }
        var shownHost = "127.0.0.1"
        if case .address(let h, _) = target, h != "0.0.0.0", h != "::" { shownHost = h.contains(":") ? "[\(h)]" : h }
        log.stdout.info(
            "serving \(name) \(version) from \(path) at \(tls == nil ? "http" : "https")://\(shownHost):\(port)/mcp",
            metadata: [
                LogKey.event: .string(LogEventName.hostServing), "port": LogValue.of(port),
                "name": .string(name), "version": .string(version),
            ])
        let status = server.runUntilSignalled(
            signals, listener: listener, drainTimeout: .nanoseconds(Int64(drainTimeout * 1e9))
        ) { line in log.stderr.notice("\(line)", metadata: [LogKey.event: .string(LogEventName.hostDrain)]) }
        _ = control  // closed with the event loops during the drain
        // The process ends here, without tearing down the server's objects one by one: they outlive the event
        // loops, and ServerQuiescingHelper's deinit completes a promise on a loop that has shut down (NIO then
        // prints "Cannot schedule tasks on an EventLoop that has already shut down", a future crash).
        Glibc.exit(status)
    }

    public static func listenTarget(_ listen: String?) throws(HostFailure) -> ListenTarget {
        if let listen {
            guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]),
                (0...65535).contains(port)
            else { throw HostFailure(.usage, "--listen must be HOST:PORT, got '\(listen)'") }
            var host = String(listen[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            return .address(host: host.isEmpty ? "127.0.0.1" : host, port: port)
        }
        let variable = ChildEnvironment.listenFD
        guard let raw = getenv(variable) else {
            throw HostFailure(.usage, "no socket to serve: pass --listen HOST:PORT or set \(variable)")
        }
        guard let fd = Int32(String(cString: raw)), fd >= 0 else {
            throw HostFailure(.listenFailed, "\(variable) is not a file descriptor number")
        }
        var type: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0, type == Int32(SOCK_STREAM.rawValue) else {
            throw HostFailure(.listenFailed, "\(variable)=\(fd) is not a stream socket")
        }
        var listening: Int32 = 0
        len = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0, listening == 1 else {
            throw HostFailure(.listenFailed, "\(variable)=\(fd) is not a listening socket")
        }
        return .inheritedFD(fd)
    }

}

/// The host's loggers: stderr for everything but the one "serving" line, which goes to stdout (docs/plugin-host.md).
/// Under a supervisor every line carries the server, replica and pid the supervisor gave, out of the text line
/// (the supervisor prefixes it already) and in the JSON.
public struct HostLog: Sendable {
    public let stderr: Logger
    public let stdout: Logger

    public init(format: LogFormat, plugin: String, source: String = LogSource.host) {
        var base: Logger.Metadata = ["plugin": .string(plugin), LogKey.pid: LogValue.hidden(getpid())]
        if let name = getenv(ChildEnvironment.serverName) {
            base[LogKey.server] = LogValue.hidden(String(cString: name))
        }
        if let raw = getenv(ChildEnvironment.replica), let index = Int(String(cString: raw)) {
            base[LogKey.replica] = LogValue.hidden(index)
        }
        var err = LineLogHandler.logger(source: source, format: format, write: LineLogHandler.stderr)
        var out = LineLogHandler.logger(source: source, format: format, write: LineLogHandler.stdout)
        for (k, v) in base {
            err[metadataKey: k] = v
            out[metadataKey: k] = v
        }
        stderr = err
        stdout = out
    }
}
