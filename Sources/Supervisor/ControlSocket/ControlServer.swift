import Contracts
import Dispatch
import Logging
import MCPProtocol
import StructuredLog
import SupervisorCore

#if canImport(Glibc)
    import Glibc
#endif

/// The admin control socket: a Unix stream socket speaking JSON-RPC 2.0, one message per line (docs/mcpctl.md).
/// Methods, parameters, results, error codes and limits are Contracts' (`ControlMethod`, `ControlErrorCode`, …),
/// which mcpctl uses too.
///
/// Everything runs on the supervisor's queue, and nothing there blocks on a client: the listening socket and every
/// client are non-blocking with Dispatch read sources; answers go to a per-client output buffer written as the
/// socket accepts it (a write source while it is full). A client that goes away mid-request leaves nothing behind.
/// Callers are identified by SO_PEERCRED and SO_PEERGROUPS: root, the supervisor's own uid and members of
/// `control_group` may change things; everyone else may only read.
public final class ControlServer: @unchecked Sendable {
    // @unchecked: every mutable property is touched only on the supervisor's queue.
    static let maxLineBytes = ControlProtocol.maxLineBytes
    static let maxClients = ControlProtocol.maxClients
    static let maxPendingOutput = ControlProtocol.maxPendingOutput
    typealias Code = ControlErrorCode

    let supervisor: Supervisor
    private var queue: DispatchQueue { supervisor.queue }
    private var log: SupervisorLog { supervisor.log }

    /// A line about the control socket itself (who asked what, and the socket's own troubles).
    private func note(_ message: String, level: Logger.Level = .info, fields: Logger.Metadata = [:]) {
        log.event(level, LogEventName.control, message: "control: " + message, fields: fields)
    }
    /// The socket's path once `open()` ran.
    public private(set) var path = ""
    private var groupName: String?
    private var groupID: gid_t?
    /// `control_read_group`: when set, reading needs it too (or admin rights), and the socket file is 0666.
    private var readGroupName: String?
    private var readGroupID: gid_t?
    private var listenSource: DispatchSourceRead?
    private var clients: [Int: Client] = [:]
    private var nextClientID = 0
    private var created = false
    /// The socket listens (`open()` succeeded).
    public var isListening: Bool { listenSource != nil }

    public init(supervisor: Supervisor) { self.supervisor = supervisor }

    // MARK: The listening socket

    /// Creates the socket (mode 0660, group `control_group`), replacing a stale one. Call on the queue, after
    /// `Supervisor.start()`. A failure is logged and leaves the supervisor running without a control socket.
    public func open() {
        dispatchPrecondition(condition: .onQueue(queue))
        let cfg = supervisor.config
        path = cfg.controlSocket ?? Path.join(cfg.stateDirectory, ControlProtocol.socketFileName)
        groupName = cfg.controlGroup
        if let g = groupName {
            if let gr = getgrnam(g) {
                groupID = gr.pointee.gr_gid
            } else {
                note(
                    "warning: control_group '\(g)' does not exist; only root and uid \(getuid()) may change servers",
                    level: .warning)
            }
        }
        readGroupName = cfg.controlReadGroup
        if let g = readGroupName {
            if let gr = getgrnam(g) {
                readGroupID = gr.pointee.gr_gid
            } else {
                note(
                    "warning: control_read_group '\(g)' does not exist; only admins may read status", level: .warning)
            }
        }
        guard let addr = UnixSocketAddress.make(path) else {
            note("cannot use \(path): longer than \(UnixSocketAddress.maxPathBytes) bytes", level: .error)
            return
        }
        var st = stat()
        if lstat(path, &st) == 0 {
            guard st.st_mode & 0o170000 == 0o140000 else {
                note("\(path) exists and is not a socket; no control socket", level: .error)
                return
            }
            if Self.someoneListens(addr) {
                note("another process listens on \(path); no control socket", level: .error)
                return
            }
            unlink(path)  // stale: left by a supervisor that did not exit cleanly
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            note("cannot create a socket: \(String(cString: strerror(errno)))", level: .error)
            return
        }
        // Never accessible beyond 0660, not even between bind and chmod.
        let oldMask = umask(0o177)
        let rc = UnixSocketAddress.withSockaddr(addr) { bind(fd, $0, $1) }
        let bindErrno = errno
        umask(oldMask)
        guard rc == 0 else {
            note("cannot bind \(path): \(String(cString: strerror(bindErrno)))", level: .error)
            Glibc.close(fd)
            return
        }
        created = true
        if let gid = groupID, chown(path, uid_t.max, gid) != 0 {
            note(
                "cannot give \(path) to group \(groupName ?? ""): \(String(cString: strerror(errno)))", level: .warning)
        }
        // With a read group, every local user may connect and each call is checked by the caller's groups.
        _ = chmod(path, readGroupName != nil ? 0o666 : 0o660)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        guard listen(fd, 128) == 0 else {
            note("cannot listen on \(path): \(String(cString: strerror(errno)))", level: .error)
            Glibc.close(fd)
            unlink(path)
            created = false
            return
        }
        let s = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        s.setEventHandler { [unowned self] in self.acceptAll(fd) }
        s.setCancelHandler { Glibc.close(fd) }
        s.resume()
        listenSource = s
        note("listening on \(path)" + (groupName.map { " (group \($0))" } ?? ""), fields: ["path": .string(path)])
    }

    /// Out of descriptors: the waiting connection keeps the socket readable, so accepting again at once would spin
    /// the queue until one frees. Pause 100 ms (the waiting clients stay in the backlog), then try again; logged
    /// once per episode.
    private func pauseAccepting() {
        guard let source = listenSource, !acceptPaused else { return }
        acceptPaused = true
        source.suspend()
        if !warnedOutOfDescriptors {
            warnedOutOfDescriptors = true
            note(
                "cannot accept a control connection: \(String(cString: strerror(errno))); retrying every 100 ms",
                level: .warning)
        }
        queue.asyncAfter(deadline: .now() + .milliseconds(100)) { [weak self] in
            guard let self, self.acceptPaused else { return }
            self.acceptPaused = false
            self.listenSource?.resume()
        }
    }

    private var acceptPaused = false
    private var warnedOutOfDescriptors = false

    /// Closes every client and the socket, and removes the socket file. Call on the queue at exit.
    public func close() {
        dispatchPrecondition(condition: .onQueue(queue))
        for client in Array(clients.values) { drop(client) }
        if acceptPaused {
            acceptPaused = false
            listenSource?.resume()  // a suspended source must be resumed to be cancelled
        }
        listenSource?.cancel()
        listenSource = nil
        if created { unlink(path) }
        created = false
    }

    private static func someoneListens(_ addr: sockaddr_un) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { Glibc.close(fd) }
        return UnixSocketAddress.withSockaddr(addr) { connect(fd, $0, $1) } == 0
    }

    private func acceptAll(_ listenFD: Int32) {
        while true {
            let fd = accept(listenFD, nil, nil)
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                if errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM { pauseAccepting() }
                return  // EAGAIN: nothing waiting
            }
            warnedOutOfDescriptors = false
            // (Children never inherit it either way: the spawn shim closes every descriptor it does not map.)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            guard clients.count < Self.maxClients else {
                let msg = JSONRPC.error(
                    id: nil, code: Code.tooManyClients,
                    message: "too many control connections (at most \(Self.maxClients)); try again later")
                let line = JSONWriter.serialize(msg) + [0x0A]
                _ = line.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                Glibc.close(fd)
                note("refused a connection: \(Self.maxClients) clients already connected", level: .warning)
                continue
            }
            nextClientID += 1
            let client = Client(id: nextClientID, fd: fd, peer: Self.peer(fd))
            client.descendant = Self.isDescendant(client.peer.pid)
            client.admin = !client.descendant && isAdmin(client.peer)
            client.reader = client.admin || (!client.descendant && isReader(client.peer))
            clients[client.id] = client
            let rs = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
            rs.setEventHandler { [unowned self, weak client] in if let client { self.readAvailable(client) } }
            rs.setCancelHandler { [unowned self] in self.release(client) }
            client.sources += 1
            client.readSource = rs
            rs.resume()
        }
    }

    // MARK: Who is calling

    struct Peer {
        var pid: Int32 = 0
        var uid: uid_t = uid_t.max
        var gid: gid_t = gid_t.max
        var groups: [gid_t] = []
    }

    private static func peer(_ fd: Int32) -> Peer {
        var p = Peer()
        var cred: (Int32, UInt32, UInt32) = (0, UInt32.max, UInt32.max)  // struct ucred: pid, uid, gid
        var len = socklen_t(MemoryLayout.size(ofValue: cred))
        if getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 {
            p.pid = cred.0
            p.uid = cred.1
            p.gid = cred.2
        }
        let soPeerGroups: Int32 = 59  // SO_PEERGROUPS (Linux 4.13)
        var groups = [gid_t](repeating: 0, count: 64)
        for _ in 0..<2 {
            var glen = socklen_t(groups.count * MemoryLayout<gid_t>.size)
            let rc = getsockopt(fd, SOL_SOCKET, soPeerGroups, &groups, &glen)
            if rc == 0 {
                p.groups = Array(groups.prefix(Int(glen) / MemoryLayout<gid_t>.size))
                break
            }
            guard errno == ERANGE else { break }
            groups = [gid_t](repeating: 0, count: Int(glen) / MemoryLayout<gid_t>.size + 1)
        }
        return p
    }

    /// A process the supervisor started, or one of theirs: its parent chain reaches the supervisor (orphans come
    /// back to it too, it is their subreaper). A plugin running as root in its box must not get an admin's rights
    /// from its uid (docs/security.md); nothing the supervisor starts needs the control socket.
    static func isDescendant(_ pid: Int32) -> Bool {
        let me = getpid()
        var current = pid
        for _ in 0..<64 {
            guard current > 1, current != me else { return current == me && pid != me }
            guard let parent = parentPID(current) else { return false }
            current = parent
        }
        return false
    }

    /// Field 4 of /proc/PID/stat (after the command name in parentheses, which may hold anything).
    private static func parentPID(_ pid: Int32) -> Int32? {
        let fd = Glibc.open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var buf = [UInt8](repeating: 0, count: 512)
        let n = read(fd, &buf, buf.count)
        guard n > 0, let close = buf[0..<n].lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = buf[(close + 1)..<n].split(separator: UInt8(ascii: " "))
        guard fields.count > 1 else { return nil }
        return Int32(String(decoding: fields[1], as: UTF8.self))
    }

    /// May read: everyone who can connect, unless `control_read_group` is set; then its members.
    private func isReader(_ p: Peer) -> Bool {
        guard readGroupName != nil else { return true }
        guard let g = readGroupID else { return false }
        return p.gid == g || p.groups.contains(g)
    }

    private func isAdmin(_ p: Peer) -> Bool {
        if p.uid == 0 || p.uid == getuid() { return true }
        guard let g = groupID else { return false }
        return p.gid == g || p.groups.contains(g)
    }

    // MARK: Clients

    final class Client {
        let id: Int
        let fd: Int32
        let peer: Peer
        var admin = false
        var reader = false
        /// Started by the supervisor (`isDescendant`): refused everything.
        var descendant = false
        var input = LineFramer(maxLineBytes: ControlServer.maxLineBytes, overflow: .reject)
        var output: [UInt8] = []
        var readSource: DispatchSourceRead?
        var writeSource: DispatchSourceWrite?
        /// Live Dispatch sources on `fd`: it is closed when the last one is cancelled.
        var sources = 0
        var closed = false
        var closeAfterFlush = false
        var follows: [(server: String, id: Int)] = []

        init(id: Int, fd: Int32, peer: Peer) {
            self.id = id
            self.fd = fd
            self.peer = peer
        }
    }

    private func release(_ client: Client) {
        client.sources -= 1
        if client.sources == 0 && client.closed { Glibc.close(client.fd) }
    }

    /// Forgets a client at once: sources cancelled (the fd closes with the last), buffers and follows dropped.
    private func drop(_ client: Client) {
        guard !client.closed else { return }
        client.closed = true
        unfollowAll(client)
        client.readSource?.cancel()
        client.readSource = nil
        client.writeSource?.cancel()
        client.writeSource = nil
        client.input = LineFramer(maxLineBytes: Self.maxLineBytes, overflow: .reject)
        client.output = []
        clients[client.id] = nil
        if client.sources == 0 { Glibc.close(client.fd) }
    }

    private func unfollowAll(_ client: Client) {
        for f in client.follows { supervisor.logTap.unfollow(f.server, f.id) }
        client.follows = []
    }

    /// No more reading: answer what is queued, then close.
    private func finishAfterFlush(_ client: Client) {
        client.closeAfterFlush = true
        unfollowAll(client)
        client.readSource?.cancel()
        client.readSource = nil
        client.input = LineFramer(maxLineBytes: Self.maxLineBytes, overflow: .reject)
        if client.output.isEmpty { drop(client) }
    }

    private func readAvailable(_ client: Client) {
        var buf = [UInt8](repeating: 0, count: 65536)
        while !client.closed && !client.closeAfterFlush {
            let n = read(client.fd, &buf, buf.count)
            if n > 0 {
                client.input.append(buf[0..<n])
                processLines(client)
                continue
            }
            if n == 0 {
                // End of input: a last line without a newline still gets its answer (if the peer still reads).
                if let line = client.input.finish() { handleLine(client, line[...]) }
                if !client.closed { finishAfterFlush(client) }
                return
            }
            if errno == EINTR { continue }
            if errno != EAGAIN && errno != EWOULDBLOCK { drop(client) }
            return
        }
    }

    private func processLines(_ client: Client) {
        while !client.closed && !client.closeAfterFlush, let frame = client.input.next() {
            switch frame {
            case .line(let line): handleLine(client, line[...])
            case .tooLong:
                tooLong(client)
                return
            }
        }
    }

    private func tooLong(_ client: Client) {
        note(
            "uid \(client.peer.uid) (pid \(client.peer.pid)) sent a line over \(Self.maxLineBytes) bytes; closing",
            level: .warning)
        send(
            client,
            JSONRPC.error(
                id: nil, code: Code.lineTooLong,
                message: "request line longer than \(Self.maxLineBytes) bytes; closing the connection"))
        if !client.closed { finishAfterFlush(client) }
    }

    // MARK: Output

    private func send(_ client: Client, _ message: JSONValue) {
        guard !client.closed else { return }
        client.output += JSONWriter.serialize(message)
        client.output.append(0x0A)
        if client.output.count > Self.maxPendingOutput {
            // A reader that does not keep up (a stalled `logs --follow`) is cut off, never waited for.
            note("uid \(client.peer.uid) (pid \(client.peer.pid)) does not read its answers; closing", level: .warning)
            drop(client)
            return
        }
        if client.writeSource == nil { flush(client) }
    }

    private func flush(_ client: Client) {
        var sent = 0
        while sent < client.output.count {
            let n = client.output[sent...].withUnsafeBytes {
                Glibc.send(client.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if n > 0 {
                sent += n
                continue
            }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                client.output.removeSubrange(0..<sent)
                if client.writeSource == nil {
                    let ws = DispatchSource.makeWriteSource(fileDescriptor: client.fd, queue: queue)
                    ws.setEventHandler { [unowned self, weak client] in
                        if let client, !client.closed { self.flush(client) }
                    }
                    ws.setCancelHandler { [unowned self] in self.release(client) }
                    client.sources += 1
                    client.writeSource = ws
                    ws.resume()
                }
                return
            }
            drop(client)  // the peer is gone
            return
        }
        client.output.removeAll(keepingCapacity: client.output.count < 65536)
        client.writeSource?.cancel()
        client.writeSource = nil
        if client.closeAfterFlush { drop(client) }
    }

    // MARK: Requests

    private func handleLine(_ client: Client, _ raw: ArraySlice<UInt8>) {
        var line = raw
        while let last = line.last, last == 0x0D || last == 0x20 || last == 0x09 { line = line.dropLast() }
        guard line.contains(where: { $0 != 0x20 && $0 != 0x09 }) else { return }
        let value: JSONValue
        do { value = try JSONParser.parse(line) } catch {
            send(client, JSONRPC.error(id: nil, code: JSONRPC.parseError, message: "parse error: \(error)"))
            return
        }
        switch JSONRPC.decode(value) {
        case .request(let id, let method, let params):
            // Most methods answer at once; `health` answers when its probes end (each bounded by the server's
            // health timeout) while the supervisor and this client's other requests go on.
            let answer = { [weak self, weak client] (result: Result<JSONValue, CallError>) in
                guard let self else { return }
                self.supervisor.metrics.controlRequest(method: method, result: Self.metricsResult(result))
                guard let client, !client.closed else { return }  // the client left: nothing to answer
                switch result {
                case .success(let result):
                    self.send(client, JSONRPC.result(id: id, result))
                    if method == ControlMethod.logs.rawValue, let p = try? LogsParams.decode(params), p.follow {
                        self.startFollowing(client, p.server)
                    }
                case .failure(let e):
                    self.send(client, JSONRPC.error(id: id, code: e.code, message: e.message, data: e.data))
                }
            }
            if let now = call(client, method, params, later: answer) { answer(now) }
        case .notification:
            break  // nothing to answer
        case .batch:
            send(client, JSONRPC.error(id: nil, code: JSONRPC.invalidRequest, message: "batches are not supported"))
        case .response:
            send(client, JSONRPC.error(id: nil, code: JSONRPC.invalidRequest, message: "unexpected response"))
        case .invalid(let reason, let id):
            send(client, JSONRPC.error(id: id, code: JSONRPC.invalidRequest, message: "invalid request: \(reason)"))
        }
    }

    /// A request's `result` label in `mcp_supervisor_control_requests_total`.
    private static func metricsResult(_ result: Result<JSONValue, CallError>) -> SupervisorMetrics.ControlResult {
        switch result {
        case .success: return .ok
        case .failure(let e): return e.code == Code.permissionDenied ? .denied : .error
        }
    }

    struct CallError: Error {
        var code: Int64
        var message: String
        var data: JSONValue? = nil

        static func params(_ e: ControlParamsError) -> CallError {
            CallError(code: JSONRPC.invalidParams, message: e.message)
        }
        static let shuttingDown = CallError(code: Code.shuttingDown, message: "the supervisor is shutting down")
        static func unknown(_ name: String) -> CallError {
            CallError(code: Code.unknownServer, message: "unknown server '\(name)'")
        }
    }

    /// The answer to a request, or nil when `later` will be called with it.
    private func call(
        _ client: Client, _ name: String, _ params: [String: JSONValue],
        later: @escaping (Result<JSONValue, CallError>) -> Void
    ) -> Result<JSONValue, CallError>? {
        guard let method = ControlMethod(rawValue: name) else {
            return .failure(CallError(code: JSONRPC.methodNotFound, message: "unknown method '\(name)'"))
        }
        if client.descendant {
            note(
                "pid \(client.peer.pid) (uid \(client.peer.uid)), started by the supervisor: \(name): refused",
                level: .warning,
                fields: [
                    "uid": LogValue.of(client.peer.uid), "peer_pid": LogValue.of(client.peer.pid),
                    "method": .string(name), "allowed": LogValue.of(false),
                ])
            return .failure(
                CallError(
                    code: Code.permissionDenied,
                    message: "permission denied: the control socket does not answer processes the supervisor started"))
        }
        if !method.isChanging, !client.reader {
            let fields: Logger.Metadata = [
                "uid": LogValue.of(client.peer.uid), "peer_pid": LogValue.of(client.peer.pid), "method": .string(name),
                "allowed": LogValue.of(false),
            ]
            note("uid \(client.peer.uid) (pid \(client.peer.pid)): \(name): refused", level: .warning, fields: fields)
            let g = readGroupName ?? ""
            return .failure(
                CallError(
                    code: Code.permissionDenied,
                    message: "permission denied: \(name) needs read rights; join the group '\(g)' (control_read_group)",
                    data: [ControlKey.group: .string(g)]))
        }
        if method.isChanging {
            let who = "uid \(client.peer.uid) (pid \(client.peer.pid))"
            let server = params[ControlKey.server]?.stringValue
            let target = server.map { " \($0)" } ?? ""
            var fields: Logger.Metadata = [
                "uid": LogValue.of(client.peer.uid), "peer_pid": LogValue.of(client.peer.pid), "method": .string(name),
            ]
            if let server { fields["target"] = .string(server) }
            guard client.admin else {
                fields["allowed"] = LogValue.of(false)
                note("\(who): \(name)\(target): refused", level: .warning, fields: fields)
                let join: String
                if let g = groupName {
                    join = "join the group '\(g)' (control_group) to change servers"
                } else {
                    join = "no control_group is configured: only root and uid \(getuid()) may change servers"
                }
                return .failure(
                    CallError(
                        code: Code.permissionDenied,
                        message: "permission denied: \(name) needs admin rights; \(join)",
                        data: [ControlKey.group: groupName.map { .string($0) } ?? .null]))
            }
            fields["allowed"] = LogValue.of(true)
            note("\(who): \(name)\(target): allowed", fields: fields)
            if supervisor.shuttingDown { return .failure(.shuttingDown) }
        }
        do {
            return try answer(method, params, later: later)
        } catch {
            return .failure(.params(error))
        }
    }

    private func answer(
        _ method: ControlMethod, _ params: [String: JSONValue],
        later: @escaping (Result<JSONValue, CallError>) -> Void
    ) throws(ControlParamsError) -> Result<JSONValue, CallError>? {
        switch method {
        case .version:
            return .success(VersionResult().encode())
        case .status:
            if let name = try StatusParams.decode(params).server {
                guard let one = supervisor.statusJSON(name) else { return .failure(.unknown(name)) }
                return .success([ControlKey.servers: [one]])
            }
            return .success(supervisor.statusResult())
        case .health:
            let p = try HealthParams.decode(params)
            guard let server = supervisor.servers[p.server] else { return .failure(.unknown(p.server)) }
            supervisor.checkHealth(server, level: p.level ?? server.config.health.level) { later(.success($0)) }
            return nil
        case .ports:
            return .success(supervisor.portsJSON())
        case .logs:
            let p = try LogsParams.decode(params)
            guard supervisor.servers[p.server] != nil else { return .failure(.unknown(p.server)) }
            return .success(LogLines(server: p.server, lines: supervisor.logTap.recent(p.server, p.lines)).encode())
        case .start, .stop, .restart:
            let names = try ServerActionParams.decode(params).servers
            if let missing = names.first(where: { supervisor.servers[$0] == nil }) {
                return .failure(.unknown(missing))
            }
            var outcomes: [String: String] = [:]
            for name in names {
                let outcome: Result<String, Supervisor.ControlError>
                switch method {
                case .start: outcome = supervisor.start(server: name)
                case .stop: outcome = supervisor.stop(server: name)
                default:
                    outcome =
                        params[ControlKey.rolling] == .bool(true)
                        ? supervisor.rollingRestart(server: name) : supervisor.restart(server: name)
                }
                switch outcome {
                case .success(let what): outcomes[name] = what
                case .failure(.unknownServer(let n)): return .failure(.unknown(n))
                case .failure(.shuttingDown): return .failure(.shuttingDown)
                }
            }
            return .success(ServerActionResult(outcomes: outcomes).encode())
        case .reload:
            switch supervisor.reloadJSON() {
            case .success(let diff): return .success(diff)
            case .failure(let e):
                return .failure(
                    CallError(
                        code: Code.reloadRejected, message: "reload rejected, nothing changed: \(e)",
                        data: ReloadResult.rejectionData(file: e.file, line: e.line, key: e.key, message: e.message)))
            }
        }
    }

    private func startFollowing(_ client: Client, _ name: String) {
        guard !client.closed, !client.closeAfterFlush, supervisor.servers[name] != nil else { return }
        let id = supervisor.logTap.follow(name) { [unowned self, weak client] line in
            guard let client else { return }
            self.send(
                client,
                JSONRPC.notification(
                    method: LogLines.notificationMethod,
                    params: .object(LogLines.notificationParams(server: name, line: line))))
        }
        client.follows.append((name, id))
    }
}
