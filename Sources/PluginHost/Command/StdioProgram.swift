import CHostSupport
import Contracts
import Dispatch
import MCPProtocol
import NIOCore
import NIOExtras
import NIOPosix
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// What a command server runs (docs/servers.md): the program and its arguments, its working directory and the
/// variables it gets on top of the host's own (the supervisor's and systemd's removed).
public struct ProgramSpec: Sendable {
    public var argv: [String]
    public var workingDirectory: String?

    public init(argv: [String], workingDirectory: String? = nil) {
        self.argv = argv
        self.workingDirectory = workingDirectory
    }

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

/// The program's end, as the host saw it.
public struct ProgramExit: Sendable, CustomStringConvertible {
    public var status: Int32?
    public var signal: Int32?

    public var description: String {
        if let signal { return "was killed by signal \(signal) (\(String(cString: strsignal(signal))))" }
        return "exited with status \(status ?? -1)"
    }
}

/// An error a JSON-RPC request to the program ended with.
struct ProgramRPCError: Error, Sendable {
    var code: Int64
    var message: String
    var data: JSONValue?

    static func closed(_ why: String) -> ProgramRPCError { ProgramRPCError(code: -32603, message: why) }
}

/// One running stdio program and the newline-delimited JSON-RPC connection to it: requests the host sends (ids
/// are the host's own integers), their answers, and what the program sends unasked (requests and notifications),
/// handed to `onInbound`. The pipes are NIO pipe channels, so a program that stops reading never blocks a thread
/// of the host; lines are split by NIOExtras' `LineBasedFrameDecoder`. The program's stderr goes line by line to
/// `onStderr`. The process is reaped by a thread that waits for it.
final class StdioProgram: Sendable {
    enum Inbound: Sendable {
        case request(id: JSONValue, method: String, params: [String: JSONValue])
        case notification(method: String, params: [String: JSONValue])
    }

    let pid: pid_t
    let spec: ProgramSpec
    private let channel: Channel
    private let stderrChannel: Channel
    private let shared = Shared()
    private let exitBox = ExitBox()
    private let exitSemaphore = DispatchSemaphore(value: 0)

    private final class ExitBox: Sendable {
        let exit = Mutex<ProgramExit?>(nil)
    }

    fileprivate final class Shared: Sendable {
        let state = Mutex(State())
    }

    fileprivate struct State {
        var nextID: Int64 = 1
        var pending: [Int64: @Sendable (Result<JSONValue, ProgramRPCError>) -> Void] = [:]
        var closed: String?
        var onInbound: (@Sendable (Inbound) -> Void)?
        var onClose: (@Sendable (String) -> Void)?
    }

    /// The program's stdout lines may be this long (a tool result with images is one line).
    static let maxLineBytes = 64 << 20

    /// Starts the program. Fails with the host's exit status for the cause: not found (50), not executable (51),
    /// cannot start (52).
    init(
        _ spec: ProgramSpec, group: EventLoopGroup, onStderr: @escaping @Sendable (String) -> Void,
        onExit: @escaping @Sendable (ProgramExit) -> Void
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
        let path = try Self.resolve(name, path: environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin", in: spec)

        var stdinPipe: [Int32] = [-1, -1]
        var stdoutPipe: [Int32] = [-1, -1]
        var stderrPipe: [Int32] = [-1, -1]
        func cloexecPipe(_ fds: inout [Int32]) -> Bool {
            guard pipe(&fds) == 0 else { return false }
            return fcntl(fds[0], F_SETFD, FD_CLOEXEC) == 0 && fcntl(fds[1], F_SETFD, FD_CLOEXEC) == 0
        }
        guard cloexecPipe(&stdinPipe), cloexecPipe(&stdoutPipe), cloexecPipe(&stderrPipe) else {
            let why = String(cString: strerror(errno))
            for fd in stdinPipe + stdoutPipe + stderrPipe where fd >= 0 { close(fd) }
            throw HostFailure(.commandCannotStart, "\(spec.shown): cannot create its pipes: \(why)")
        }
        var err: Int32 = 0
        var stage: Int32 = 0
        let argv = spec.argv.map { strdup($0) } + [nil]
        let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        let pid = path.withCString { cpath in
            argv.withUnsafeBufferPointer { a in
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
            for fd in [stdinPipe[1], stdoutPipe[0], stderrPipe[0]] { close(fd) }
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
        let shared = self.shared
        do {
            channel = try NIOPipeBootstrap(group: group)
                .channelInitializer { ch in
                    ch.eventLoop.makeCompletedFuture {
                        try ch.pipeline.syncOperations.addHandlers(
                            ByteToMessageHandler(LineBasedFrameDecoder(), maximumBufferSize: Self.maxLineBytes),
                            ProgramLineHandler(shared: shared, program: spec.shown))
                    }
                }
                .takingOwnershipOfDescriptors(input: stdoutPipe[0], output: stdinPipe[1]).wait()
            stderrChannel = try NIOPipeBootstrap(group: group)
                .channelInitializer { ch in
                    ch.eventLoop.makeCompletedFuture {
                        try ch.pipeline.syncOperations.addHandlers(
                            ByteToMessageHandler(LineBasedFrameDecoder(), maximumBufferSize: 1 << 20),
                            StderrLineHandler(onLine: onStderr))
                    }
                }
                .takingOwnershipOfDescriptor(input: stderrPipe[0]).wait()
        } catch {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
            throw HostFailure(.commandCannotStart, "\(spec.shown): cannot watch its pipes: \(error)")
        }
        let exited = self.exitBox
        let semaphore = exitSemaphore
        DispatchQueue.global().async {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            let exit =
                (status & 0x7f) == 0
                ? ProgramExit(status: (status >> 8) & 0xff, signal: nil) : ProgramExit(status: nil, signal: status & 0x7f)
            exited.exit.withLock { $0 = exit }
            semaphore.signal()
            onExit(exit)
        }
    }

    /// Where `name` is: itself when it holds a '/' (relative to the working directory), else the first
    /// executable match on PATH.
    private static func resolve(_ name: String, path: String, in spec: ProgramSpec) throws(HostFailure) -> String {
        if name.contains("/") {
            var full = name
            if !name.hasPrefix("/"), let dir = spec.workingDirectory { full = dir + "/" + name }
            guard access(full, F_OK) == 0 else {
                throw HostFailure(.commandNotFound, "\(spec.shown): \(full) does not exist")
            }
            guard access(full, X_OK) == 0 else {
                throw HostFailure(.commandNotExecutable, "\(spec.shown): \(full) is not executable")
            }
            return full
        }
        var found: String?
        for dir in path.split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = (dir.isEmpty ? "." : String(dir)) + "/" + name
            var st = stat()
            guard stat(candidate, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            if access(candidate, X_OK) == 0 { return candidate }
            found = found ?? candidate
        }
        if let found {
            throw HostFailure(.commandNotExecutable, "\(spec.shown): \(found) is not executable")
        }
        throw HostFailure(.commandNotFound, "\(spec.shown): '\(name)' is not found on PATH (\(path))")
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
        let (id, closed) = shared.state.withLock { s -> (Int64, String?) in
            let id = reserved ?? s.nextID
            if reserved == nil { s.nextID += 1 }
            if s.closed == nil { s.pending[id] = done }
            return (id, s.closed)
        }
        if let closed {
            done(.failure(.closed(closed)))
            return id
        }
        send(JSONRPC.request(id: .int(id), method: method, params: params))
        if let timeout {
            let shared = self.shared
            channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(timeout.nanoseconds))) {
                let waiting = shared.state.withLock { $0.pending.removeValue(forKey: id) }
                waiting?(.failure(ProgramRPCError(code: -32001, message: "no answer within \(timeout)")))
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

    private func send(_ message: JSONValue) {
        let bytes = JSONWriter.serialize(message) + [0x0A]
        let channel = self.channel
        channel.eventLoop.execute {
            var out = channel.allocator.buffer(capacity: bytes.count)
            out.writeBytes(bytes)
            channel.writeAndFlush(out, promise: nil)
        }
    }

    /// The exit, once the program has ended and been reaped.
    var exit: ProgramExit? { exitBox.exit.withLock { $0 } }

    /// Ends the program: its stdin closes (most stdio servers exit on EOF), then SIGTERM after `grace`, then
    /// SIGKILL after as long again; returns once it is reaped.
    func terminate(grace: Duration) {
        channel.close(mode: .output, promise: nil)
        if exitSemaphore.wait(timeout: .now() + .nanoseconds(Int(grace.nanoseconds))) == .success {
            exitSemaphore.signal()
            return
        }
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

/// Reads the program's stdout: answers to the host's requests, and requests and notifications of its own.
private final class ProgramLineHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let shared: StdioProgram.Shared
    private let program: String

    init(shared: StdioProgram.Shared, program: String) {
        self.shared = shared
        self.program = program
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let line = unwrapInboundIn(data)
        guard line.readableBytes > 0 else { return }
        guard let value = try? JSONParser.parse(line.readableBytesView) else {
            let text = String(decoding: line.readableBytesView.prefix(200), as: UTF8.self)
            inbound(.notification(method: "$/nonjson", params: ["line": .string(text)]))
            return
        }
        switch JSONRPC.decode(value) {
        case .response(let id, let result, let error):
            guard let n = id.intValue else { return }
            let waiting = shared.state.withLock { $0.pending.removeValue(forKey: n) }
            if let error {
                waiting?(
                    .failure(
                        ProgramRPCError(
                            code: error["code"]?.intValue ?? -32603,
                            message: error["message"]?.stringValue ?? "the program answered with an error",
                            data: error["data"])))
            } else {
                waiting?(.success(result ?? .null))
            }
        case .request(let id, let method, let params):
            inbound(.request(id: id, method: method, params: params))
        case .notification(let method, let params):
            inbound(.notification(method: method, params: params))
        case .batch, .invalid:
            let text = String(decoding: line.readableBytesView.prefix(200), as: UTF8.self)
            inbound(.notification(method: "$/nonjson", params: ["line": .string(text)]))
        }
    }

    private func inbound(_ message: StdioProgram.Inbound) {
        shared.state.withLock { $0.onInbound }?(message)
    }

    private func close(_ why: String) {
        let (waiting, onClose) = shared.state.withLock { s -> ([@Sendable (Result<JSONValue, ProgramRPCError>) -> Void], (@Sendable (String) -> Void)?) in
            guard s.closed == nil else { return ([], nil) }
            s.closed = why
            defer { s.pending = [:] }
            return (Array(s.pending.values), s.onClose)
        }
        for w in waiting { w(.failure(.closed(why))) }
        onClose?(why)
    }

    func channelInactive(context: ChannelHandlerContext) {
        close("the program closed its standard output")
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        close("the program's output cannot be read: \(error)")
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .inputClosed = event as? ChannelEvent {
            close("the program closed its standard output")
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
