import CSupervisorSupport
import CSystemd
import Contracts
import Dispatch
import Logging
import MCPProtocol
import StructuredLog
import SupervisorCore

#if canImport(Glibc)
    import Glibc
#endif

/// The supervisor daemon: performs what `SupervisorMachine` decides and feeds it what happens. All state lives
/// on `queue`; every event (a child's exit through its pidfd, a control message, the deadline timer, a signal)
/// is handled there, in order, and no handler blocks. This class owns the resources — sockets, processes, probe
/// connections, the one timer — and no rule: every decision is the machine's.
public final class Supervisor: @unchecked Sendable {
    // @unchecked: every mutable property is touched only on `queue`.
    public let queue = DispatchQueue(label: "mcp-supervisor")
    let log: SupervisorLog
    let files: any ConfigFileSource
    let hostExecutable: String
    /// `mcp-gateway`, next to the host executable (docs/gateway.md).
    var gatewayExecutable: String { Path.join(Path.directory(of: hostExecutable), "mcp-gateway") }
    private(set) var machine: SupervisorMachine
    /// Listening sockets by server.
    private var sockets: [String: Int32] = [:]
    var children: [ReplicaID: ChildProcess] = [:]
    /// The probes in flight (their parts as they answer), the last finished probe per replica, the kept-alive
    /// `server/discover` connections and the last CPU reading (diagnostic probes).
    var probes: [ReplicaID: ProbeRun] = [:]
    var reports: [ReplicaID: ProbeReport] = [:]
    /// The host's own reason for its last exit (its `host.failure` line), shown with `last_exit` in `status`.
    var hostFailures: [ReplicaID: String] = [:]
    var portConnections: [ReplicaID: PortConnection] = [:]
    var cpuSamples: [ReplicaID: (seconds: Double, at: Double)] = [:]
    private var scheduler: DeadlineScheduler!
    /// When the follow-up orphan reaps after a child exit are due (see `reapOrphans`).
    private var orphanReaps: [Double] = []
    /// How often the heartbeat pings also reap orphans: once per round of the shortest heartbeat interval.
    private var orphanRound = 18.0
    /// When /proc was last scanned for orphans (the scan reads every process's stat: not on every ping).
    private var lastOrphanScan = -Double.infinity
    private var onStopped: (() -> Void)?
    private var nextRequest = 0
    /// Answers the machine gave for requests whose callers wait synchronously (start, stop, restart, reload).
    private var answers: [RequestID: ControlAnswer] = [:]
    /// Callers of `health` waiting for the machine's answer.
    var healthCallbacks: [RequestID: (ServerHealth) -> Void] = [:]

    /// Recent log lines per server (the control socket's `logs`); see ControlSocket/.
    let logTap = LogTap()

    /// Forwarded-line budgets: one per server, and the total when the log is the journal.
    private var budgets: [String: LineBudget] = [:]
    /// Each server's requestState key (hex), loaded or made once.
    private var requestStateKeys: [String: String] = [:]
    private lazy var totalBudget: LineBudget? = log.limits.total.map {
        LineBudget(linesPerSecond: $0.linesPerSecond, burst: $0.burst)
    }

    /// systemd: readiness, status, the fd store (Systemd/; no-ops without NOTIFY_SOCKET).
    public let notifier = SystemdNotifier()
    /// Listening sockets systemd handed back from its fd store (`LISTEN_FDNAMES`), by server, until claimed.
    private var adopted: [String: Int32] = [:]
    /// The control socket listens (set by `controlOpened`); READY=1 waits for it.
    private var controlReady = false
    private var readySent = false
    private var reloading = false
    private var watchdog: Watchdog?
    /// The watchdog's timer checks waiting for the scheduler to fire `.selfCheck`.
    private var selfChecks: [@Sendable () -> Void] = []

    /// Answers the ports of servers that are down for a while with 503 (Unavailable/).
    private(set) lazy var unavailableResponder = UnavailableResponder(
        queue: queue, now: Clock.now,
        schedule: { [unowned self] at in
            if let at {
                self.scheduler.arm(.unavailableAnswers, at: at, early: 0)
            } else {
                self.scheduler.cancel(.unavailableAnswers)
            }
            self.scheduler.rearm()
        },
        answered: { [unowned self] server, state in
            self.metrics.unavailableAnswer(
                server: server, group: self.servers[server]?.config.metricsGroup ?? "", state: state)
        })

    /// The supervisor's own series (Metrics/SupervisorMetrics.swift) and the metrics listener's state
    /// (Metrics/Scrape.swift, Metrics/MetricsServer.swift: `metrics_listen`, docs/metrics.md).
    let metrics = SupervisorMetrics()
    let metricsState = MetricsListenerState()

    public init(config: SupervisorConfig, hostExecutable: String, files: any ConfigFileSource, log: SupervisorLog) {
        machine = SupervisorMachine(config: config)
        self.hostExecutable = hostExecutable
        self.files = files
        var log = log
        log.tap = logTap
        self.log = log
        scheduler = DeadlineScheduler(queue: queue, now: Clock.now) { [unowned self] deadline in
            switch deadline {
            case .orphanReap: self.reapOrphans()
            case .unavailableAnswers: self.unavailableResponder.deadlineReached()
            case .selfCheck:
                let checks = self.selfChecks
                self.selfChecks = []
                for check in checks { check() }
            default: self.feed(.deadline(deadline))
            }
        }
        logTap.isServer = { [unowned self] in self.machine.servers[$0] != nil }
    }

    var config: SupervisorConfig { machine.config }
    var shuttingDown: Bool { machine.isShuttingDown }
    /// The configured servers as the machine holds them.
    var servers: [String: ServerState] { machine.servers }

    // MARK: Events in

    /// Hands one event to the machine and performs its effects in order. An effect that reports back (a spawn,
    /// a failed stop message, the end of a probe) feeds its event right away, before the effects after it.
    func feed(_ event: SupervisorEvent) {
        let inputs = SupervisorMachine.Inputs(
            now: Clock.now(), random: { Double.random(in: 0..<1) },
            bind: { [unowned self] server, address, port in self.listen(server, address, port) })
        for effect in machine.handle(event, inputs) { perform(effect) }
        switch event {
        case .start, .reloaded: orphanRound = (config.servers.map(\.heartbeatInterval).min() ?? 20) * 0.9
        default: break
        }
        if !pendingLogs.isEmpty {
            let records = pendingLogs
            pendingLogs = []
            for record in records { write(record) }
        }
        scheduler.rearm()
        if notifier.enabled { notifySystemd() }
        pushGatewayTable()
    }

    /// READY=1 once the control socket listens and the boot has settled; after it, STATUS= when it changes.
    private func notifySystemd() {
        guard !reloading, !shuttingDown else { return }
        if readySent {
            notifier.status(StatusLine.make(servers))
        } else if controlReady, bootSettled {
            readySent = true
            notifier.ready(status: StatusLine.make(servers))
        }
    }

    /// Every server that starts at boot is running (one replica ready), failed (its port), down (its first start
    /// failed: an exit, a spawn failure or its start timeout) or stopped; a server waiting for its dependencies
    /// counts once one of them has settled without running. A server stuck in start holds READY=1 back for its
    /// `start_timeout` at most: then it is killed, which counts as a failed start.
    var bootSettled: Bool {
        func settled(_ name: String, _ depth: Int) -> Bool {
            guard let server = servers[name], depth < 64 else { return true }
            switch server.status {
            case .running, .failed, .stopped, .down: return true
            case .starting, .stopping: return false
            case .waiting:
                return server.config.dependsOn.contains { dep in
                    guard let other = servers[dep] else { return true }
                    return other.status != .running && settled(dep, depth + 1)
                }
            }
        }
        return servers.keys.allSatisfy { settled($0, 0) }
    }

    /// The control socket listens at `path` (nil: it could not be opened): READY=1 may follow, and the watchdog
    /// (when systemd asked for one) starts. Call on `queue`.
    public func controlOpened(path: String?) {
        dispatchPrecondition(condition: .onQueue(queue))
        controlReady = true
        if let interval = SystemdNotifier.watchdogInterval(), watchdog == nil {
            let dog = Watchdog(interval: interval, notifier: notifier, log: log) { [unowned self] loop, timer in
                self.queue.async {
                    loop()
                    self.selfChecks.append(timer)
                    self.scheduler.arm(.selfCheck, at: Clock.now(), early: 0)
                    self.scheduler.rearm()
                }
            }
            watchdog = dog
            dog.start(controlPath: path)
            write(
                LogRecord(
                    .info, LogEventName.watchdog,
                    "watchdog: every \(Self.seconds(interval / 2)) s while the self-check passes (WatchdogSec=\(Self.seconds(interval)))"
                ))
        }
        if notifier.enabled { notifySystemd() }
    }

    /// Stops the watchdog's pings (the supervisor is exiting).
    public func stopWatchdog() { watchdog?.stop() }

    static func seconds(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String((value * 1000).rounded() / 1000)
    }

    /// A request whose answer the caller waits for; the machine answers it within the same event.
    func request(_ event: (RequestID) -> SupervisorEvent) -> ControlAnswer? {
        nextRequest += 1
        let id = RequestID(nextRequest)
        feed(event(id))
        return answers.removeValue(forKey: id)
    }

    func newRequestID() -> RequestID {
        nextRequest += 1
        return RequestID(nextRequest)
    }

    /// Starts every server in dependency order. Call once, on `queue`. False: the port registry exists but cannot
    /// be read, nothing was started (the caller exits; the reason is logged).
    public func start() -> Bool {
        dispatchPrecondition(condition: .onQueue(queue))
        if mcps_set_subreaper() != 0 {
            write(
                LogRecord(
                    .warning, LogEventName.supervisorWarning,
                    "warning: cannot become a child subreaper; plugin grandchildren may escape"))
        }
        adoptInherited()
        raiseDescriptorLimit()
        Cgroups.removeStale()
        adminStopped = loadStopped()
        guard let registry = loadRegistry() else { return false }
        feed(.start(registry: registry, stopped: adminStopped))
        return true
    }

    /// Graceful shutdown in reverse dependency order; `completion` runs on `queue` once every child is reaped.
    public func shutdown(completion: @escaping () -> Void) {
        dispatchPrecondition(condition: .onQueue(queue))
        guard !shuttingDown else { return }
        onStopped = completion
        notifier.stopping()
        feed(.shutdown)
    }

    /// Loads the configuration again and applies the difference: added servers start, removed ones stop,
    /// changed ones restart, all others keep their processes. An invalid configuration changes nothing.
    @discardableResult
    public func reload() -> Result<ConfigDiff, ConfigError> {
        dispatchPrecondition(condition: .onQueue(queue))
        notifier.reloading()
        reloading = true
        defer {
            reloading = false
            if readySent { notifier.ready(status: StatusLine.make(servers)) }
        }
        let loaded: Result<SupervisorConfig, ConfigError>
        do { loaded = .success(try ConfigLoader(source: files).load(mainFile: config.mainFile)) } catch {
            loaded = .failure(error)
        }
        switch request({ .reloaded(loaded, $0) }) {
        case .reloaded(let diff):
            metrics.reload(accepted: true)
            checkDescriptorBudget()
            recordAdminStops()
            reconfigureMetricsListener()
            return .success(diff)
        case .reloadRejected(let error):
            metrics.reload(accepted: false)
            return .failure(error)
        default:
            return .failure(
                ConfigError(file: config.mainFile, line: nil, key: nil, message: "the supervisor is shutting down"))
        }
    }

    // MARK: Effects out

    private func perform(_ effect: SupervisorEffect) {
        switch effect {
        case .log(let event): write(event)
        case .spawn(let id): spawn(id)
        case .sendStop(let id):
            if children[id]?.send(.stop) != true { feed(.stopMessageFailed(id)) }
        case .sendPing(let id, let seq):
            _ = children[id]?.send(.ping(seq: seq))
            // One orphan reap per heartbeat round, not per ping (a /proc scan per ping cost 15 times the idle
            // supervisor's CPU with 50 servers; the reap is now one waitid in the common case, but still per round).
            if Clock.now() - lastOrphanScan >= orphanRound { reapOrphans() }
        case .startProbe(let id, let seq, let level): startProbe(id, seq: seq, level: level)
        case .endProbe(let id, let seq): finishProbe(id, seq: seq)
        case .signal(let id, let pid, let signal):
            guard let child = children[id], child.pid == pid else { return }
            switch signal {
            case .terminate: child.signal(SIGTERM)
            case .killGroup: child.killGroup()
            }
        case .arm(let deadline, let at, let early): scheduler.arm(deadline, at: at, early: early)
        case .cancel(let deadline): scheduler.cancel(deadline)
        case .closeSocket(let server):
            unavailableResponder.stop(server)
            if let fd = sockets.removeValue(forKey: server) { close(fd) }
            // Gone or moved: not wanted back after a restart. (At shutdown the store keeps it for the next one.)
            if !shuttingDown, notifier.enabled {
                notifier.removeStored(name: server)
                write(
                    LogRecord(
                        .info, LogEventName.fdStore, server: server, "socket dropped from the fd store",
                        fields: ["fdname": .string(server)]))
            }
        case .answerUnavailable(let server, let notice):
            unavailableResponder.set(server, fd: sockets[server], notice)
            if let notice {
                var fields: [String: JSONValue] = ["state": .string(notice.state.rawValue)]
                if let at = notice.retryAt { fields["retry_in_s"] = .double(max(0, at - Clock.now())) }
                write(
                    LogRecord(
                        .info, LogEventName.serverUnavailable, server: server,
                        "unavailable (\(notice.state.rawValue)): its port answers 503 until it runs again",
                        fields: fields))
            }
        case .writeRegistry(let registry): saveRegistry(registry)
        case .answer(let id, let answer):
            if case .health(let health) = answer, let done = healthCallbacks.removeValue(forKey: id) {
                done(health)
            } else {
                answers[id] = answer
            }
        case .stopped:
            unavailableResponder.stopAll()
            // Every host is reaped; what their programs left behind goes now, not to init.
            _ = mcps_reap_all(1000)
            let done = onStopped
            onStopped = nil
            done?()
        case .count(let event):
            metrics.count(event, group: servers[event.replica.server]?.config.metricsGroup ?? "")
        }
    }

    /// Where every supervisor log record is written: through swift-log, with the record's event, server,
    /// replica, pid and fields as metadata (the handler prints today's text line or one JSON object).
    func write(_ event: LogRecord) {
        let level: Logger.Level
        switch event.level {
        case .info: level = .info
        case .notice: level = .notice
        case .warning: level = .warning
        case .error: level = .error
        }
        var fields: Logger.Metadata = [:]
        for (key, value) in event.fields { fields[key] = Self.metadataValue(value) }
        let replica = event.replica.map {
            SupervisorLog.Replica($0, of: event.namesReplica ? 2 : 1)
        }
        log.event(
            level, event.event, server: event.server, replica: replica, pid: event.pid, showPID: event.showsPID,
            message: event.message, fields: fields)
    }

    private static func metadataValue(_ value: JSONValue) -> Logger.MetadataValue {
        switch value {
        case .int(let number): return LogValue.of(Int(number))
        case .double(let number): return LogValue.of(number)
        case .bool(let flag): return LogValue.of(flag)
        case .string(let text): return .string(text)
        case .array(let items): return .array(items.map(metadataValue))
        case .object(let members): return .dictionary(members.mapValues(metadataValue))
        case .null: return .string("null")
        case .raw(let bytes): return .string(String(decoding: bytes, as: UTF8.self))
        }
    }

    /// Binds a server's port (called by the machine in the middle of a decision: it must not read `machine`).
    private func listen(_ server: String, _ address: String, _ port: Int) -> Bool {
        if let fd = adopted.removeValue(forKey: server) {
            // Kept by systemd across our restart: the same socket, so connections waiting in its backlog are
            // served. Only when it still listens on the port the server now has.
            if port > 0, port <= 65535,
                sd_is_socket_inet(fd, AF_UNSPEC, Int32(SOCK_STREAM.rawValue), 1, UInt16(port)) > 0
            {
                if let old = sockets[server] {
                    unavailableResponder.stop(server)
                    close(old)
                }
                sockets[server] = fd
                pendingLogs.append(
                    LogRecord(
                        .info, LogEventName.fdStore, server: server,
                        "adopted the listening socket on port \(port) from the fd store",
                        fields: ["fdname": .string(server), "port": .int(Int64(port))]))
                return true
            }
            close(fd)
            notifier.removeStored(name: server)
            pendingLogs.append(
                LogRecord(
                    .info, LogEventName.fdStore, server: server,
                    "the stored socket does not listen on port \(port); dropped, binding anew",
                    fields: ["fdname": .string(server), "port": .int(Int64(port))]))
        }
        var fd: Int32 = -1
        guard mcps_listen_tcp(address, Int32(port), 1024, &fd) == 0 else { return false }
        if let old = sockets[server] {
            unavailableResponder.stop(server)
            close(old)
        }
        sockets[server] = fd
        if notifier.store(fd: fd, name: server) {
            pendingLogs.append(
                LogRecord(
                    .info, LogEventName.fdStore, server: server, "socket on port \(port) kept in the fd store",
                    fields: ["fdname": .string(server), "port": .int(Int64(port))]))
        }
        return true
    }

    /// Log records made while the machine decides (by `listen`), written after its effects.
    private var pendingLogs: [LogRecord] = []
    /// The gateway's table as last pushed, and each server's list generation (Gateway/GatewayTable.swift).
    var gatewayPushed: [GatewayBackend]?
    var gatewayGenerations: [String: Int] = [:]
    /// What the gateway left out of its lists, with the reasons, as it last said (`mcpctl status`).
    var gatewayLeftOut: [String] = []

    /// Takes the sockets systemd passed back (LISTEN_FDS/LISTEN_FDNAMES): those of configured servers wait to be
    /// claimed by their bind; the others are closed and dropped from the store (FDSTOREREMOVE=1).
    private func adoptInherited() {
        for (name, fd) in SystemdNotifier.inheritedSockets() {
            if config.servers.contains(where: { $0.name == name }), adopted[name] == nil {
                adopted[name] = fd
            } else {
                close(fd)
                notifier.removeStored(name: name)
                write(
                    LogRecord(
                        .info, LogEventName.fdStore,
                        "stored socket '\(name)' belongs to no configured server; dropped from the fd store",
                        fields: ["fdname": .string(name)]))
            }
        }
    }

    // MARK: Descriptors

    /// The soft RLIMIT_NOFILE the supervisor was started with and the one it has now (nil: unlimited).
    private(set) var descriptorLimits: (startedWith: Int?, now: Int?) = (nil, nil)

    /// Descriptors the configured servers need (`DescriptorLimit`).
    var descriptorsNeeded: Int { DescriptorLimit.needed(replicas: config.servers.map(\.replicas)) }

    /// Raises the soft descriptor limit to the hard one (children get the old one back), then checks the budget.
    private func raiseDescriptorLimit() {
        let (before, after) = DescriptorLimit.raiseToHard()
        descriptorLimits = (before, after)
        if let before, before != after {
            write(
                LogRecord(
                    .info, LogEventName.descriptors,
                    "descriptor limit raised from \(before) to \(after.map(String.init) ?? "unlimited") (the hard limit); children keep \(before)",
                    fields: ["soft": .int(Int64(after ?? -1)), "started_with": .int(Int64(before))]))
        }
        checkDescriptorBudget()
    }

    /// Warns when the configured servers need more descriptors than the supervisor may open.
    private func checkDescriptorBudget() {
        guard let limit = descriptorLimits.now,
            let warning = Self.descriptorWarning(needed: descriptorsNeeded, limit: limit, servers: config.servers.count)
        else { return }
        write(
            LogRecord(
                .warning, LogEventName.descriptors, warning,
                fields: ["soft": .int(Int64(limit)), "needed": .int(Int64(descriptorsNeeded))]))
    }

    /// The warning `--check-config`, the log and `mcpctl status` give when the servers do not fit (nil: they do).
    public static func descriptorWarning(needed: Int, limit: Int, servers: Int) -> String? {
        guard needed > limit else { return nil }
        return "the \(servers) configured server(s) need about \(needed) descriptors but the supervisor may open "
            + "\(limit) (RLIMIT_NOFILE); raise LimitNOFILE= in its unit (or ulimit -n), or some servers will fail "
            + "to start or restart"
    }

    // MARK: Children

    /// The supervisor's variables a child inherits (docs/supervisor.md, "Children"): the locale and paths, and the
    /// runtime options of Rust and of the sanitizers (a sanitized build's children report where it says,
    /// scripts/sanitize.sh).
    static let inheritedVariables = [
        "PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "LD_LIBRARY_PATH", "RUST_BACKTRACE",
        "ASAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS", "UBSAN_OPTIONS",
    ]

    private func environment(for server: ServerConfig, replica index: Int) throws(ChildBox.Failure) -> [String: String]
    {
        // An explicit environment: a few variables from ours, the server's own, and the descriptors' names.
        // Nothing else leaks through (no NOTIFY_SOCKET, WATCHDOG_*, LISTEN_* from systemd).
        var env: [String: String] = [:]
        for key in Self.inheritedVariables {
            if let value = getenv(key) { env[key] = String(cString: value) }
        }
        if env["PATH"] == nil { env["PATH"] = "/usr/local/bin:/usr/bin:/bin" }
        for (key, value) in server.environment { env[key] = value }
        env[ChildEnvironment.listenFD] = String(ChildEnvironment.listenDescriptor)
        env[ChildEnvironment.controlFD] = String(ChildEnvironment.controlDescriptor)
        env[ChildEnvironment.serverName] = server.name
        env[ChildEnvironment.replica] = String(index)
        env[ChildEnvironment.requestStateKey] = requestStateKey(for: server.name)
        // The soft descriptor limit the supervisor was started with, not the one it raised for itself.
        if let before = descriptorLimits.startedWith, before != descriptorLimits.now {
            env[ChildEnvironment.openFilesSoft] = String(before)
        }
        // Structured lines, so the forwarder keeps their level and fields.
        env[ChildEnvironment.logFormat] = LogFormat.json.rawValue
        // The box (docs/security.md): MCP_BOX and what else the box passes.
        for (key, value) in try ChildBox.environment(
            for: server, replica: index, stateDirectory: config.stateDirectory)
        {
            env[key] = value
        }
        return env
    }

    /// A command server's host (docs/servers.md): the program after `--`, its folder, its transport, and the time
    /// it has to answer initialize.
    static func commandArguments(_ settings: ServerConfig) -> [String] {
        // Under start_timeout, so the host names the cause (54, or no answer) and stops its program before the
        // supervisor's start deadline kills it: a quarter of it, at most 2 s, is left for that (a tenth, 0.2 s of
        // a 2 s timeout, was not enough for a host under ThreadSanitizer, nor would it be on a loaded machine).
        let initTimeout = settings.startTimeout - min(2, settings.startTimeout / 4)
        var arguments = ["--init-timeout", "\(initTimeout)"]
        if let dir = settings.workingDirectory { arguments += ["--working-directory", dir] }
        if settings.transport == .http { arguments += ["--transport", "http", "--path", settings.httpPath] }
        return arguments + settings.hostArguments + ["--"] + settings.command
    }

    private func spawn(_ id: ReplicaID) {
        guard let server = machine.servers[id.server], let socket = sockets[id.server] else { return }
        let settings = server.config
        let arguments =
            settings.isGateway
            ? settings.hostArguments
            : settings.isCommand
                ? Self.commandArguments(settings)
                : ["--plugin", settings.plugin, "--config", settings.pluginConfig]
                    + TrustArguments.host(for: settings, config: config, log: log) + settings.hostArguments
        reports[id] = nil
        let env: [String: String]
        do { env = try environment(for: settings, replica: id.index) } catch {
            ChildBox.release(server: id.server, replica: id.index)
            feed(.spawnFailed(id, message: "the box: \(error.message)"))
            return
        }
        let result = ChildProcess.spawn(
            executable: settings.isGateway ? gatewayExecutable : hostExecutable, arguments: arguments,
            environment: env,
            listenFD: socket, server: id.server, replica: SupervisorLog.Replica(id.index, of: settings.replicas),
            queue: queue, log: log, budgets: budgets(for: id.server), cgroupProcsFiles: cgroupProcsFiles(env),
            onExit: { [unowned self] code, status in self.childExited(id, code: code, status: status) },
            onMessage: { [unowned self] message in self.message(id, message) })
        switch result {
        case .failure(let error):
            ChildBox.release(server: id.server, replica: id.index)
            feed(.spawnFailed(id, message: error.message))
        case .success(let child):
            children[id] = child
            feed(.spawned(id, pid: child.pid))
        }
    }

    /// The cgroup folders the box gave the replica (MCP_BOX's `cgroup_procs_files`).
    private func cgroupProcsFiles(_ env: [String: String]) -> [String] {
        guard let text = env[ChildEnvironment.box], let value = try? JSONParser.parse(Array(text.utf8)),
            let spec = BoxSpec.decode(value)
        else { return [] }
        return spec.cgroupProcsFiles
    }

    private func budgets(for server: String) -> [LineBudget] {
        let own: LineBudget
        if let existing = budgets[server] {
            own = existing
        } else {
            own = LineBudget(linesPerSecond: log.limits.perServer.linesPerSecond, burst: log.limits.perServer.burst)
            budgets[server] = own
        }
        return [own] + (totalBudget.map { [$0] } ?? [])
    }

    private func message(_ id: ReplicaID, _ message: HostMessage) {
        switch message {
        case .ready(_, _, let version):
            metricsReady(id, protocolVersion: version)
            bumpGatewayGeneration(id.server)
            feed(.ready(id))
            if id.server == GatewaySettings.serverName, config.gateway != nil { pushGatewayTable(fresh: id) }
        case .pong(_, let use):
            metrics.slotUse(id, inflight: use.inflight)
            feed(.answered(id))
        case .healthLoop, .healthPlugin: healthAnswer(id, message)
        case .metrics(let seq, let snapshot):
            metrics.slotUse(id, inflight: snapshot.callsInFlight)
            metricsAnswered(id, seq: seq, snapshot)
        case .leftOut(let items):
            if id.server == GatewaySettings.serverName { gatewayLeftOut = items }
        case .changed(let change):
            if case .lists = change {
                bumpGatewayGeneration(id.server)
                pushGatewayTable()
            }
            // Each replica serves its own listeners and sessions: the others hear of the change, or of a session
            // a DELETE ended, from us (docs/protocol.md, "Replicas"). Only hosts that said they know the message
            // get it; it is never relayed back.
            for (other, child) in children where other.server == id.server && other != id {
                if (metricsState.protocols[other]?.1 ?? 1) >= change.channelVersion,
                    metricsState.protocols[other]?.0 == child.pid
                {
                    _ = child.send(.changed(change))
                }
            }
        }
    }

    private func childExited(_ id: ReplicaID, code: Int32, status: Int32) {
        guard let child = children.removeValue(forKey: id) else { return }
        // Anything the plugin started dies with it; orphans re-parented to us are reaped here.
        _ = kill(-child.pid, SIGKILL)
        _ = mcps_reap_group(child.pid)
        child.close()
        hostFailures[id] = child.hostFailure
        probes[id] = nil
        cpuSamples[id] = nil
        portConnections.removeValue(forKey: id)?.close()
        metricsReplicaGone(id)
        let how: ChildStatus = code == 1 /* CLD_EXITED */ ? .exited(status) : .signaled(status)
        // The box: an OOM kill is named as such (read before the cgroup goes), then the cgroup is removed.
        if how == .signaled(SIGKILL), let reason = ChildBox.outOfMemory(server: id.server, replica: id.index) {
            feed(.outOfMemory(id, pid: child.pid, reason: reason))
        }
        ChildBox.release(server: id.server, replica: id.index)
        metrics.exited(id, group: servers[id.server]?.config.metricsGroup ?? "", status: how)
        feed(.exited(id, pid: child.pid, how))
        // After the machine decided (a replacement is spawned first), then again later for slow dyers.
        orphanReaps = [0.1, 1, 5].map { Clock.now() + $0 }
        reapOrphans()
    }

    /// Orphans that left their host's process group, or were still dying of the group's SIGKILL when the group
    /// was reaped, exit on their own time, and no SIGCHLD handler tells us: they are reaped at every child exit,
    /// again 0.1, 1 and 5 s after it (`orphanReaps`), and once per heartbeat round (the shortest interval).
    private func reapOrphans() {
        lastOrphanScan = Clock.now()
        ChildBox.sweep()
        let tracked = children.values.map(\.pid)
        _ = tracked.withUnsafeBufferPointer { mcps_reap_orphans($0.baseAddress, Int32($0.count)) }
        let now = Clock.now()
        orphanReaps.removeAll { $0 <= now + 0.000_5 }
        if let next = orphanReaps.first {
            scheduler.arm(.orphanReap, at: next, early: 0.05)
            scheduler.rearm()
        }
    }

    // MARK: State folder

    /// Servers an admin stopped (`mcpctl stop`), kept in `state_dir/stopped.json` so that they stay stopped across
    /// a supervisor restart; `start`, `restart` and a reload that changes or removes one take it out.
    var adminStopped: Set<String> = []
    private var stoppedPath: String { Path.join(config.stateDirectory, "stopped.json") }

    private func loadStopped() -> Set<String> {
        guard case .success(let text) = files.read(stoppedPath) else { return [] }
        guard let value = try? JSONParser.parse(text), case .array(let items) = value["stopped"] ?? .null else {
            write(
                LogRecord(
                    .warning, LogEventName.supervisorWarning,
                    "warning: \(stoppedPath) is damaged; no server is kept stopped"))
            return []
        }
        return Set(items.compactMap(\.stringValue))
    }

    /// An admin's stop or start changed the set, or a reload may have: keep what still holds and write it.
    func recordAdminStops(stopped: String? = nil, started: String? = nil) {
        var set = adminStopped
        if let stopped { set.insert(stopped) }
        if let started { set.remove(started) }
        set = set.filter { name in
            switch servers[name]?.phase {
            case .stopped, .stopping(then: .stayStopped): return true
            default: return false
            }
        }
        guard set != adminStopped else { return }
        adminStopped = set
        let text = JSONWriter.string(.object(["stopped": .array(set.sorted().map { .string($0) })])) + "\n"
        let bytes = Array(text.utf8)
        let rc = bytes.withUnsafeBytes { mcps_write_atomic(stoppedPath, $0.baseAddress, $0.count, 0o640) }
        if rc != 0 {
            write(
                LogRecord(
                    .warning, LogEventName.supervisorWarning,
                    "warning: cannot write \(stoppedPath): \(String(cString: strerror(rc)))"))
        }
    }

    /// The key that seals a server's 2026-07-28 requestState: the same for all its replicas (a retry may land on
    /// any) and across restarts of the supervisor, kept in `<state_dir>/request-state/<server>.key` (mode 0600).
    /// If it cannot be written, a key of this run is used and a warning says so.
    private func requestStateKey(for server: String) -> String {
        if let key = requestStateKeys[server] { return key }
        let folder = Path.join(config.stateDirectory, "request-state")
        _ = mkdir(config.stateDirectory, 0o750)
        _ = mkdir(folder, 0o700)
        let path = Path.join(folder, server + ".key")
        if case .success(let text) = files.read(path) {
            let hex = String(text.filter { !$0.isWhitespace })
            if RequestStateKey.parse(hex: hex) != nil {
                requestStateKeys[server] = hex
                return hex
            }
            write(
                LogRecord(
                    .warning, LogEventName.supervisorWarning,
                    "warning: \(path) is not 64 hex digits; a new requestState key replaces it"))
        }
        let hex = RequestStateKey.hex(RequestStateKey.random())
        let bytes = Array((hex + "\n").utf8)
        let rc = bytes.withUnsafeBytes { mcps_write_atomic(path, $0.baseAddress, $0.count, 0o600) }
        if rc != 0 {
            write(
                LogRecord(
                    .warning, LogEventName.supervisorWarning,
                    "warning: cannot write \(path): \(String(cString: strerror(rc))); input_required retries will not "
                        + "survive a restart of the supervisor"))
        }
        requestStateKeys[server] = hex
        return hex
    }

    private var registryPath: String { Path.join(config.stateDirectory, "ports.json") }

    private var registryBackupPath: String { registryPath + ".bak" }

    /// The recorded dynamic ports (docs/reliability.md, "Faults on disk"). Missing: a first start. Damaged: the
    /// file is kept as `ports.json.damaged`, every complete entry is salvaged and the rest taken from the backup
    /// (`ports.json.bak`, written after each change), then the registry is written whole again. Present but
    /// unreadable: nil, and the supervisor does not start: assigning ports anew would move every dynamic server.
    private func loadRegistry() -> PortRegistry? {
        _ = mkdir(config.stateDirectory, 0o750)
        var info = stat()
        guard stat(registryPath, &info) == 0 else {
            guard errno == ENOENT else { return unreadableRegistry(errno) }
            // No registry: a first start, unless a backup survived (the file was deleted).
            if case .success(let bytes) = LocalFiles.bytes(registryBackupPath), let backup = PortRegistry.decode(bytes)
            {
                warn("warning: \(registryPath) is missing; its ports are taken from \(registryBackupPath)")
                saveRegistry(backup)
                return backup
            }
            return PortRegistry()
        }
        let bytes: [UInt8]
        switch LocalFiles.bytes(registryPath) {
        case .success(let b): bytes = b
        case .failure(let error): return unreadableRegistry(error.code)
        }
        if let registry = PortRegistry.decode(bytes) { return registry }
        let salvaged = PortRegistry.salvage(bytes)
        var backup: [String: Int] = [:]
        if case .success(let b) = LocalFiles.bytes(registryBackupPath), let r = PortRegistry.decode(b) {
            backup = r.assignments
        }
        var merged = salvaged
        var taken = Set(salvaged.values)
        var fromBackup = 0
        for (name, port) in backup.sorted(by: { $0.key < $1.key }) where merged[name] == nil && !taken.contains(port) {
            merged[name] = port
            taken.insert(port)
            fromBackup += 1
        }
        let kept = registryPath + ".damaged"
        _ = rename(registryPath, kept)
        warn(
            "warning: \(registryPath) is damaged (kept as \(kept)): \(salvaged.count) port(s) read from it, "
                + "\(fromBackup) from \(registryBackupPath); a server in neither gets a new port")
        let registry = PortRegistry(assignments: merged)
        saveRegistry(registry)
        return registry
    }

    private func unreadableRegistry(_ code: Int32) -> PortRegistry? {
        write(
            LogRecord(
                .error, LogEventName.supervisorError,
                "cannot read \(registryPath): \(String(cString: strerror(code))); not starting, since assigning "
                    + "ports anew would move every dynamic server (fix the file or its permissions, or delete it "
                    + "to assign new ports)"))
        return nil
    }

    private func warn(_ text: String) {
        write(LogRecord(.warning, LogEventName.supervisorWarning, text))
    }

    /// Writes the registry (atomically), then its backup: a damaged or deleted registry is restored from it.
    private func saveRegistry(_ registry: PortRegistry) {
        let bytes = registry.encoded()
        for path in [registryPath, registryBackupPath] {
            let rc = bytes.withUnsafeBytes { mcps_write_atomic(path, $0.baseAddress, $0.count, 0o640) }
            if rc != 0 {
                warn(
                    "warning: cannot write \(path): \(String(cString: strerror(rc))); the ports assigned since "
                        + "are kept while this supervisor runs and written at the next change")
                return
            }
        }
    }
}
