import Foundation
import NIOCore
import NIOEmbedded
import Testing

@testable import PluginHost

/// Stands in for the TLS handler so the test sees where the sniffer put it; records what reaches it.
private final class MarkerHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    var reads: [ByteBuffer] = []
    func channelRead(context: ChannelHandlerContext, data: NIOAny) { reads.append(unwrapInboundIn(data)) }
}

struct TLSSnifferTests {
    /// A channel whose pipeline is [sniffer, tail]; `tail` collects what the sniffer passes on.
    private func channel(peer: SocketAddress?, marker: MarkerHandler) throws -> (EmbeddedChannel, Collector) {
        let channel = EmbeddedChannel()
        try channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()  // makes it active
        channel.remoteAddress = peer  // connect set it to the address above
        let tail = Collector()
        let sniffer = TLSSniffer(makeTLS: { marker })
        try channel.pipeline.syncOperations.addHandler(sniffer)
        try channel.pipeline.syncOperations.addHandler(tail)
        return (channel, tail)
    }

    private func bytes(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    @Test func aHandshakeByteInstallsTLSBehindTheSnifferWhichThenLeaves() throws {
        let marker = MarkerHandler()
        let (channel, _) = try channel(peer: try SocketAddress(ipAddress: "192.0.2.7", port: 5000), marker: marker)
        var hello = ByteBuffer()
        hello.writeBytes([0x16, 0x03, 0x01, 0x00, 0x02, 0x01, 0x00])
        try channel.writeInbound(hello)
        #expect(marker.reads.map { Array($0.readableBytesView) } == [[0x16, 0x03, 0x01, 0x00, 0x02, 0x01, 0x00]])
        #expect(throws: (any Error).self) { try channel.pipeline.syncOperations.handler(type: TLSSniffer.self) }
        _ = try channel.finish()
    }

    @Test func plainHTTPFromLoopbackPassesThroughAndTheSnifferLeaves() throws {
        for peer in ["127.0.0.1", "127.200.3.4", "::1", "::ffff:127.0.0.9"] {
            let marker = MarkerHandler()
            let (channel, tail) = try channel(peer: try SocketAddress(ipAddress: peer, port: 1), marker: marker)
            try channel.writeInbound(bytes("POST /mcp HTTP/1.1\r\n"))
            try channel.writeInbound(bytes("Host: x\r\n\r\n"))
            #expect(marker.reads.isEmpty, "\(peer)")
            #expect(tail.text == "POST /mcp HTTP/1.1\r\nHost: x\r\n\r\n", "\(peer)")
            #expect(try channel.readOutbound(as: ByteBuffer.self) == nil, "\(peer)")
            #expect(channel.isActive, "\(peer)")
            _ = try channel.finish()
        }
    }

    @Test func plainHTTPFromAnotherHostIsAnswered400WithAJSONRPCErrorAndClosed() throws {
        for peer in ["192.0.2.7", "10.0.0.1", "128.0.0.1", "::2", "2001:db8::1", "::ffff:10.1.2.3"] {
            let marker = MarkerHandler()
            let (channel, tail) = try channel(peer: try SocketAddress(ipAddress: peer, port: 1), marker: marker)
            try channel.writeInbound(bytes("POST /mcp HTTP/1.1\r\n\r\n"))
            let reply = try #require(try channel.readOutbound(as: ByteBuffer.self), "\(peer)")
            let text = String(buffer: reply)
            #expect(text.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), "\(peer)")
            #expect(text.contains("Connection: close\r\n"), "\(peer)")
            let body = try #require(text.components(separatedBy: "\r\n\r\n").last?.data(using: .utf8))
            let object = try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any])
            let error = try #require(object["error"] as? [String: Any])
            #expect(error["code"] as? Int == -32600, "\(peer)")
            #expect((error["message"] as? String)?.contains("https://") == true, "\(peer)")
            #expect(tail.text.isEmpty && marker.reads.isEmpty, "\(peer)")
            #expect(!channel.isActive, "\(peer): closed after the answer")
        }
    }

    @Test func aPeerWithNoAddressIsNotTakenForLoopback() throws {
        #expect(!TLSSniffer.mayUsePlaintext(nil))
        #expect(TLSSniffer.mayUsePlaintext(try SocketAddress(unixDomainSocketPath: "/run/x.sock")))
    }
}

/// Collects the plain bytes the sniffer let through.
private final class Collector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    var text = ""
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        text += String(buffer: unwrapInboundIn(data))
    }
}
