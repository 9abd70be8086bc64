import MCPProtocol
import NIOCore

/// First in a connection's pipeline on an endpoint with TLS (the gateway's `--tls-certificate`, docs/gateway.md
/// "TLS"): looks at the connection's first byte and either puts the TLS handler behind itself (a TLS record starts
/// with 0x16, a handshake) or lets plain HTTP through, which it accepts from loopback peers only: the supervisor's
/// probe and local agents keep plain HTTP on the same port, and any other address must use TLS. A plain request
/// from elsewhere is answered 400 with a JSON-RPC error saying so, and its connection is closed. Either way the
/// sniffer then leaves the pipeline, so it costs nothing after the first read.
///
/// The TLS handler is made by `makeTLS` (mcp-gateway builds it with swift-nio-ssl), so this target does not
/// link TLS itself.
final class TLSSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The first byte of a TLS record that carries a handshake (RFC 8446, 5.1: ContentType handshake).
    static let handshakeRecord: UInt8 = 0x16

    private let makeTLS: @Sendable () throws -> ChannelHandler
    private var decided = false

    init(makeTLS: @escaping @Sendable () throws -> ChannelHandler) { self.makeTLS = makeTLS }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !decided else { return context.fireChannelRead(data) }
        let buffer = unwrapInboundIn(data)
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return }
        decided = true
        if first == Self.handshakeRecord {
            do {
                try context.pipeline.syncOperations.addHandler(makeTLS(), position: .after(self))
            } catch {
                context.close(promise: nil)
                return
            }
        } else if !Self.mayUsePlaintext(context.channel.remoteAddress) {
            let body = MCPDispatcher.errorBody(
                id: nil, code: JSONRPC.invalidRequest,
                message:
                    "this endpoint takes plain HTTP from loopback only; connect with https:// (docs/gateway.md, TLS)")
            var out = context.channel.allocator.buffer(capacity: body.count + 128)
            out.writeString(
                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n"
                    + "Connection: close\r\n\r\n")
            out.writeBytes(body)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(out)).whenComplete { _ in channel.close(promise: nil) }
            return
        }
        context.fireChannelRead(data)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    /// Plain HTTP is for loopback peers (127.0.0.0/8, ::1, IPv4-mapped loopback) and local sockets.
    static func mayUsePlaintext(_ address: SocketAddress?) -> Bool {
        switch address {
        case .v4(let a):
            return UInt32(bigEndian: a.address.sin_addr.s_addr) >> 24 == 127
        case .v6(let a):
            let bytes = withUnsafeBytes(of: a.address.sin6_addr) { Array($0) }
            if bytes[0..<15].allSatisfy({ $0 == 0 }) && bytes[15] == 1 { return true }  // ::1
            // ::ffff:127.x.y.z
            return bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF && bytes[12] == 127
        case .unixDomainSocket:
            return true
        case nil:
            return false
        }
    }
}
