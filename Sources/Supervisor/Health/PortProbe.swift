import CSupervisorSupport
import Dispatch
import MCPProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// A real MCP request over a server's own port, the way a client makes it: a TCP connection to the listening
/// address, a 2026-07-28 `server/discover` POST, and a check that the answer is an HTTP 200 JSON-RPC result.
///
/// The connection is kept alive between probes (HTTP/1.1 keep-alive): a probe on an open connection costs one
/// send and one read event, no new socket, no accept and no Dispatch source set up or torn down (measured: per
/// probe set-up was most of the supervisor's probing cost). Any failure, timeout or unexpected byte closes it
/// and the next probe connects afresh; so does the host closing an idle connection.
///
/// Everything is non-blocking on the supervisor's queue, so a slow or silent server never holds the supervisor
/// up; the caller's deadline `close()`s it.
final class PortConnection {
    private let fd: Int32
    private let queue: DispatchQueue
    private let request: [UInt8]
    private var writeSource: DispatchSourceWrite?
    private var readSource: DispatchSourceRead?
    private var connected = false
    private var sendWhenConnected = false
    private var response: [UInt8] = []
    private var done: ((Result<Void, ProbeFailure>) -> Void)?
    /// False once closed or broken: make a new connection.
    private(set) var usable = true
    /// When the connection was opened or last answered (monotonic seconds).
    private(set) var lastActive = Clock.now()

    struct ProbeFailure: Error, CustomStringConvertible {
        var description: String
    }

    /// The address a probe connects to for a listening address: wildcards become loopback.
    static func connectAddress(_ listen: String) -> String {
        switch listen {
        case "0.0.0.0": return "127.0.0.1"
        case "::", "[::]": return "::1"
        default: return listen
        }
    }

    /// Starts connecting to address:port. `bearerToken`: sent as `Authorization: Bearer` (the gateway's
    /// `bearer_token_file`, which every request must carry).
    static func open(address: String, port: Int, queue: DispatchQueue, bearerToken: String? = nil)
        -> Result<PortConnection, ProbeFailure>
    {
        var fd: Int32 = -1
        let rc = mcps_connect_tcp(address, Int32(port), &fd)
        guard rc == 0 || rc == EINPROGRESS else {
            return .failure(
                ProbeFailure(description: "connect to \(address):\(port): \(String(cString: strerror(rc)))"))
        }
        let c = PortConnection(fd: fd, queue: queue, host: address, port: port, bearerToken: bearerToken)
        if rc == 0 {
            c.connected = true
            c.startReading()
        } else {
            c.waitForConnect()
        }
        return .success(c)
    }

    private init(fd: Int32, queue: DispatchQueue, host: String, port: Int, bearerToken: String?) {
        self.fd = fd
        self.queue = queue
        let body = JSONWriter.serialize([
            "jsonrpc": "2.0", "id": 1, "method": "server/discover",
            "params": [
                "_meta": [
                    "io.modelcontextprotocol/protocolVersion": .string(ProtocolVersion.modern[0]),
                    "io.modelcontextprotocol/clientInfo": ["name": "mcp-supervisor-health", "version": "1"],
                    "io.modelcontextprotocol/clientCapabilities": [:],
                ]
            ],
        ])
        let hostHeader = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        let head =
            "POST /mcp HTTP/1.1\r\nHost: \(hostHeader)\r\nContent-Type: application/json\r\n"
            + "Accept: application/json, text/event-stream\r\n"
            + "MCP-Protocol-Version: \(ProtocolVersion.modern[0])\r\nMcp-Method: server/discover\r\n"
            + (bearerToken.map { "Authorization: Bearer \($0)\r\n" } ?? "")
            + "User-Agent: mcp-supervisor-health\r\nContent-Length: \(body.count)\r\n\r\n"
        request = Array(head.utf8) + body
    }

    /// Sends one `server/discover`; `done` runs once on the queue (never after `close()`). One at a time.
    func probe(_ done: @escaping (Result<Void, ProbeFailure>) -> Void) {
        precondition(self.done == nil && usable)
        self.done = done
        response.removeAll(keepingCapacity: true)
        if connected { sendRequest() } else { sendWhenConnected = true }
    }

    // One source at a time while connecting: a write source until connected, then a read source for the life of
    // the connection. (Two sources on one descriptor lose events on Linux's libdispatch when one of them is
    // cancelled.) The read source is created, or the descriptor closed, only in the write source's cancel
    // handler, once it is really gone.
    private func waitForConnect() {
        let w = DispatchSource.makeWriteSource(fileDescriptor: fd, queue: queue)
        w.setEventHandler { [unowned self] in
            guard !self.connected else { return }
            let err = mcps_socket_error(self.fd)
            if err != 0 { return self.fail("connect: \(String(cString: strerror(err)))") }
            self.connected = true
            self.writeSource?.cancel()  // its cancel handler starts reading
            self.writeSource = nil
        }
        w.setCancelHandler { [self] in
            if !self.usable {
                Glibc.close(self.fd)
            } else {
                self.startReading()
                if self.sendWhenConnected { self.sendRequest() }
            }
        }
        writeSource = w
        w.resume()
    }

    private func startReading() {
        let r = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        r.setEventHandler { [unowned self] in self.readable() }
        let fd = self.fd
        r.setCancelHandler { Glibc.close(fd) }
        readSource = r
        r.resume()
    }

    private func sendRequest() {
        sendWhenConnected = false
        // ~500 bytes into an empty socket buffer: all or nothing in practice; anything else is a failure.
        let n = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if n != request.count {
            fail(n < 0 ? "send: \(String(cString: strerror(errno)))" : "send: short write")
        }
    }

    private func readable() {
        var buf = [UInt8](repeating: 0, count: 8192)
        let n = recv(fd, &buf, buf.count, 0)
        if n < 0 {
            if errno == EAGAIN || errno == EINTR { return }
            return fail("recv: \(String(cString: strerror(errno)))")
        }
        if n == 0 {
            // Closed by the server: between probes that is its idle timeout; during one, a failure.
            return done == nil ? close() : fail("connection closed before a complete answer")
        }
        guard done != nil else { return close() }  // bytes nobody asked for: start over next time
        response += buf[0..<n]
        guard response.count <= 1 << 20 else { return fail("answer larger than 1 MiB") }
        switch Self.parse(response) {
        case .incomplete: return
        case .failed(let why): fail(why)
        case .answered(let keepAlive):
            let d = done
            done = nil
            lastActive = Clock.now()
            if !keepAlive { close() }
            d?(.success(()))
        }
    }

    private func fail(_ why: String) {
        let d = done
        close()
        d?(.failure(ProbeFailure(description: why)))
    }

    /// Closes the connection; a probe in flight is abandoned (`done` is not called).
    func close() {
        guard usable else { return }
        usable = false
        done = nil
        if let w = writeSource {
            w.cancel()  // its cancel handler closes the descriptor
            writeSource = nil
        } else {
            readSource?.cancel()  // likewise
            readSource = nil
        }
    }

    deinit { close() }

    enum Parsed: Equatable {
        case incomplete
        case failed(String)
        /// A good answer; whether the server keeps the connection open.
        case answered(keepAlive: Bool)
    }

    /// The verdict on the bytes of one answer so far.
    static func parse(_ bytes: [UInt8]) -> Parsed {
        let sep: [UInt8] = [13, 10, 13, 10]
        guard let headEnd = bytes.firstRange(of: sep) else { return .incomplete }
        let head = String(decoding: bytes[..<headEnd.lowerBound], as: UTF8.self)
        let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        let statusParts = lines.first?.split(separator: " ") ?? []
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/1."), let status = Int(statusParts[1]) else {
            return .failed("malformed HTTP status line")
        }
        var length: Int?
        var keepAlive = statusParts[0] == "HTTP/1.1"
        for l in lines.dropFirst() {
            let kv = l.split(separator: ":", maxSplits: 1)
            guard kv.count == 2 else { continue }
            let value = kv[1].drop { $0 == " " || $0 == "\t" }
            switch kv[0].lowercased() {
            case "content-length": length = Int(value)
            case "connection": keepAlive = value.lowercased() != "close"
            default: break
            }
        }
        guard let length else { return .failed("server/discover answered HTTP \(status) without a Content-Length") }
        let body = bytes[headEnd.upperBound...]
        if body.count < length { return .incomplete }
        guard status == 200 else { return .failed("server/discover answered HTTP \(status)") }
        guard let json = try? JSONParser.parse(Array(body.prefix(length))) else {
            return .failed("server/discover answer is not JSON")
        }
        if let e = json["error"] { return .failed("server/discover failed: \(e["message"]?.stringValue ?? "error")") }
        guard case .object = json["result"] else { return .failed("server/discover answer has no result") }
        return .answered(keepAlive: keepAlive && body.count == length)
    }
}
