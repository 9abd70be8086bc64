import Contracts
import MCPProtocol
import NIOCore
import NIOExtras
import NIOPosix

/// The host's end of the supervisor's control channel (a socketpair on fd 4, named by MCP_CONTROL_FD): the
/// messages of Contracts' `SupervisorMessage` and `HostMessage`, one JSON object per line. The host sends `ready`
/// once serving and answers `ping` with `pong` from its event loop (so an answer proves the loop runs); `health`
/// is answered in parts (see `health`). `stop`, or the channel closing (the supervisor is gone), starts the
/// graceful drain.
///
/// Lines are split by NIOExtras' `LineBasedFrameDecoder`; its `ByteToMessageHandler` caps what it buffers at
/// `maxLineBytes`: a longer line is not a supervisor speaking, and the channel is closed (which drains the host,
/// as a supervisor that went away does).
public final class ControlChannel: Sendable {
    static let maxLineBytes = 1 << 20

    let channel: Channel

    private init(channel: Channel) { self.channel = channel }

    public static func connect(
        fd: Int32, group: EventLoopGroup, engine: MCPEngine, onStop: @escaping @Sendable (String) -> Void
    ) throws(HostFailure) -> ControlChannel {
        do {
            let ch = try ClientBootstrap(group: group)
                .channelInitializer { ch in
                    ch.eventLoop.makeCompletedFuture {
                        try ch.pipeline.syncOperations.addHandlers(
                            ByteToMessageHandler(LineBasedFrameDecoder(), maximumBufferSize: Self.maxLineBytes),
                            ControlHandler(engine: engine, onStop: onStop))
                    }
                }
                .withConnectedSocket(fd).wait()
            engine.plugin.relayChanges { change in ControlHandler.write(.changed(change), to: ch) }
            engine.relaySessionEnds { id in ControlHandler.write(.changed(.sessionEnded(id: id)), to: ch) }
            (engine.plugin as? GatewayServer)?.onLeftOut { items in ControlHandler.write(.leftOut(items), to: ch) }
            return ControlChannel(channel: ch)
        } catch {
            throw HostFailure(
                .listenFailed, "\(ChildEnvironment.controlFD)=\(fd) is not a usable control socket: \(error)")
        }
    }

    public func send(_ message: HostMessage) { ControlHandler.write(message, to: channel) }

    public func close() { channel.close(promise: nil) }
}

final class ControlHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let engine: MCPEngine
    private let onStop: @Sendable (String) -> Void
    private var stopped = false

    init(engine: MCPEngine, onStop: @escaping @Sendable (String) -> Void) {
        self.engine = engine
        self.onStop = onStop
    }

    /// One line (the decoder strips its newline).
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let line = unwrapInboundIn(data)
        guard let value = try? JSONParser.parse(line.readableBytesView),
            let message = SupervisorMessage.decode(value)
        else { return }
        switch message {
        case .ping(let seq):
            Self.write(.pong(seq: seq, slots: slotUse()), to: context.channel)
        case .health(let seq, let level):
            health(seq: seq, level: level, channel: context.channel)
        case .stop:
            stop("stop requested by the supervisor")
        case .metrics(let seq):
            // Answered here on the event loop: the snapshot only reads counters (docs/plugin-host.md "Metrics").
            Self.write(.metrics(seq: seq, engine.trafficSnapshot()), to: context.channel)
        case .changed(.lists(let lists)):
            engine.plugin.listsChanged(lists)
        case .changed(.resource(let uri)):
            engine.plugin.resourceUpdated(uri)
        case .changed(.sessionEnded(let id)):
            engine.endSession(id)
        case .servers(let table):
            engine.plugin.serversChanged(table)
        }
    }

    private func slotUse() -> SlotUse {
        SlotUse(
            inflight: engine.callsInFlight, stuck: engine.plugin.stuckCallCount, slots: engine.plugin.concurrency)
    }

    /// A health probe, answered in two parts. The `loop` part is written at once from the event loop (an answer
    /// at all proves the loop runs) with the call slots' use; at the detailed and diagnostic levels the plugin's
    /// own callbacks then run on the health thread and the `plugin` part follows once they return, so a slow
    /// health callback is told apart from a blocked loop.
    private func health(seq: Int, level: HealthLevel, channel: Channel) {
        let plugin = engine.plugin
        Self.write(.healthLoop(seq: seq, slots: slotUse()), to: channel)
        guard level >= .detailed else { return }
        plugin.checkHealth(diagnose: level == .diagnostic) { result in
            let part: PluginHealth
            switch result {
            case .answered(let ok, let detail, let report, let seconds):
                part = PluginHealth(
                    ok: ok, detail: detail, milliseconds: (seconds * 1e4).rounded() / 10, report: report)
            case .busy(let seconds):
                part = PluginHealth(
                    ok: false,
                    detail: "the plugin's previous health callback has not returned after \(Int(seconds * 1000)) ms",
                    busy: true)
            case .closed:
                part = PluginHealth(ok: false, detail: "the plugin is shutting down")
            }
            Self.write(.healthPlugin(seq: seq, part), to: channel)
        }
    }

    static func write(_ message: HostMessage, to channel: Channel) {
        var out = channel.allocator.buffer(capacity: 128)
        out.writeBytes(JSONWriter.serialize(message.encode()))
        out.writeInteger(UInt8(0x0A))
        channel.writeAndFlush(out, promise: nil)
    }

    private func stop(_ why: String) {
        guard !stopped else { return }
        stopped = true
        onStop(why)
    }

    func channelInactive(context: ChannelHandlerContext) {
        stop("the supervisor's control channel closed")
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
