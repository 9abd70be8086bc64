import CSupervisorSupport
import Contracts
import Dispatch
import MCPProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// One spawned `mcp-plugin-host`: its pid and pidfd, the supervisor's end of its control channel, and the read
/// ends of its stdout/stderr. Every source runs on the supervisor's queue. `close()` releases everything.
/// @unchecked Sendable: its state is only touched on that queue (the cgroup join hops back to it).
final class ChildProcess: @unchecked Sendable {
    let pid: Int32
    let pidfd: Int32
    private let controlFD: Int32
    private var sources: [DispatchSourceRead] = []
    private var controlFramer = LineFramer(maxLineBytes: 1 << 20, overflow: .reject)
    private var closed = false
    private var forwarders: [LogForwarder] = []
    /// Why the host gave up (its last `host.failure` line), once `close()` drained its output.
    private(set) var hostFailure: String?
    /// The cgroup join (`joinCgroups`) is still being written: the exit waits for it, so the pid it writes stays
    /// this process's (a zombie's pid is not reused until it is reaped).
    private var joinPending = false
    private var exitDeferred = false
    private var exitSource: DispatchSourceRead?
    /// Cgroup migrations wait for an RCU grace period (milliseconds): written off the supervisor's queue.
    private static let cgroupJoins = DispatchQueue(label: "mcp-supervisor.cgroup-join")

    /// Spawns a host with fd 0 = /dev/null, 1/2 = pipes to the log forwarder, 3 = the server's listening socket,
    /// 4 = a control socketpair. Handlers run on `queue`.
    static func spawn(
        executable: String, arguments: [String], environment: [String: String], listenFD: Int32, server: String,
        replica: SupervisorLog.Replica, queue: DispatchQueue, log: SupervisorLog, budgets: [LineBudget],
        cgroupProcsFiles: [String] = [], onExit: @escaping (Int32, Int32) -> Void,
        onMessage: @escaping (HostMessage) -> Void
    ) -> Result<ChildProcess, SpawnError> {
        var ctl: [Int32] = [-1, -1]
        var out: [Int32] = [-1, -1]
        var err: [Int32] = [-1, -1]
        var rc = mcps_socketpair(&ctl)
        if rc == 0 { rc = mcps_pipe(&out) }
        if rc == 0 { rc = mcps_pipe(&err) }
        let devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer {
            // The child's ends are the child's now (or nobody's, on failure).
            for fd in [ctl[1], out[1], err[1], devnull] where fd >= 0 { Glibc.close(fd) }
        }
        guard rc == 0, devnull >= 0 else {
            for fd in [ctl[0], out[0], err[0]] where fd >= 0 { Glibc.close(fd) }
            return .failure(SpawnError(message: "cannot create pipes: \(String(cString: strerror(rc)))"))
        }
        var argv = ([executable] + arguments).map { strdup($0) }
        argv.append(nil)
        var envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") }
        envp.append(nil)
        defer {
            for argument in argv { free(argument) }
            for variable in envp { free(variable) }
        }
        let src: [Int32] = [devnull, out[1], err[1], listenFD, ctl[1]]
        let dst: [Int32] = [0, 1, 2, ChildEnvironment.listenDescriptor, ChildEnvironment.controlDescriptor]
        var pid: pid_t = 0
        var pidfd: Int32 = -1
        rc = mcps_spawn(executable, &argv, &envp, src, dst, Int32(src.count), &pid, &pidfd)
        guard rc == 0 else {
            for fd in [ctl[0], out[0], err[0]] { Glibc.close(fd) }
            return .failure(SpawnError(message: "cannot start \(executable): \(String(cString: strerror(rc)))"))
        }
        _ = mcps_set_nonblocking(ctl[0])
        let child = ChildProcess(pid: pid, pidfd: pidfd, controlFD: ctl[0])
        child.watch(queue: queue, onExit: onExit, onMessage: onMessage)
        child.joinCgroups(cgroupProcsFiles, queue: queue)
        child.forwarders = [
            LogForwarder(
                fd: out[0], server: server, replica: replica, pid: pid, textLevel: .info, queue: queue, log: log,
                budgets: budgets),
            LogForwarder(
                fd: err[0], server: server, replica: replica, pid: pid, textLevel: .warning, queue: queue, log: log,
                budgets: budgets),
        ]
        return .success(child)
    }

    struct SpawnError: Error {
        var message: String
    }

    private init(pid: Int32, pidfd: Int32, controlFD: Int32) {
        self.pid = pid
        self.pidfd = pidfd
        self.controlFD = controlFD
    }

    private func watch(
        queue: DispatchQueue, onExit: @escaping (Int32, Int32) -> Void, onMessage: @escaping (HostMessage) -> Void
    ) {
        // The pidfd becomes readable when the process exits: reap it then, with waitid(P_PIDFD).
        let exit = DispatchSource.makeReadSource(fileDescriptor: pidfd, queue: queue)
        exit.setEventHandler { [unowned self] in
            var code: Int32 = 0
            var status: Int32 = 0
            if self.joinPending {
                if !self.exitDeferred {
                    self.exitDeferred = true
                    exit.suspend()
                }
                return
            }
            guard mcps_reap(self.pidfd, &code, &status) == 1 else { return }
            exit.cancel()
            onExit(code, status)
        }
        let pidfd = self.pidfd
        exit.setCancelHandler { Glibc.close(pidfd) }  // a watched descriptor closes only once its source is gone
        exit.resume()
        exitSource = exit
        let control = DispatchSource.makeReadSource(fileDescriptor: controlFD, queue: queue)
        control.setEventHandler { [unowned self] in
            var buf = [UInt8](repeating: 0, count: 4096)
            let n = read(self.controlFD, &buf, buf.count)
            if n <= 0 {
                if n == 0 || (errno != EAGAIN && errno != EINTR) { control.cancel() }
                return
            }
            self.controlFramer.append(buf[0..<n])
            while let frame = self.controlFramer.next() {
                // An over-long line is skipped (not a host speaking); the lines after it still count.
                guard case .line(let line) = frame, let value = try? JSONParser.parse(line),
                    let message = HostMessage.decode(value)
                else { continue }
                onMessage(message)
            }
        }
        let controlFD = self.controlFD
        control.setCancelHandler { Glibc.close(controlFD) }
        control.resume()
        sources = [exit, control]
    }

    /// Writes the child's pid into its cgroup folders (docs/security.md "Cgroups") while it execs and starts, so
    /// the migration's wait overlaps the start instead of adding to it. The host checks that it is there before it
    /// drops anything and joins itself otherwise (a failed write here is the host's to report).
    private func joinCgroups(_ files: [String], queue: DispatchQueue) {
        guard !files.isEmpty else { return }
        joinPending = true
        let pid = Array("\(pid)".utf8)
        ChildProcess.cgroupJoins.async {
            for file in files {
                let fd = open(file, O_WRONLY | O_CLOEXEC)
                guard fd >= 0 else { continue }
                _ = pid.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                Glibc.close(fd)
            }
            queue.async {
                self.joinPending = false
                self.resumeExit()
            }
        }
    }

    private func resumeExit() {
        guard exitDeferred else { return }
        exitDeferred = false
        exitSource?.resume()
    }

    /// Sends one control message; false if the channel is gone or full (the caller escalates by signal).
    @discardableResult
    func send(_ message: SupervisorMessage) -> Bool {
        guard !closed else { return false }
        let bytes = JSONWriter.serialize(message.encode()) + [0x0A]
        let n = bytes.withUnsafeBytes { write(controlFD, $0.baseAddress, $0.count) }
        return n == bytes.count
    }

    /// Signals the host process itself (through the pidfd: never another process that reused the pid).
    func signal(_ sig: Int32) {
        guard !closed else { return }
        _ = mcps_signal(pidfd, sig)
    }

    /// SIGKILL to the whole process group: the host and anything its plugin started.
    func killGroup() {
        if !closed { _ = mcps_signal(pidfd, SIGKILL) }
        _ = kill(-pid, SIGKILL)
    }

    /// Releases the descriptors and sources. Call after the exit was reaped; log pipes drain what is left first.
    func close() {
        guard !closed else { return }
        closed = true
        joinPending = false
        resumeExit()  // a suspended source must not be cancelled and released while suspended
        exitSource = nil
        for source in sources { source.cancel() }  // their cancel handlers close the pidfd and the control socket
        sources = []
        for forwarder in forwarders { forwarder.finish() }
        hostFailure = forwarders.compactMap(\.hostFailure).last
        forwarders = []
    }

    deinit { close() }
}
