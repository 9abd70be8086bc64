import CSupervisorSupport
import Dispatch
import MCPProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// One real MCP request over a server's own port, the way a client makes it: a TCP connection to the listening
/// address, a 2026-07-28 `server/discover` POST, and a check that the answer is a JSON-RPC result. Everything is
/// non-blocking on the supervisor's queue (connect, write and read are Dispatch sources), so a slow or silent
/// server never holds the supervisor up; the caller's deadline `cancel()`s it.
final class PortProbe {
    private let fd: Int32
    private let queue: DispatchQueue
    private var done: ((Result<Void, ProbeFailure>) -> Void)?
    private var writeSource: DispatchSourceWrite?
    private var readSource: DispatchSourceRead?
    private var request: [UInt8]
    private var response: [UInt8] = []

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

    /// Starts a probe; `done` runs once on `queue` (never after `cancel()`).
    static func start(
        address: String, port: Int, queue: DispatchQueue, done: @escaping (Result<Void, ProbeFailure>) -> Void
    ) -> PortProbe? {
        var fd: Int32 = -1
        let rc = mcps_connect_tcp(address, Int32(port), &fd)
        guard rc == 0 || rc == EINPROGRESS else {
            done(.failure(ProbeFailure(description: "connect to \(address):\(port): \(String(cString: strerror(rc)))")))
            return nil
        }
        let probe = PortProbe(fd: fd, queue: queue, host: address, port: port, done: done)
        probe.begin()
        return probe
    }

    private init(
        fd: Int32, queue: DispatchQueue, host: String, port: Int, done: @escaping (Result<Void, ProbeFailure>) -> Void
    ) {
        self.fd = fd
        self.queue = queue
        self.done = done
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
            + "User-Agent: mcp-supervisor-health\r\nConnection: close\r\nContent-Length: \(body.count)\r\n\r\n"
        request = Array(head.utf8) + body
    }

    /// One source at a time: a write source until the request is sent, then a read source. (Two sources on one
    /// descriptor lose events on Linux's libdispatch when one of them is cancelled or suspended.) The next
    /// source is created, or the descriptor closed, only in the previous source's cancel handler, once it is
    /// really gone.
    private func begin() {
        let w = DispatchSource.makeWriteSource(fileDescriptor: fd, queue: queue)
        w.setEventHandler { [unowned self] in self.writable() }
        w.setCancelHandler { [self] in
            if self.done == nil {
                Glibc.close(self.fd)
            } else {
                self.startReading()
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

    private func writable() {
        guard !request.isEmpty else { return }
        let err = mcps_socket_error(fd)
        if err != 0 { return finish(.failure(ProbeFailure(description: "connect: \(String(cString: strerror(err)))"))) }
        let n = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if n < 0 {
            if errno == EAGAIN || errno == EINTR { return }
            return finish(.failure(ProbeFailure(description: "send: \(String(cString: strerror(errno)))")))
        }
        request.removeFirst(n)
        if request.isEmpty {
            writeSource?.cancel()  // its cancel handler starts reading
            writeSource = nil
        }
    }

    private func readable() {
        var buf = [UInt8](repeating: 0, count: 8192)
        let n = recv(fd, &buf, buf.count, 0)
        if n < 0 {
            if errno == EAGAIN || errno == EINTR { return }
            let why = request.isEmpty ? "recv" : "connect"
            return finish(.failure(ProbeFailure(description: "\(why): \(String(cString: strerror(errno)))")))
        }
        if n > 0 {
            response += buf[0..<n]
            guard response.count <= 1 << 20 else {
                return finish(.failure(ProbeFailure(description: "answer larger than 1 MiB")))
            }
            if let verdict = Self.check(response, complete: false) { finish(verdict) }
            return
        }
        // EOF
        finish(
            Self.check(response, complete: true)
                ?? .failure(ProbeFailure(description: "connection closed before a complete answer")))
    }

    /// The verdict on the bytes so far: nil while more may come.
    static func check(_ bytes: [UInt8], complete: Bool) -> Result<Void, ProbeFailure>? {
        let sep: [UInt8] = [13, 10, 13, 10]
        guard let headEnd = bytes.firstRange(of: sep) else {
            return complete ? .failure(ProbeFailure(description: "no HTTP response")) : nil
        }
        let head = String(decoding: bytes[..<headEnd.lowerBound], as: UTF8.self)
        let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        let statusParts = lines.first?.split(separator: " ") ?? []
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else {
            return .failure(ProbeFailure(description: "malformed HTTP status line"))
        }
        var length: Int?
        for l in lines.dropFirst() {
            let kv = l.split(separator: ":", maxSplits: 1)
            if kv.count == 2, kv[0].lowercased() == "content-length" {
                length = Int(kv[1].trimmingCharacters(in: " \t"))
            }
        }
        let body = bytes[headEnd.upperBound...]
        if let length {
            if body.count < length { return complete ? .failure(ProbeFailure(description: "truncated answer")) : nil }
        } else if !complete {
            return nil
        }
        guard status == 200 else {
            return .failure(ProbeFailure(description: "server/discover answered HTTP \(status)"))
        }
        let payload = length.map { Array(body.prefix($0)) } ?? Array(body)
        guard let json = try? JSONParser.parse(payload) else {
            return .failure(ProbeFailure(description: "server/discover answer is not JSON"))
        }
        if let e = json["error"] {
            let message = e["message"]?.stringValue ?? "error"
            return .failure(ProbeFailure(description: "server/discover failed: \(message)"))
        }
        guard case .object = json["result"] else {
            return .failure(ProbeFailure(description: "server/discover answer has no result"))
        }
        return .success(())
    }

    private func finish(_ r: Result<Void, ProbeFailure>) {
        let d = done
        cancel()
        d?(r)
    }

    /// Stops the probe; `done` is not called afterwards. The sources' cancel handlers close the descriptor.
    func cancel() {
        done = nil
        writeSource?.cancel()
        readSource?.cancel()
        writeSource = nil
        readSource = nil
    }

    deinit {
        writeSource?.cancel()
        readSource?.cancel()
    }
}

extension StringProtocol {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
