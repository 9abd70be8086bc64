import CHostSupport
import Dispatch
import NIOCore
import NIOExtras
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
    /// The drain of the connections: closes the listener, then each connection once it has no request in
    /// progress (NIOHTTP1's pipeline handler does the waiting, and marks the last response `Connection: close`).
    let quiescing: ServerQuiescingHelper

    public init(engine: MCPEngine, threads: Int) {
        self.engine = engine
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        self.quiescing = ServerQuiescingHelper(group: group)
    }

    /// Binds (or adopts) the listening socket. Returns the channel and the bound port.
    public func start(_ target: ListenTarget) throws(HostFailure) -> (Channel, Int) {
        let dispatcher = engine.dispatcher
        let quiescing = self.quiescing
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiescing.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
                    .flatMapThrowing {
                        // A connection that sends nothing for 2 minutes between requests is closed, so idle or
                        // stalled clients cannot pin descriptors forever.
                        try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: .seconds(120)))
                        try channel.pipeline.syncOperations.addHandler(HTTPConnectionHandler(dispatcher: dispatcher))
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
        let deadline = ContinuousClock.now + .nanoseconds(drainTimeout.nanoseconds)
        log("draining: no new requests, \(engine.callsInFlight) call(s) in flight")
        engine.beginDrain()
        // Closes the listener, and every connection as soon as it has no request in progress.
        let closed = DispatchSemaphore(value: 0)
        let allClosed = group.next().makePromise(of: Void.self)
        allClosed.futureResult.whenComplete { _ in closed.signal() }
        quiescing.initiateShutdown(promise: allClosed)
        let left = engine.waitForCalls(timeout: ContinuousClock.now.duration(to: deadline))
        if left == 0 {
            // The last responses are being written; their connections close right after.
            _ = closed.wait(
                timeout: .now() + .nanoseconds(Int(ContinuousClock.now.duration(to: deadline).wholeNanoseconds)))
            engine.plugin.destroy()
        }
        try? group.syncShutdownGracefully()
        if left > 0 {
            log("drain deadline passed with \(left) call(s) still running; exiting without destroy")
        }
        return 0
    }
}

/// SIGTERM and SIGINT turned into an event. The handlers are installed synchronously with sigaction (a
/// self-pipe in CHostSupport) before anything else runs, so a signal that arrives while the plugin loads or
/// just after the serving line is never lost and never kills the process half-way. (A Dispatch signal source
/// registers asynchronously, and a signal in that window was lost under load.)
public final class TerminationSignals: Sendable {
    public init() {
        signal(SIGPIPE, SIG_IGN)
        mcph_install_term_handler()
    }

    /// Blocks until SIGTERM, SIGINT or `trigger()`.
    public func wait() { mcph_wait_term() }

    /// Starts the same shutdown a signal would (the supervisor's stop message, or its channel closing).
    public func trigger() { mcph_trigger_term() }
}
