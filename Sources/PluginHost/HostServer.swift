import Dispatch
import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

/// Where the host listens.
public enum ListenTarget: Sendable {
    /// `--listen HOST:PORT`: the host binds it (port 0 picks a free port).
    case address(host: String, port: Int)
    /// An inherited listening socket (from the supervisor, fd 3).
    case inheritedFD(Int32)
}

/// Runs the HTTP server for an engine until SIGTERM/SIGINT, then drains.
public final class HostServer: Sendable {
    let engine: MCPEngine
    public let group: MultiThreadedEventLoopGroup
    let connections = ConnectionSet()

    public init(engine: MCPEngine, threads: Int) {
        self.engine = engine
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
    }

    /// Binds (or adopts) the listening socket. Returns the channel and the bound port.
    public func start(_ target: ListenTarget) throws(HostFailure) -> (Channel, Int) {
        let engine = self.engine
        let connections = self.connections
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
                    .flatMapThrowing {
                        // A connection that sends nothing for 2 minutes between requests is closed, so idle or
                        // stalled clients cannot pin descriptors forever.
                        try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: .seconds(120)))
                        try channel.pipeline.syncOperations.addHandler(
                            HTTPConnectionHandler(engine: engine, connections: connections))
                    }
            }
        do {
            let channel: Channel
            switch target {
            case .address(let host, let port):
                channel = try bootstrap.bind(host: host, port: port).wait()
            case .inheritedFD(let fd):
                channel = try bootstrap.withBoundSocket(fd).wait()
            }
            return (channel, channel.localAddress?.port ?? 0)
        } catch {
            throw HostFailure(.listenFailed, "cannot listen: \(error)")
        }
    }

    /// Blocks until a termination signal, then drains: no new requests, in-flight calls get `drainTimeout`.
    public func runUntilSignalled(
        _ signals: TerminationSignals, listener: Channel, drainTimeout: TimeAmount,
        log: @escaping @Sendable (String) -> Void
    ) -> Int32 {
        signals.wait()
        log("draining: no new requests, \(engine.callsInFlight) call(s) in flight")
        engine.beginDrain()
        try? listener.close().wait()
        connections.beginDrain()
        let left = engine.waitForCalls(until: NIODeadline.now() + drainTimeout)
        connections.closeAll()
        if left == 0 { engine.plugin.destroy() }
        try? group.syncShutdownGracefully()
        if left > 0 {
            log("drain deadline passed with \(left) call(s) still running; exiting without destroy")
        }
        return 0
    }
}

/// SIGTERM and SIGINT turned into an event, installed before anything else runs, so a signal that arrives while
/// the plugin loads or just after the serving line is never lost and never kills the process half-way.
public final class TerminationSignals: @unchecked Sendable {
    // @unchecked: the sources are created once in init and only read afterwards.
    private let done = DispatchSemaphore(value: 0)
    private var sources: [DispatchSourceSignal] = []

    public init() {
        signal(SIGPIPE, SIG_IGN)
        let queue = DispatchQueue(label: "mcp-plugin-host.signals")
        for sig in [SIGTERM, SIGINT] {
            // SIG_IGN first: libdispatch installs its own handler when the source is created, and a later
            // signal() would replace it. Both happen before the plugin loads or the serving line is printed.
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            s.setEventHandler { [done] in done.signal() }
            s.resume()
            sources.append(s)
        }
    }

    /// True if a termination signal has already arrived (does not consume it).
    public var received: Bool {
        if done.wait(timeout: .now()) == .success {
            done.signal()
            return true
        }
        return false
    }

    public func wait() { done.wait() }

    /// Starts the same shutdown a signal would (the supervisor's stop message, or its channel closing).
    public func trigger() { done.signal() }
}
