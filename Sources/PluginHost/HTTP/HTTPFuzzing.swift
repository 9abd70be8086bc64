import MCPProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// The whole HTTP request path of a host, for `mcp-fuzz http` (docs/reliability.md): a real `HostServer` (NIO's
/// HTTP parser, `HTTPConnectionHandler` with its Origin/Host checks and limits, gzip, the dispatcher over the same
/// in-memory server as `DispatcherFuzzing`) on a loopback port, fed each input as raw bytes on a fresh connection.
/// Not used by the hosts; public only so the fuzz executable can reach it.
public final class HTTPFuzzing: Sendable {
    private let server: HostServer
    public let port: Int

    public init() throws(HostFailure) {
        // A host that closes before reading everything makes the next send fail with EPIPE, not kill the fuzzer.
        signal(SIGPIPE, SIG_IGN)
        var config = HostConfig()
        config.callTimeout = .milliseconds(300)
        config.maxBodyBytes = 64 << 10
        config.edge.gzip = true
        server = HostServer(engine: MCPEngine(server: FuzzedServer(), config: config), threads: 1)
        (_, port) = try server.start(.address(host: "127.0.0.1", port: 0))
    }

    /// Sends `bytes` as they are, closes the sending side and reads until the host closes the connection (at most
    /// five seconds). Returns what came back, or nil when the connection was still open after five seconds.
    public func feed(_ bytes: [UInt8]) -> [UInt8]? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        // Closed with a reset, not TIME_WAIT: a fuzz run opens hundreds of thousands of connections.
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = in_addr_t(UInt32(0x7f00_0001).bigEndian)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { return [] }
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }  // the host closed early (a limit, a bad request line): read its answer
            sent += n
        }
        shutdown(fd, Int32(SHUT_WR))
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                answer.append(contentsOf: buffer[..<n])
            } else if n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                return answer  // closed (or reset)
            } else if errno != EINTR {
                return nil  // still open after five seconds
            }
        }
    }
}
