import MCPProtocol
import NIOCore
import NIOPosix

/// The host's end of the supervisor's control channel (a socketpair on fd 4, named by MCP_CONTROL_FD):
/// newline-delimited JSON. The host sends `{"event":"ready",...}` once serving and answers
/// `{"op":"ping","seq":N}` with `{"event":"pong","seq":N,...}` from its event loop (so an answer proves the loop
/// runs). `{"op":"health","seq":N,"level":L}` answers `{"event":"health","seq":N,...}` (see `health`).
/// `{"op":"stop"}`, or the channel closing (the supervisor is gone), starts the graceful drain.
public final class ControlChannel: Sendable {
    let channel: Channel

    private init(channel: Channel) { self.channel = channel }

    public static func connect(
        fd: Int32, group: EventLoopGroup, engine: MCPEngine, onStop: @escaping @Sendable (String) -> Void
    ) throws(HostFailure) -> ControlChannel {
        do {
            let ch = try ClientBootstrap(group: group)
                .channelInitializer { ch in
                    ch.eventLoop.makeCompletedFuture {
                        try ch.pipeline.syncOperations.addHandler(ControlHandler(engine: engine, onStop: onStop))
                    }
                }
                .withConnectedSocket(fd).wait()
            return ControlChannel(channel: ch)
        } catch {
            throw HostFailure(.listenFailed, "MCP_CONTROL_FD=\(fd) is not a usable control socket: \(error)")
        }
    }

    public func send(_ message: JSONValue) {
        var buf = channel.allocator.buffer(capacity: 128)
        buf.writeBytes(JSONWriter.serialize(message))
        buf.writeInteger(UInt8(0x0A))
        channel.writeAndFlush(buf, promise: nil)
    }

    public func close() { channel.close(promise: nil) }
}

final class ControlHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let engine: MCPEngine
    private let onStop: @Sendable (String) -> Void
    private var pending: [UInt8] = []
    private var stopped = false

    init(engine: MCPEngine, onStop: @escaping @Sendable (String) -> Void) {
        self.engine = engine
        self.onStop = onStop
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buf = unwrapInboundIn(data)
        pending += buf.readBytes(length: buf.readableBytes) ?? []
        guard pending.count <= 1 << 20 else {
            // Not a supervisor speaking: a line this long is garbage. Drop it rather than grow without bound.
            pending.removeAll()
            return
        }
        while let nl = pending.firstIndex(of: 0x0A) {
            let line = Array(pending[..<nl])
            pending.removeSubrange(...nl)
            handle(line, context: context)
        }
    }

    private func handle(_ line: [UInt8], context: ChannelHandlerContext) {
        guard let msg = try? JSONParser.parse(line), let op = msg["op"]?.stringValue else { return }
        switch op {
        case "ping":
            var reply: [String: JSONValue] = [
                "event": "pong", "inflight": .int(Int64(engine.callsInFlight)),
                "stuck": .int(Int64(engine.plugin.stuckCallCount)), "slots": .int(Int64(engine.plugin.concurrency)),
            ]
            if let seq = msg["seq"] { reply["seq"] = seq }
            var out = context.channel.allocator.buffer(capacity: 64)
            out.writeBytes(JSONWriter.serialize(.object(reply)))
            out.writeInteger(UInt8(0x0A))
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        case "health":
            health(msg, channel: context.channel)
        case "stop":
            stop("stop requested by the supervisor")
        default:
            break
        }
    }

    /// A health probe, answered in two parts. The `loop` part is written at once from the event loop (an answer
    /// at all proves the loop runs) with the call slots' use; at the detailed and diagnostic levels the plugin's
    /// own callbacks then run on the health thread and the `plugin` part follows once they return, so a slow
    /// health callback is told apart from a blocked loop.
    private func health(_ msg: JSONValue, channel: Channel) {
        let plugin = engine.plugin
        let seq = msg["seq"] ?? .null
        Self.write(
            [
                "event": "health", "seq": seq, "part": "loop", "inflight": .int(Int64(engine.callsInFlight)),
                "stuck": .int(Int64(plugin.stuckCallCount)), "slots": .int(Int64(plugin.concurrency)),
            ], to: channel)
        let level = msg["level"]?.stringValue ?? "basic"
        guard level == "detailed" || level == "diagnostic" else { return }
        plugin.checkHealth(diagnose: level == "diagnostic") { result in
            var reply: [String: JSONValue] = ["event": "health", "seq": seq, "part": "plugin"]
            switch result {
            case .answered(let ok, let detail, let report, let seconds):
                reply["ok"] = ok.map { .bool($0) } ?? .null
                reply["detail"] = .string(detail)
                reply["ms"] = .double((seconds * 1e4).rounded() / 10)
                if let report { reply["report"] = .string(report) }
            case .busy(let seconds):
                reply["ok"] = false
                reply["busy"] = true
                reply["detail"] = .string(
                    "the plugin's previous health callback has not returned after \(Int(seconds * 1000)) ms")
            case .closed:
                reply["ok"] = false
                reply["detail"] = "the plugin is shutting down"
            }
            Self.write(.object(reply), to: channel)
        }
    }

    private static func write(_ message: JSONValue, to channel: Channel) {
        var out = channel.allocator.buffer(capacity: 128)
        out.writeBytes(JSONWriter.serialize(message))
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
