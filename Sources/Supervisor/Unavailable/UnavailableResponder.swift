import CSupervisorSupport
import Contracts
import Dispatch
import MCPProtocol
import SupervisorCore

#if canImport(Glibc)
    import Glibc
#endif

/// Answers the connections to the ports of servers that are down for a while (`Unavailability`: fatal until its
/// cool-down ends, stopped by an admin, exited for good) with HTTP 503 at once, instead of leaving clients in the
/// backlog until their own timeout. The daemon holds every server's listening socket anyway; while a server is
/// unavailable this accepts on it, reads the request head (so the client reads the answer and not a reset; it is
/// never parsed beyond finding its end: the supervisor does not interpret MCP traffic), writes the 503 with
/// `Retry-After` and a JSON-RPC error naming the server's state, closes its side and drains what the client still
/// sends before closing. It stops the moment the machine says the server is coming back (an event on the same
/// queue, before the spawn), so connections then wait for the child as they always did.
///
/// Everything runs on the supervisor's queue, bounded: at most `Limits.connections` open at once (accepting
/// pauses beyond that, and on EMFILE), a head of at most `Limits.headBytes` read within `Limits.headSeconds`, a
/// drain of at most `Limits.drainBytes` within `Limits.drainSeconds`. One deadline on the supervisor's scheduler
/// (`.unavailableAnswers`) serves every connection.
final class UnavailableResponder {
    struct Limits {
        var connections = 256
        var headBytes = 16 << 10
        var headSeconds = 2.0
        var drainBytes = 1 << 20
        var drainSeconds = 1.0
        /// How long accepting pauses after EMFILE/ENFILE/ENOMEM.
        var pauseSeconds = 0.1
    }

    private final class Listener {
        let fd: Int32
        var notice: Unavailability
        let source: DispatchSourceRead
        var suspended = false

        init(fd: Int32, notice: Unavailability, source: DispatchSourceRead) {
            self.fd = fd
            self.notice = notice
            self.source = source
        }
    }

    private final class Connection {
        enum Stage {
            case head
            case draining
        }

        let fd: Int32
        let server: String
        let notice: Unavailability
        var source: DispatchSourceRead?
        var stage = Stage.head
        var head: [UInt8] = []
        var drained = 0
        var deadline: Double

        init(fd: Int32, server: String, notice: Unavailability, deadline: Double) {
            self.fd = fd
            self.server = server
            self.notice = notice
            self.deadline = deadline
        }
    }

    private let queue: DispatchQueue
    private let now: () -> Double
    private let limits: Limits
    /// Arms (or, with nil, cancels) the `.unavailableAnswers` deadline on the supervisor's scheduler.
    private let schedule: (Double?) -> Void
    /// Called for each 503 written (the metrics count them by server and state).
    private let answered: (String, Unavailability.State) -> Void
    private var listeners: [String: Listener] = [:]
    private var connections: [Int32: Connection] = [:]
    /// Accepting is paused until then (EMFILE and friends).
    private var pausedUntil: Double?

    init(
        queue: DispatchQueue, now: @escaping () -> Double, limits: Limits = Limits(),
        schedule: @escaping (Double?) -> Void, answered: @escaping (String, Unavailability.State) -> Void
    ) {
        self.queue = queue
        self.now = now
        self.limits = limits
        self.schedule = schedule
        self.answered = answered
    }

    /// The servers being answered now.
    var answering: [String: Unavailability] { listeners.mapValues(\.notice) }
    var openConnections: Int { connections.count }

    /// Answers connections to `fd` (the server's listening socket, which stays the caller's) with `notice`, or
    /// stops (nil). Connections already accepted are answered with the notice they were accepted under.
    func set(_ server: String, fd: Int32?, _ notice: Unavailability?) {
        dispatchPrecondition(condition: .onQueue(queue))
        guard let notice, let fd else {
            stop(server)
            return
        }
        if let listener = listeners[server], listener.fd == fd {
            listener.notice = notice
            return
        }
        stop(server)
        // The socket is shared with the children (their fd 3), which make it non-blocking anyway; accept must
        // never block here should a connection be taken by someone else between the wake-up and the accept.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        let listener = Listener(fd: fd, notice: notice, source: source)
        source.setEventHandler { [unowned self, unowned listener] in self.accept(server, listener) }
        listeners[server] = listener
        if let until = pausedUntil, until > now() || connections.count >= limits.connections {
            listener.suspended = true
        } else {
            source.resume()
        }
    }

    /// Stops answering `server`'s socket; its listening descriptor is not closed (the caller's). Cancelled on the
    /// queue its handler runs on, so no accept follows this call.
    func stop(_ server: String) {
        guard let listener = listeners.removeValue(forKey: server) else { return }
        // A suspended source must be resumed to be cancelled (Dispatch's rule).
        listener.source.cancel()
        if listener.suspended { listener.source.resume() }
    }

    /// Stops every listener and closes every connection (the supervisor is exiting).
    func stopAll() {
        for server in Array(listeners.keys) { stop(server) }
        for fd in Array(connections.keys) { finish(fd) }
        schedule(nil)
    }

    // MARK: Accepting

    private func accept(_ server: String, _ listener: Listener) {
        // A bounded batch per wake-up, so one flooded port cannot hold the queue.
        for _ in 0..<32 {
            guard connections.count < limits.connections else {
                pause(until: nil)
                return
            }
            let fd = mcps_accept_nonblocking(listener.fd)
            if fd < 0 {
                switch errno {
                case EINTR, ECONNABORTED, EPROTO: continue
                case EMFILE, ENFILE, ENOBUFS, ENOMEM: pause(until: now() + limits.pauseSeconds)
                default: break  // EAGAIN: nothing waiting (or someone else took it)
                }
                return
            }
            let connection = Connection(
                fd: fd, server: server, notice: listener.notice, deadline: now() + limits.headSeconds)
            let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
            source.setEventHandler { [unowned self] in self.readable(fd) }
            // Closed once Dispatch has let go of it: closing first could let a new connection reuse the number
            // while the old registration is still being torn down.
            source.setCancelHandler { close(fd) }
            connection.source = source
            connections[fd] = connection
            source.resume()
        }
        rescheduled()
    }

    /// Suspends every listener (the connection limit, or descriptors ran out) until `until`, or until a connection
    /// closes (nil).
    private func pause(until: Double?) {
        pausedUntil = until ?? pausedUntil
        for listener in listeners.values where !listener.suspended {
            listener.suspended = true
            listener.source.suspend()
        }
        rescheduled()
    }

    private func resumeIfAllowed() {
        if let until = pausedUntil {
            guard until <= now() else { return }
            pausedUntil = nil
        }
        guard connections.count < limits.connections else { return }
        for listener in listeners.values where listener.suspended {
            listener.suspended = false
            listener.source.resume()
        }
    }

    // MARK: Connections

    private func readable(_ fd: Int32) {
        guard let connection = connections[fd] else { return }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 {
            if errno == EAGAIN || errno == EINTR { return }
            finish(fd)
            return
        }
        switch connection.stage {
        case .head:
            if count == 0 {
                // The client finished sending: answer what it sent, if anything.
                if connection.head.isEmpty { finish(fd) } else { respond(connection) }
                return
            }
            if connection.head.isEmpty, buffer[0] == 0x16 {
                // A TLS handshake (the gateway's https port): the supervisor holds no certificate, so it cannot
                // answer in a way the client reads; closing tells it at once instead of after its timeout.
                finish(fd)
                return
            }
            let from = max(0, connection.head.count - 3)
            connection.head.append(contentsOf: buffer[0..<count])
            if Self.endOfHead(connection.head, from: from) || connection.head.count >= limits.headBytes {
                respond(connection)
            }
        case .draining:
            connection.drained += count
            if count == 0 || connection.drained >= limits.drainBytes { finish(fd) }
        }
    }

    static func endOfHead(_ bytes: [UInt8], from: Int) -> Bool {
        guard bytes.count >= 4 else { return false }
        var i = from
        while i + 3 < bytes.count {
            if bytes[i] == 13, bytes[i + 1] == 10, bytes[i + 2] == 13, bytes[i + 3] == 10 { return true }
            i += 1
        }
        return false
    }

    /// Writes the 503, closes the writing side and drains the rest of the request.
    private func respond(_ connection: Connection) {
        let bytes = Self.response(server: connection.server, connection.notice, now: now())
        let written = bytes.withUnsafeBytes { mcps_send_nosignal(connection.fd, $0.baseAddress, UInt($0.count)) }
        guard written == bytes.count else {
            // A fresh socket's send buffer holds far more than this answer: the client is gone.
            finish(connection.fd)
            return
        }
        answered(connection.server, connection.notice.state)
        shutdown(connection.fd, Int32(SHUT_WR))
        connection.stage = .draining
        connection.head = []
        connection.deadline = now() + limits.drainSeconds
        rescheduled()
    }

    private func finish(_ fd: Int32) {
        guard let connection = connections.removeValue(forKey: fd) else { return }
        connection.source?.cancel()
        resumeIfAllowed()
    }

    /// The `.unavailableAnswers` deadline: heads not complete in time are answered anyway, drains that take too
    /// long are cut, a pause after EMFILE ends.
    func deadlineReached() {
        dispatchPrecondition(condition: .onQueue(queue))
        let current = now()
        for connection in Array(connections.values) where connection.deadline <= current + 0.000_5 {
            switch connection.stage {
            case .head: respond(connection)
            case .draining: finish(connection.fd)
            }
        }
        resumeIfAllowed()
        rescheduled()
    }

    private func rescheduled() {
        var earliest = pausedUntil
        for connection in connections.values where earliest == nil || connection.deadline < earliest! {
            earliest = connection.deadline
        }
        schedule(earliest)
    }

    // MARK: The answer

    static func response(server: String, _ notice: Unavailability, now: Double) -> [UInt8] {
        let retryAfter = notice.retryAt.map { max(1, Int(($0 - now).rounded(.up))) }
        var data: [String: JSONValue] = [
            UnavailableAnswer.Key.server: .string(server),
            UnavailableAnswer.Key.state: .string(notice.state.rawValue),
            UnavailableAnswer.Key.reason: .string(notice.reason),
        ]
        var message = "server '\(server)' is unavailable (\(notice.state.rawValue)): \(notice.reason)"
        if let retryAfter {
            data[UnavailableAnswer.Key.retryAfter] = .int(Int64(retryAfter))
            message += "; the supervisor tries it again in \(retryAfter) s"
        }
        let body = JSONWriter.serialize(
            JSONRPC.error(id: .null, code: UnavailableAnswer.code, message: message, data: .object(data)))
        var head = "HTTP/1.1 503 Service Unavailable\r\n"
        head += "Content-Type: application/json\r\n"
        head += "Content-Length: \(body.count)\r\n"
        if let retryAfter { head += "Retry-After: \(retryAfter)\r\n" }
        head += "Cache-Control: no-store\r\n"
        head += "Connection: close\r\n\r\n"
        return Array(head.utf8) + body
    }
}
