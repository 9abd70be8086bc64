import CHostSupport
import Contracts
import Dispatch
import Locking
import MCPProtocol
import NIOCore
import NIOExtras
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

/// What a command server runs (docs/servers.md): the program and its arguments, its working directory and the
/// variables it gets on top of the host's own (the supervisor's and systemd's removed).
public struct ProgramSpec: Sendable {
    public var argv: [String]
    public var workingDirectory: String?
    public var transport: ProgramTransport

    public init(argv: [String], workingDirectory: String? = nil, transport: ProgramTransport = .stdio) {
        self.argv = argv
        self.workingDirectory = workingDirectory
        self.transport = transport
    }

    /// The placeholder in an http program's arguments (or variables) that becomes its private loopback port.
    public static let portPlaceholder = "{port}"

    /// The command as an admin wrote it, for messages.
    public var shown: String { argv.map { $0.contains(" ") ? "'\($0)'" : $0 }.joined(separator: " ") }

    /// Variables a program never inherits: the supervisor's (listening socket, control channel, requestState key,
    /// box) and systemd's (notify socket, socket activation, watchdog), which are the host's business.
    static func isPrivate(_ name: String) -> Bool {
        name.hasPrefix("MCP_SUPERVISOR_") || ChildEnvironment.privateNames.contains(name)
            || ["NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC", "WATCHDOG_PID"]
                .contains(name)
    }
}

/// How the host talks to a command server's program.
public enum ProgramTransport: Sendable, Equatable {
    /// Newline-delimited JSON-RPC on its stdin and stdout.
    case stdio
    /// Streamable HTTP at `http://127.0.0.1:{port}<path>`, on a loopback port the host picks.
    case http(path: String)
}

/// The program's end, as the host saw it.
public struct ProgramExit: Sendable, CustomStringConvertible {
    public var status: Int32?
    public var signal: Int32?

    public var description: String {
        if let signal { return "was killed by signal \(signal) (\(String(cString: strsignal(signal))))" }
        return "exited with status \(status ?? -1)"
    }
}

/// What waits for a request's answer: the result, and the answer's length in bytes when known.
typealias Waiting = @Sendable (Result<JSONValue, ProgramRPCError>, Int?) -> Void

/// An error a JSON-RPC request to the program ended with.
struct ProgramRPCError: Error, Sendable {
    /// A JSON-RPC response as its request's outcome: the `result`, or the `error` object as a ProgramRPCError.
    static func outcome(result: JSONValue?, error: JSONValue?, of who: String) -> Result<JSONValue, ProgramRPCError> {
        guard let error else { return .success(result ?? .null) }
        return .failure(
            ProgramRPCError(
                code: error["code"]?.intValue ?? -32603,
                message: error["message"]?.stringValue ?? "\(who) answered with an error", data: error["data"]))
    }

    var code: Int64
    var message: String
    var data: JSONValue?
    /// The request provably never reached the server (no connection, the connection failed before the request
    /// was written, or the server refused it unread with 503): the gateway may send it again (docs/gateway.md).
    var unsent = false
    /// The error is the connection's (closed, reset, timed out), not an answer the server sent.
    var transport = false

    static func closed(_ why: String, unsent: Bool = false) -> ProgramRPCError {
        ProgramRPCError(code: -32603, message: why, unsent: unsent, transport: true)
    }
}

/// One running program and the JSON-RPC connection to it: requests the host sends (ids are the host's own
/// integers), their answers, and what the program sends unasked (requests and notifications), handed to
/// `onInbound`. For stdio the messages are lines on its stdin and stdout, NIO pipe channels (a program that stops
/// reading never blocks a thread of the host) split by NIOExtras' `LineBasedFrameDecoder`; for http they are
/// POSTs and SSE events (HTTPProgramClient) and its stdout is a log like its stderr, which goes line by line to
/// `onStderr`. The process is reaped by a thread that waits for it.
final class RunningProgram: Sendable {
    enum Inbound: Sendable {
        case request(id: JSONValue, method: String, params: [String: JSONValue])
        case notification(method: String, params: [String: JSONValue])
    }

    let pid: pid_t
    let spec: ProgramSpec
    /// The stdio connection (stdin and stdout), or nil for http.
    private let channel: Channel?
    private let outputChannels: [Channel]
    private let http: HTTPProgramClient?
    private let loop: EventLoop
    private let shared = Shared()
    private let exitBox = ExitBox()
    private let exitSemaphore = DispatchSemaphore(value: 0)

    private final class ExitBox: Sendable {
        let exit = Locked<ProgramExit?>(nil)
    }

    fileprivate final class Shared: Sendable {
        let state = Locked(State())

        /// One message from the program: an answer goes to its request, the rest to `onInbound`. `size` is the
        /// message's length as received (nil when it came inside a batch).
        func receive(_ value: JSONValue, size: Int?) {
            switch JSONRPC.decode(value) {
            case .response(let id, let result, let error):
                guard let n = id.intValue else { return }
                let waiting = state.withLock { $0.pending.removeValue(forKey: n) }
                waiting?(ProgramRPCError.outcome(result: result, error: error, of: "the program"), size)
            case .request(let id, let method, let params):
                inbound(.request(id: id, method: method, params: params))
            case .notification(let method, let params):
                inbound(.notification(method: method, params: params))
            case .batch, .invalid:
                unparsable(String(decoding: JSONWriter.serialize(value).prefix(200), as: UTF8.self))
            }
        }

        /// What the program sent that is not JSON-RPC (logged by the bridge).
        func unparsable(_ text: String) { inbound(.notification(method: "$/nonjson", params: ["line": .string(text)])) }

        private func inbound(_ message: Inbound) { state.withLock { $0.onInbound }?(message) }

        /// The request `id` failed on its way (http: no connection, an HTTP error).
        func fail(_ id: Int64, _ why: String) {
            state.withLock { $0.pending.removeValue(forKey: id) }?(.failure(.closed(why)), nil)
        }

        /// The connection ended: every waiting request fails with `why`, and `onClose` hears it once.
        func close(_ why: String) {
            let (waiting, onClose) = state.withLock {
                s -> ([Waiting], (@Sendable (String) -> Void)?) in
                guard s.closed == nil else { return ([], nil) }
                s.closed = why
                defer { s.pending = [:] }
                return (Array(s.pending.values), s.onClose)
            }
            for w in waiting { w(.failure(.closed(why)), nil) }
            onClose?(why)
        }
    }

    fileprivate struct State {
        var nextID: Int64 = 1
        var pending: [Int64: Waiting] = [:]
        var closed: String?
        var onInbound: (@Sendable (Inbound) -> Void)?
        var onClose: (@Sendable (String) -> Void)?
    }

    /// The program's stdout lines may be this long (a tool result with images is one line).
    static let maxLineBytes = 64 << 20

    /// Starts the program. Fails with the host's exit status for the cause: not found (50), not executable (51),
    /// cannot start (52).
    init(
        _ spec: ProgramSpec, group: EventLoopGroup, connectWithin: Duration = .seconds(30),
        onStderr: @escaping @Sendable (String) -> Void, onExit: @escaping @Sendable (ProgramExit) -> Void
    ) throws(HostFailure) {
        self.spec = spec
        guard let name = spec.argv.first, !name.isEmpty else {
            throw HostFailure(.commandNotFound, "the command is empty")
        }
        var environment: [String: String] = [:]
        var e = environ
        while let p = e.pointee {
            let entry = String(cString: p)
            if let eq = entry.firstIndex(of: "=") {
                let key = String(entry[..<eq])
                if !ProgramSpec.isPrivate(key) { environment[key] = String(entry[entry.index(after: eq)...]) }
            }
            e += 1
        }
        var argv = spec.argv
        var port = 0
        if case .http = spec.transport {
            port = try Self.freeLoopbackPort(spec)
            let text = String(port)
            argv = argv.map { $0.replacing(ProgramSpec.portPlaceholder, with: text) }
            for (key, value) in environment where value.contains(ProgramSpec.portPlaceholder) {
                environment[key] = value.replacing(ProgramSpec.portPlaceholder, with: text)
            }
        }
        let path = try Self.resolve(name, path: environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin", in: spec)

        var stdinPipe: [Int32] = [-1, -1]
        var stdoutPipe: [Int32] = [-1, -1]
        var stderrPipe: [Int32] = [-1, -1]
        func cloexecPipe(_ fds: inout [Int32]) -> Bool {
            guard pipe(&fds) == 0 else { return false }
            return fcntl(fds[0], F_SETFD, FD_CLOEXEC) == 0 && fcntl(fds[1], F_SETFD, FD_CLOEXEC) == 0
        }
        let isStdio = spec.transport == .stdio
        // An http program reads nothing on stdin: /dev/null (a pipe left open would keep some waiting on it).
        let pipesMade: Bool
        if isStdio {
            pipesMade = cloexecPipe(&stdinPipe)
        } else {
            stdinPipe[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)
            pipesMade = stdinPipe[0] >= 0
        }
        guard pipesMade, cloexecPipe(&stdoutPipe), cloexecPipe(&stderrPipe) else {
            let why = String(cString: strerror(errno))
            for fd in stdinPipe + stdoutPipe + stderrPipe where fd >= 0 { close(fd) }
            throw HostFailure(.commandCannotStart, "\(spec.shown): cannot create its pipes: \(why)")
        }
        var err: Int32 = 0
        var stage: Int32 = 0
        let cArgv = argv.map { strdup($0) } + [nil]
        let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in cArgv { free(p) }
            for p in envp { free(p) }
        }
        let pid = path.withCString { cpath in
            cArgv.withUnsafeBufferPointer { a in
                envp.withUnsafeBufferPointer { en in
                    mcph_spawn_program(
                        cpath, a.baseAddress, en.baseAddress, spec.workingDirectory, stdinPipe[0], stdoutPipe[1],
                        stderrPipe[1], &err, &stage)
                }
            }
        }
        close(stdinPipe[0])
        close(stdoutPipe[1])
        close(stderrPipe[1])
        guard pid > 0 else {
            for fd in [stdinPipe[1], stdoutPipe[0], stderrPipe[0]] where fd >= 0 { close(fd) }
            let why = String(cString: strerror(err))
            switch stage {
            case MCPH_SPAWN_CHDIR:
                throw HostFailure(
                    .commandCannotStart,
                    "\(spec.shown): cannot enter its working directory \(spec.workingDirectory ?? ""): \(why)")
            case MCPH_SPAWN_EXEC where err == ENOENT:
                throw HostFailure(.commandNotFound, "\(spec.shown): \(path) cannot be run: \(why) (its interpreter?)")
            case MCPH_SPAWN_EXEC:
                throw HostFailure(.commandNotExecutable, "\(spec.shown): \(path) is not executable: \(why)")
            default:
                throw HostFailure(.commandCannotStart, "\(spec.shown): cannot start: \(why)")
            }
        }
        self.pid = pid
        loop = group.next()
        let shared = self.shared
        func lines(_ fd: Int32) throws -> Channel {
            try NIOPipeBootstrap(group: group)
                .channelInitializer { ch in
                    ch.eventLoop.makeCompletedFuture {
                        try ch.pipeline.syncOperations.addHandlers(
                            ByteToMessageHandler(LineBasedFrameDecoder(), maximumBufferSize: 1 << 20),
                            StderrLineHandler(onLine: onStderr))
                    }
                }
                .takingOwnershipOfDescriptor(input: fd).wait()
        }
        do {
            if isStdio {
                channel = try NIOPipeBootstrap(group: group)
                    .channelInitializer { ch in
                        ch.eventLoop.makeCompletedFuture {
                            try ch.pipeline.syncOperations.addHandlers(
                                ByteToMessageHandler(LineBasedFrameDecoder(), maximumBufferSize: Self.maxLineBytes),
                                ProgramLineHandler(shared: shared))
                        }
                    }
                    .takingOwnershipOfDescriptors(input: stdoutPipe[0], output: stdinPipe[1]).wait()
                outputChannels = [try lines(stderrPipe[0])]
                http = nil
            } else {
                channel = nil
                outputChannels = [try lines(stdoutPipe[0]), try lines(stderrPipe[0])]
                if case .http(let endpoint) = spec.transport {
                    http = HTTPProgramClient(
                        group: group, port: port, path: endpoint, connectWithin: connectWithin,
                        deliver: { shared.receive($0, size: $1) }, failed: { id, why, _ in shared.fail(id, why) })
                } else {
                    http = nil
                }
            }
        } catch {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
            throw HostFailure(.commandCannotStart, "\(spec.shown): cannot watch its pipes: \(error)")
        }
        let client = http
        let exited = self.exitBox
        let semaphore = exitSemaphore
        DispatchQueue.global().async {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            let exit =
                (status & 0x7f) == 0
                ? ProgramExit(status: (status >> 8) & 0xff, signal: nil)
                : ProgramExit(status: nil, signal: status & 0x7f)
            exited.exit.withLock { $0 = exit }
            semaphore.signal()
            if let client {
                client.close()
                shared.close("the program \(exit)")
            }
            onExit(exit)
        }
    }

    /// Where `name` is (ProgramLookup, the lookup the supervisor's box uses too), or the failure naming why not.
    private static func resolve(_ name: String, path: String, in spec: ProgramSpec) throws(HostFailure) -> String {
        switch ProgramLookup.find(name, searchPath: path, workingDirectory: spec.workingDirectory) {
        case .executable(let full): return full
        case .missing(let full): throw HostFailure(.commandNotFound, "\(spec.shown): \(full) does not exist")
        case .notExecutable(let full):
            throw HostFailure(.commandNotExecutable, "\(spec.shown): \(full) is not executable")
        case .notOnPath:
            throw HostFailure(.commandNotFound, "\(spec.shown): '\(name)' is not found on PATH (\(path))")
        }
    }

    /// Receives what the program sends unasked, and the reason when the connection ends (EOF, or a broken line).
    func start(onInbound: @escaping @Sendable (Inbound) -> Void, onClose: @escaping @Sendable (String) -> Void) {
        let closedAlready = shared.state.withLock { s -> String? in
            s.onInbound = onInbound
            s.onClose = onClose
            return s.closed
        }
        if let closedAlready { onClose(closedAlready) }
    }

    /// Sends a request; `done` runs once with the result or the error (the program's, a timeout, or the
    /// connection's end). Returns the request's id.
    @discardableResult
    func request(
        _ method: String, _ params: JSONValue, timeout: Duration? = nil, id reserved: Int64? = nil,
        _ done: @escaping @Sendable (Result<JSONValue, ProgramRPCError>) -> Void
    ) -> Int64 {
        request(method, params, timeout: timeout, id: reserved, sized: { result, _ in done(result) })
    }

    /// As `request`, and `done` also hears the answer's length in bytes as the program sent it (nil if that is
    /// not known: an answer inside a batch, or no answer).
    @discardableResult
    func request(
        _ method: String, _ params: JSONValue, timeout: Duration? = nil, id reserved: Int64? = nil,
        sized done: @escaping Waiting
    ) -> Int64 {
        let (id, closed) = shared.state.withLock { s -> (Int64, String?) in
            let id = reserved ?? s.nextID
            if reserved == nil { s.nextID += 1 }
            if s.closed == nil { s.pending[id] = done }
            return (id, s.closed)
        }
        if let closed {
            done(.failure(.closed(closed)), nil)
            return id
        }
        send(JSONRPC.request(id: .int(id), method: method, params: params), requestID: id)
        if let timeout {
            let shared = self.shared
            loop.scheduleTask(in: .nanoseconds(Int64(timeout.nanoseconds))) {
                let waiting = shared.state.withLock { $0.pending.removeValue(forKey: id) }
                waiting?(.failure(ProgramRPCError(code: -32001, message: "no answer within \(timeout)")), nil)
            }
        }
        return id
    }

    /// An id for a request sent later (`request(..., id:)`), or for anything else that needs a unique number.
    func reserveID() -> Int64 {
        shared.state.withLock { s in
            defer { s.nextID += 1 }
            return s.nextID
        }
    }

    /// Forgets a request (its answer, if one comes, is dropped).
    func forget(_ id: Int64) { _ = shared.state.withLock { $0.pending.removeValue(forKey: id) } }

    var pendingCount: Int { shared.state.withLock { $0.pending.count } }

    func notify(_ method: String, _ params: JSONValue) { send(JSONRPC.notification(method: method, params: params)) }

    func respond(_ id: JSONValue, result: JSONValue) { send(JSONRPC.result(id: id, result)) }

    func respond(_ id: JSONValue, error: ProgramRPCError) {
        send(JSONRPC.error(id: id, code: error.code, message: error.message, data: error.data))
    }

    private func send(_ message: JSONValue, requestID: Int64? = nil) {
        if let http {
            http.post(message, requestID: requestID)
            return
        }
        guard let channel else { return }
        let bytes = JSONWriter.serialize(message) + [0x0A]
        channel.eventLoop.execute {
            var out = channel.allocator.buffer(capacity: bytes.count)
            out.writeBytes(bytes)
            channel.writeAndFlush(out, promise: nil)
        }
    }

    /// After `initialize`: an http program's session carries the agreed revision from now on, and its GET stream
    /// opens for what it sends outside a request.
    func initialized(protocolVersion: String) {
        guard let http else { return }
        http.agreed(protocolVersion: protocolVersion)
        http.openListenStream()
    }

    /// False for an http program that has not accepted a connection yet (always true for stdio).
    var reached: Bool { http?.reached ?? true }

    /// The http program's private loopback port (0 for stdio).
    var httpPort: Int { http?.port ?? 0 }

    /// A loopback port nothing listens on now, for an http program (the kernel's choice of an ephemeral port).
    private static func freeLoopbackPort(_ spec: ProgramSpec) throws(HostFailure) -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            throw HostFailure(
                .commandCannotStart, "\(spec.shown): no socket for its port: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bind(fd, sa, len) == 0 && getsockname(fd, sa, &len) == 0
            }
        }
        guard ok else {
            throw HostFailure(
                .commandCannotStart, "\(spec.shown): no loopback port for it: \(String(cString: strerror(errno)))")
        }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// The exit, once the program has ended and been reaped.
    var exit: ProgramExit? { exitBox.exit.withLock { $0 } }

    /// Ends the program: its stdin closes (most stdio servers exit on EOF; an http program gets SIGTERM at once),
    /// then SIGTERM after `grace`, then SIGKILL after as long again; returns once it is reaped.
    func terminate(grace: Duration) {
        if let channel {
            channel.close(mode: .output, promise: nil)
            if exitSemaphore.wait(timeout: .now() + .nanoseconds(Int(grace.nanoseconds))) == .success {
                exitSemaphore.signal()
                return
            }
        }
        http?.close()
        kill(pid, SIGTERM)
        if exitSemaphore.wait(timeout: .now() + .nanoseconds(Int(grace.nanoseconds))) == .success {
            exitSemaphore.signal()
            return
        }
        kill(pid, SIGKILL)
        exitSemaphore.wait()
        exitSemaphore.signal()
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (s, atto) = components
        return s * 1_000_000_000 + atto / 1_000_000_000
    }
}

/// Reads a stdio program's stdout: answers to the host's requests, and requests and notifications of its own.
private final class ProgramLineHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let shared: RunningProgram.Shared

    init(shared: RunningProgram.Shared) { self.shared = shared }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let line = unwrapInboundIn(data)
        guard line.readableBytes > 0 else { return }
        guard let value = try? JSONParser.parse(line.readableBytesView) else {
            shared.unparsable(String(decoding: line.readableBytesView.prefix(200), as: UTF8.self))
            return
        }
        shared.receive(value, size: line.readableBytes)
    }

    func channelInactive(context: ChannelHandlerContext) {
        shared.close("the program closed its standard output")
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        shared.close("the program's output cannot be read: \(error)")
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .inputClosed = event as? ChannelEvent {
            shared.close("the program closed its standard output")
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// Passes the program's stderr on, one line at a time.
private final class StderrLineHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let onLine: @Sendable (String) -> Void

    init(onLine: @escaping @Sendable (String) -> Void) { self.onLine = onLine }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var line = unwrapInboundIn(data)
        var text = line.readString(length: line.readableBytes) ?? ""
        if text.hasSuffix("\r") { text.removeLast() }
        onLine(text)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}
