import CHostSupport
import Dispatch
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOHTTPCompression
import NIOPosix
import Synchronization

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
    /// `QuiesceGraceHandler` holds that second step back until the grace period ends.
    let quiescing: ServerQuiescingHelper
    let grace = DrainGrace()
    /// Makes a connection's TLS handler (mcp-gateway's `--tls-certificate`); nil: plain HTTP only. With it, a
    /// `TLSSniffer` decides per connection (plain HTTP stays open to loopback peers).
    let tls: (@Sendable () throws -> ChannelHandler)?

    /// How long a draining host keeps serving requests that arrive on connections it had already accepted
    /// (each answered with `Connection: close`) before it closes its idle connections and answers 503 to the
    /// rest; at most `--drain-timeout`. Replicas share one listening socket, and a connection the kernel handed
    /// to this host just before it stopped accepting may carry its request only a moment later: closing it
    /// unread, or answering 503, would fail a call that another replica could have served. docs/plugin-host.md.
    public static let drainGrace: Duration = .seconds(1)

    /// `group`: the event loops to serve on (the gateway shares its own with its backend connections, so a call
    /// and its backend request stay on one thread); nil: new ones, `threads` of them.
    public init(
        engine: MCPEngine, threads: Int, group: MultiThreadedEventLoopGroup? = nil,
        tls: (@Sendable () throws -> ChannelHandler)? = nil
    ) {
        self.engine = engine
        self.tls = tls
        let loops = group ?? MultiThreadedEventLoopGroup(numberOfThreads: threads)
        self.group = loops
        self.quiescing = ServerQuiescingHelper(group: loops)
    }

    /// Binds (or adopts) the listening socket. Returns the channel and the bound port.
    public func start(_ target: ListenTarget) throws(HostFailure) -> (Channel, Int) {
        let dispatcher = engine.dispatcher
        let engine = self.engine
        let edge = EdgePolicy(engine.config.edge)
        let gzip = engine.config.edge.gzip
        let quiescing = self.quiescing
        let grace = self.grace
        let tls = self.tls
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
                        if gzip {
                            // JSON answers only: an event stream must reach the client event by event.
                            try channel.pipeline.syncOperations.addHandler(
                                HTTPResponseCompressor(responseCompressionPredicate: { head, _ in
                                    head.headers.first(name: "Content-Type")?.hasPrefix("application/json") == true
                                        ? .compressIfPossible : .doNotCompress
                                }))
                        }
                        try channel.pipeline.syncOperations.addHandler(
                            HTTPConnectionHandler(dispatcher: dispatcher, engine: engine, edge: edge))
                        try channel.pipeline.syncOperations.addHandler(QuiesceGraceHandler(grace), position: .first)
                        if let tls {
                            try channel.pipeline.syncOperations.addHandler(TLSSniffer(makeTLS: tls), position: .first)
                        }
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

    /// Blocks until a termination signal, then drains: the listener closes at once (the other replicas sharing
    /// it take the new connections); for `drainGrace` requests on connections already accepted are still served,
    /// each with `Connection: close`; then idle connections close, new requests get 503, and the calls in
    /// flight get what is left of `drainTimeout`.
    public func runUntilSignalled(
        _ signals: TerminationSignals, listener: Channel, drainTimeout: TimeAmount,
        log: @escaping @Sendable (String) -> Void
    ) -> Int32 {
        signals.wait()
        let drain = Duration.nanoseconds(drainTimeout.nanoseconds)
        let deadline = ContinuousClock.now + drain
        let graceLength = min(Self.drainGrace, drain)
        let graceEnd = ContinuousClock.now + graceLength
        log("draining: no new requests, \(engine.callsInFlight) call(s) in flight")
        engine.beginDrain()
        grace.begin(until: .now() + .nanoseconds(Int64(graceLength.wholeNanoseconds)))
        stopAccepting(listener)
        // Closes the listener now, and every connection as soon as it has no request in progress after the grace.
        let closed = DispatchSemaphore(value: 0)
        let allClosed = group.next().makePromise(of: Void.self)
        allClosed.futureResult.whenComplete { _ in closed.signal() }
        quiescing.initiateShutdown(promise: allClosed)
        // No connection left (the listener is closed, so none can come): the grace is over early.
        let allGone =
            closed.wait(timeout: .now() + Self.dispatchNanos(ContinuousClock.now.duration(to: graceEnd))) == .success
        engine.refuseNewRequests()
        let left = engine.waitForCalls(timeout: ContinuousClock.now.duration(to: deadline))
        if left == 0 {
            // The last responses are being written; their connections close right after.
            if !allGone {
                _ = closed.wait(timeout: .now() + Self.dispatchNanos(ContinuousClock.now.duration(to: deadline)))
            }
            engine.plugin.destroy(healthWait: .seconds(5))
        }
        try? group.syncShutdownGracefully()
        if left > 0 {
            log("drain deadline passed with \(left) call(s) still running; exiting without destroy")
        }
        return 0
    }

    /// Stops reading the listening socket and lets the connections it accepted last finish their setup.
    /// ServerBootstrap sets an accepted connection up on its own event loop and then hands it on from the
    /// listener's loop only if the listener is still open; one caught by the listener closing is closed unread
    /// (a reset for its client, whose request another replica could have served). So the listener pauses first,
    /// and every loop runs the tasks queued before (twice: the setup, then the hand-on) before it closes.
    private func stopAccepting(_ listener: Channel) {
        try? listener.setOption(ChannelOptions.autoRead, value: false).wait()
        for _ in 0..<2 {
            for loop in group.makeIterator() { try? loop.submit {}.wait() }
        }
    }

    private static func dispatchNanos(_ d: Duration) -> DispatchTimeInterval {
        .nanoseconds(Int(max(d, .zero).wholeNanoseconds))
    }
}

/// When the drain's grace period ends (none before the drain starts).
final class DrainGrace: Sendable {
    private let end = Atomic<UInt64>(0)

    func begin(until deadline: NIODeadline) { end.store(max(deadline.uptimeNanoseconds, 1), ordering: .releasing) }

    /// The end of the grace period, if the drain has started and it is still to come.
    var pendingEnd: NIODeadline? {
        let nanos = end.load(ordering: .acquiring)
        guard nanos != 0 else { return nil }
        let deadline = NIODeadline.uptimeNanoseconds(nanos)
        return deadline > .now() ? deadline : nil
    }
}

/// First in a connection's pipeline: holds the quiescing helper's `ChannelShouldQuiesceEvent` back until the
/// drain's grace period ends, so a request arriving on an accepted connection during the grace is served
/// (with `Connection: close`) rather than finding its connection closed.
final class QuiesceGraceHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let grace: DrainGrace
    private var delayed: Scheduled<Void>?

    init(_ grace: DrainGrace) { self.grace = grace }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent, let end = grace.pendingEnd {
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            delayed = context.eventLoop.scheduleTask(deadline: end) {
                bound.value.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        delayed?.cancel()
        delayed = nil
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
