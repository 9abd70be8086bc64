import CSupervisorSupport
import Dispatch
import MCPProtocol
import SupervisorCore

#if canImport(Glibc)
    import Glibc
#endif

/// The supervisor: keeps every configured server running on its port. All state lives on `queue`; every
/// event (a child's exit through its pidfd, a control message, a timer, a signal) is handled there, in order,
/// and no handler blocks. The decisions themselves come from SupervisorCore's pure types.
public final class Supervisor: @unchecked Sendable {
    // @unchecked: every mutable property is touched only on `queue`.
    public let queue = DispatchQueue(label: "mcp-supervisor")
    let log: SupervisorLog
    let files: any ConfigFileSource
    private(set) var config: SupervisorConfig
    let hostExecutable: String
    var servers: [String: ServerRuntime] = [:]
    var registry = PortRegistry()
    var shuttingDown = false
    /// The follow-up orphan reaps after a child exit (see `reapOrphans`).
    private var orphanReap: OneShotTimer?
    /// The port registry changed and is not yet on disk.
    private var registryDirty = false
    private var heartbeatTick: OneShotTimer?
    private var heartbeatDue: Double?
    var healthTick: OneShotTimer?
    var healthDue: Double?
    private var onStopped: (() -> Void)?

    /// Recent log lines per server (the control socket's `logs`); see ControlSocket/.
    let logTap = LogTap()

    public init(config: SupervisorConfig, hostExecutable: String, files: any ConfigFileSource, log: SupervisorLog) {
        self.config = config
        self.hostExecutable = hostExecutable
        self.files = files
        var log = log
        log.tap = logTap
        self.log = log
        logTap.isServer = { [unowned self] in self.servers[$0] != nil }
    }

    // MARK: Start

    /// Starts every server in dependency order. Call once, on `queue`.
    public func start() {
        dispatchPrecondition(condition: .onQueue(queue))
        if mcps_set_subreaper() != 0 {
            log.line("warning: cannot become a child subreaper; plugin grandchildren may escape")
        }
        loadRegistry()
        for s in config.servers { servers[s.name] = ServerRuntime(config: s) }
        log.line("starting \(servers.count) server(s) from \(config.mainFile)")
        startPending()
    }

    /// Binds the port of a server (keeping the socket) and records dynamic assignments.
    private func bind(_ rt: ServerRuntime) -> Bool {
        if rt.socketFD >= 0 { return true }
        var fd: Int32 = -1
        var reserved = Set(config.servers.compactMap(\.port))
        reserved.remove(rt.config.port ?? -1)
        let before = registry
        let result = registry.port(for: rt.config, range: config.portRange, reserved: reserved) { port in
            mcps_listen_tcp(config.listenAddress, Int32(port), 1024, &fd) == 0
        }
        switch result {
        case .success(let port):
            rt.socketFD = fd
            rt.port = port
            rt.failure = nil
            if registry != before { registryDirty = true }  // written once per start round, not per port
            return true
        case .failure(let e):
            rt.failure = "\(e)"
            log.line(
                "\(rt.name): cannot listen on \(config.listenAddress): \(e); this server stays down, the others run")
            return false
        }
    }

    /// Starts every server that is wanted, not running, and whose dependencies are ready.
    func startPending() {
        guard !shuttingDown else { return }
        var ready: [ServerRuntime] = []
        for name in DependencyOrder.startOrder(config.servers) {
            guard let rt = servers[name], rt.wanted, !rt.launched else { continue }
            let waiting = rt.config.dependsOn.filter { !(servers[$0]?.isReady ?? false) }
            if !waiting.isEmpty {
                if !rt.announcedWait {
                    log.line("\(name): waiting for \(waiting.joined(separator: ", ")) to be ready")
                    rt.announcedWait = true
                }
                continue
            }
            guard bind(rt) else { continue }
            rt.launched = true
            ready.append(rt)
        }
        // New dynamic ports reach the disk (one atomic write for the round) before any client can learn them.
        if registryDirty {
            saveRegistry()
            registryDirty = false
        }
        for rt in ready {
            rt.replicas = (0..<rt.config.replicas).map { ReplicaRuntime(index: $0) }
            log.line("\(rt.name): starting \(rt.config.replicas) replica(s) on \(config.listenAddress):\(rt.port!)")
            for r in rt.replicas { spawn(rt, r) }
        }
    }

    // MARK: Replicas

    private func environment(for rt: ServerRuntime, _ r: ReplicaRuntime) -> [String: String] {
        // An explicit environment: a few variables from ours, the server's own, and the descriptors' names.
        // Nothing else leaks through (no NOTIFY_SOCKET, WATCHDOG_*, LISTEN_* from systemd).
        var env: [String: String] = [:]
        for k in ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "LD_LIBRARY_PATH", "RUST_BACKTRACE"] {
            if let v = getenv(k) { env[k] = String(cString: v) }
        }
        if env["PATH"] == nil { env["PATH"] = "/usr/local/bin:/usr/bin:/bin" }
        for (k, v) in rt.config.environment { env[k] = v }
        env["MCP_LISTEN_FD"] = "3"
        env["MCP_CONTROL_FD"] = "4"
        env["MCP_SERVER_NAME"] = rt.name
        env["MCP_REPLICA"] = String(r.index)
        return env
    }

    func label(_ rt: ServerRuntime, _ r: ReplicaRuntime) -> String {
        rt.config.replicas > 1 ? "\(rt.name)#\(r.index)" : rt.name
    }

    func spawn(_ rt: ServerRuntime, _ r: ReplicaRuntime) {
        guard !shuttingDown, rt.socketFD >= 0 else { return }
        let args = ["--plugin", rt.config.plugin, "--config", rt.config.pluginConfig] + rt.config.hostArguments
        let name = label(rt, r)
        let result = ChildProcess.spawn(
            executable: hostExecutable, arguments: args, environment: environment(for: rt, r), listenFD: rt.socketFD,
            label: name, queue: queue, log: log,
            onExit: { [unowned self, unowned rt, unowned r] code, status in
                self.exited(rt, r, code: code, status: status)
            },
            onMessage: { [unowned self, unowned rt, unowned r] msg in self.message(rt, r, msg) })
        let now = Clock.now()
        switch result {
        case .failure(let e):
            log.line("\(name): \(e.message)")
            // Treat like an immediate failed exit so backoff and intensity apply.
            r.lifecycle.spawned(pid: 0, at: now)
            decide(
                rt, r,
                r.lifecycle.exited(
                    .exited(127), at: now, mode: rt.config.restart, backoff: rt.config.backoff,
                    intensity: rt.config.intensity, random: Double.random(in: 0..<1)))
        case .success(let child):
            r.process = child
            r.lifecycle.spawned(pid: child.pid, at: now)
            r.spawnedAt = now
            r.forcedReason = nil
            r.health.started()
            r.lastProbe = nil
            log.line("\(name)[\(child.pid)]: starting")
            r.startTimer = after(rt.config.startTimeout) { [unowned self, unowned rt, unowned r] in
                guard case .starting = r.lifecycle.phase, let p = r.process else { return }
                self.log.line(
                    "\(self.label(rt, r))[\(p.pid)]: not ready within \(rt.config.startTimeout) s; killing it")
                r.forcedReason = .startTimeout
                p.killGroup()
            }
        }
    }

    private func message(_ rt: ServerRuntime, _ r: ReplicaRuntime, _ msg: JSONValue) {
        switch msg["event"]?.stringValue {
        case "ready":
            let now = Clock.now()
            guard r.lifecycle.ready(at: now), let p = r.process else { return }
            r.startTimer?.cancel()
            let ms = Int(((now - r.spawnedAt) * 1000).rounded())
            log.line("\(label(rt, r))[\(p.pid)]: running (ready in \(ms) ms)")
            r.lastPong = now
            scheduleHeartbeat(rt, r)
            scheduleProbe(rt, r, after: 0)  // the first probe right away: initializing ends within one timeout
            startPending()
        case "pong":
            r.lastPong = Clock.now()
        case "health":
            healthAnswer(rt, r, msg)
        default:
            break
        }
    }

    /// One timer for every replica's heartbeat: each tick pings the replicas whose interval has passed and
    /// kills those silent for longer than their timeout. One wake-up serves them all (and their answers arrive
    /// together), which keeps an idle supervisor nearly free: 50 servers cost a couple of wake-ups per interval,
    /// not a hundred.
    private func scheduleHeartbeat(_ rt: ServerRuntime, _ r: ReplicaRuntime) {
        r.nextPing = Clock.now() + rt.config.heartbeatInterval
        armHeartbeatTick()
    }

    private func armHeartbeatTick() {
        let due = servers.values.flatMap { rt in rt.replicas.filter { $0.process != nil && $0.nextPing > 0 } }
            .map(\.nextPing).min()
        guard let due else { return }
        if let armed = heartbeatDue, armed <= due + 0.001 { return }
        heartbeatTick?.cancel()
        heartbeatDue = due
        heartbeatTick = after(max(0, due - Clock.now())) { [unowned self] in
            self.heartbeatDue = nil
            self.heartbeatTick = nil
            self.heartbeatRound()
        }
    }

    /// Orphans that left their host's process group, or were still dying of the group's SIGKILL when the group
    /// was reaped, exit on their own time, and no SIGCHLD handler tells us: they are reaped at every child exit
    /// (and `again` seconds after it), and at every heartbeat round.
    private func reapOrphans(again: [Double] = []) {
        let tracked = servers.values.flatMap { rt in rt.replicas.compactMap { $0.process?.pid } }
        _ = tracked.withUnsafeBufferPointer { mcps_reap_orphans($0.baseAddress, Int32($0.count)) }
        guard let next = again.first else { return }
        orphanReap = after(next) { [unowned self] in
            self.reapOrphans(again: again.dropFirst().map { $0 - next })
        }
    }

    private func heartbeatRound() {
        reapOrphans()
        let now = Clock.now()
        for rt in servers.values {
            for r in rt.replicas {
                guard case .running = r.lifecycle.phase, let p = r.process, r.nextPing > 0 else { continue }
                if now - r.lastPong > rt.config.heartbeatTimeout {
                    log.line(
                        "\(label(rt, r))[\(p.pid)]: no heartbeat answer for \(Int(now - r.lastPong)) s; killing it as hung"
                    )
                    r.forcedReason = .hung
                    r.nextPing = 0
                    p.killGroup()
                    continue
                }
                // A health probe's answer from the event loop is as good as a pong: no ping while one is fresh,
                // and none at all while periodic probes come often enough to keep it fresh (two per timeout).
                let h = rt.config.health
                if h.interval > 0 && h.interval <= rt.config.heartbeatTimeout / 2 {
                    r.nextPing = now + rt.config.heartbeatInterval
                    continue
                }
                if now - r.lastPong < rt.config.heartbeatInterval * 0.5 {
                    r.nextPing = r.lastPong + rt.config.heartbeatInterval
                    continue
                }
                // Within a tenth of the interval counts as due, so nearby replicas share this wake-up.
                if r.nextPing - now <= rt.config.heartbeatInterval * 0.1 {
                    r.pingSeq += 1
                    p.send(["op": "ping", "seq": .int(Int64(r.pingSeq))])
                    r.nextPing = now + rt.config.heartbeatInterval
                }
            }
        }
        armHeartbeatTick()
    }

    private func exited(_ rt: ServerRuntime, _ r: ReplicaRuntime, code: Int32, status: Int32) {
        guard let p = r.process else { return }
        // Anything the plugin started dies with it; orphans re-parented to us are reaped here.
        _ = kill(-p.pid, SIGKILL)
        _ = mcps_reap_group(p.pid)
        reapOrphans(again: [0.1, 1, 5])
        p.close()
        r.process = nil
        r.cancelTimers()
        let reason: ExitReason
        if let forced = r.forcedReason {
            reason = forced
        } else if code == 1 /* CLD_EXITED */ {
            reason = .exited(status)
        } else {
            reason = .signaled(status)
        }
        let decision = r.lifecycle.exited(
            reason, at: Clock.now(), mode: rt.config.restart, backoff: rt.config.backoff,
            intensity: rt.config.intensity, random: Double.random(in: 0..<1))
        log.line("\(label(rt, r))[\(p.pid)]: \(reason)")
        endHealth(rt, r, "\(reason)")
        decide(rt, r, decision)
        if shuttingDown || rt.stopping { stepStop() }
    }

    private func decide(_ rt: ServerRuntime, _ r: ReplicaRuntime, _ d: ReplicaLifecycle.Decision) {
        let name = label(rt, r)
        switch d {
        case .none: break
        case .stay(let why):
            log.line("\(name): \(r.lifecycle.phase.name): \(why)")
        case .restart(let delay, let why):
            log.line("\(name): backoff: \(why)")
            armRetry(rt, r, delay)
        case .fatal(let cooldown, let why):
            log.line("\(name): fatal: \(why)")
            armRetry(rt, r, cooldown)
        }
    }

    private func armRetry(_ rt: ServerRuntime, _ r: ReplicaRuntime, _ delay: Double) {
        r.retryTimer?.cancel()
        r.retryTimer = after(delay) { [unowned self, unowned rt, unowned r] in
            guard !self.shuttingDown, rt.wanted, r.lifecycle.timerFired(at: Clock.now()) else { return }
            self.spawn(rt, r)
        }
    }

    // MARK: Stop

    /// Stops one replica: the stop message, then SIGTERM, then SIGKILL to its process group, each after
    /// `stop_timeout`.
    private func stopReplica(_ rt: ServerRuntime, _ r: ReplicaRuntime) {
        r.retryTimer?.cancel()
        r.startTimer?.cancel()
        r.nextProbe = 0
        r.nextPing = 0
        guard r.lifecycle.stopRequested(at: Clock.now()) != nil, let p = r.process else { return }
        let name = "\(label(rt, r))[\(p.pid)]"
        let pid = p.pid
        let timeout = rt.config.stopTimeout
        log.line("\(name): stopping")
        if !p.send(["op": "stop"]) { p.signal(SIGTERM) }
        r.stopTimer = after(timeout) { [unowned self, unowned r] in
            guard let p = r.process, p.pid == pid else { return }
            self.log.line("\(name): still running \(timeout) s after the stop message; SIGTERM")
            p.signal(SIGTERM)
            r.stopTimer = self.after(timeout) { [unowned self, unowned r] in
                guard let p = r.process, p.pid == pid else { return }
                self.log.line("\(name): still running after SIGTERM; SIGKILL to its process group")
                p.killGroup()
            }
        }
    }

    /// Stops a whole server (all replicas); `stepStop` finishes the job as exits arrive.
    /// The caller then runs `stepStop` once (never from here: `stepStop` itself stops servers).
    func stopServer(_ rt: ServerRuntime) {
        rt.wanted = false
        rt.stopping = true
        rt.stopIssued = true
        for r in rt.replicas { stopReplica(rt, r) }
    }

    /// Stops servers in reverse dependency order as their dependents go down, releases fully stopped servers,
    /// and finishes the shutdown when nothing runs any more.
    func stepStop() {
        if shuttingDown {
            for name in DependencyOrder.stopOrder(config.servers) {
                // Each server is stopped once per shutdown, after everything that depends on it is down.
                guard let rt = servers[name], !rt.stopIssued else { continue }
                let dependents = config.servers.filter { $0.dependsOn.contains(name) }.map(\.name)
                if dependents.allSatisfy({ servers[$0]?.isDown ?? true }) { stopServer(rt) }
            }
        }
        for (name, rt) in servers where rt.stopping && rt.isDown {
            rt.stopping = false
            rt.launched = false
            // A stop outside a shutdown (reload, admin) must not count as this server's shutdown stop.
            if !shuttingDown { rt.stopIssued = false }
            if rt.removed {
                rt.closeSocket()
                servers.removeValue(forKey: name)
                log.line("\(name): removed")
            } else if let next = rt.pendingConfig {
                // Changed by a reload: come back with the new configuration (the port is kept unless it changed).
                if next.port != rt.config.port { rt.closeSocket() }
                rt.config = next
                rt.pendingConfig = nil
                rt.wanted = true
                rt.announcedWait = false
            }
        }
        if !shuttingDown { startPending() }
        if shuttingDown, let done = onStopped, servers.values.allSatisfy(\.isDown) {
            onStopped = nil
            for rt in servers.values { rt.closeSocket() }
            log.line("all servers stopped")
            done()
        }
    }

    /// Graceful shutdown in reverse dependency order; `completion` runs on `queue` once every child is reaped.
    public func shutdown(completion: @escaping () -> Void) {
        dispatchPrecondition(condition: .onQueue(queue))
        guard !shuttingDown else { return }
        shuttingDown = true
        onStopped = completion
        log.line("stopping all servers")
        for rt in servers.values { rt.wanted = false }
        stepStop()
    }

    // MARK: Reload

    /// Loads the configuration again and applies the difference: added servers start, removed ones stop,
    /// changed ones restart, all others keep their processes. An invalid configuration changes nothing.
    @discardableResult
    public func reload() -> Result<ConfigDiff, ConfigError> {
        dispatchPrecondition(condition: .onQueue(queue))
        let new: SupervisorConfig
        do { new = try ConfigLoader(source: files).load(mainFile: config.mainFile) } catch {
            log.line("reload rejected, nothing changed: \(error)")
            return .failure(error)
        }
        let diff = ConfigDiff(old: config, new: new)
        log.line(
            "reload: \(diff.added.count) added, \(diff.removed.count) removed, \(diff.changed.count) changed, "
                + "\(diff.unchanged.count) unchanged")
        config = new
        for name in diff.removed {
            guard let rt = servers[name] else { continue }
            rt.removed = true
            if rt.isDown {
                rt.closeSocket()
                servers.removeValue(forKey: name)
            } else {
                stopServer(rt)
            }
        }
        registry.retain(only: Set(new.servers.map(\.name)))
        for name in diff.changed {
            guard let rt = servers[name], let cfg = new.server(named: name) else { continue }
            if rt.isDown && !rt.launched {
                if cfg.port != rt.config.port { rt.closeSocket() }
                rt.config = cfg
                rt.wanted = true
            } else {
                rt.pendingConfig = cfg
                stopServer(rt)
            }
        }
        for name in diff.added {
            if let cfg = new.server(named: name) { servers[name] = ServerRuntime(config: cfg) }
        }
        saveRegistry()
        stepStop()  // releases what is already down, starts what is pending
        return .success(diff)
    }

    // MARK: State folder

    private var registryPath: String { Path.join(config.stateDirectory, "ports.json") }

    private func loadRegistry() {
        _ = mkdir(config.stateDirectory, 0o750)
        switch files.read(registryPath) {
        case .success(let text):
            if let r = PortRegistry.decode(Array(text.utf8)) {
                registry = r
            } else {
                log.line("warning: \(registryPath) is damaged; dynamic ports will be assigned anew")
            }
        case .failure:
            break  // first start
        }
    }

    private func saveRegistry() {
        let bytes = registry.encoded()
        let rc = bytes.withUnsafeBytes { mcps_write_atomic(registryPath, $0.baseAddress, $0.count, 0o640) }
        if rc != 0 { log.line("warning: cannot write \(registryPath): \(String(cString: strerror(rc)))") }
    }

    // MARK: Timers

    /// Runs `body` on the queue after `seconds`; cancel the returned item to disarm it.
    func after(_ seconds: Double, _ body: @escaping () -> Void) -> OneShotTimer {
        OneShotTimer(after: seconds, queue: queue, body)
    }

    // MARK: Introspection (tests, the control socket)

    /// A snapshot of every server, for status output.
    public func snapshot() -> [ServerSnapshot] {
        dispatchPrecondition(condition: .onQueue(queue))
        return servers.values.sorted { $0.name < $1.name }.map { rt in
            ServerSnapshot(
                name: rt.name, port: rt.port, failure: rt.failure,
                replicas: rt.replicas.map {
                    ReplicaSnapshot(
                        index: $0.index, state: $0.lifecycle.phase.name, pid: $0.process?.pid,
                        restarts: $0.lifecycle.restarts, lastExit: $0.lifecycle.lastExit.map { "\($0)" })
                })
        }
    }
}

public struct ReplicaSnapshot: Sendable {
    public var index: Int
    public var state: String
    public var pid: Int32?
    public var restarts: Int
    public var lastExit: String?
}

public struct ServerSnapshot: Sendable {
    public var name: String
    public var port: Int?
    public var failure: String?
    public var replicas: [ReplicaSnapshot]
}

/// A configured server at run time: its socket and replicas.
final class ServerRuntime {
    var config: ServerConfig
    var name: String { config.name }
    var socketFD: Int32 = -1
    var port: Int?
    var replicas: [ReplicaRuntime] = []
    /// Should be running (false after a stop request or when removed).
    var wanted = true
    /// Replicas were created for the current configuration.
    var launched = false
    var stopping = false
    /// A stop was issued during this shutdown (never reset: a shutdown stops each server once).
    var stopIssued = false
    var removed = false
    var announcedWait = false
    /// The configuration to come back with after a reload restart.
    var pendingConfig: ServerConfig?
    /// Why the server cannot run (its port is taken, ...).
    var failure: String?

    init(config: ServerConfig) { self.config = config }

    /// At least one replica said ready.
    var isReady: Bool {
        replicas.contains { if case .running = $0.lifecycle.phase { return true } else { return false } }
    }

    /// No replica has a process.
    var isDown: Bool { replicas.allSatisfy { $0.process == nil } }

    func closeSocket() {
        if socketFD >= 0 { close(socketFD) }
        socketFD = -1
    }
}

/// One replica at run time: its lifecycle value, process and timers.
final class ReplicaRuntime {
    let index: Int
    var lifecycle = ReplicaLifecycle()
    var process: ChildProcess?
    var spawnedAt = 0.0
    var forcedReason: ExitReason?
    var lastPong = 0.0
    var pingSeq = 0
    /// When the next heartbeat ping is due (0: none, the replica is not running).
    var nextPing = 0.0
    var startTimer: OneShotTimer?
    var retryTimer: OneShotTimer?
    var stopTimer: OneShotTimer?
    /// Health: the state machine, the probe in flight (at most one), the next periodic probe, the last result.
    var health = HealthTracker()
    var probe: ProbeRun?
    /// When the next periodic probe is due (0: none).
    var nextProbe = 0.0
    /// The kept-alive connection for `server/discover` probes.
    var portConnection: PortConnection?
    var probeSeq = 0
    var lastProbe: ProbeReport?
    /// The last CPU time read from /proc (diagnostic probes), for a CPU percentage between two probes.
    var cpuSample: (seconds: Double, at: Double)?

    init(index: Int) { self.index = index }

    func cancelTimers() {
        for t in [startTimer, stopTimer] { t?.cancel() }
        nextPing = 0
        nextProbe = 0
        startTimer = nil
        stopTimer = nil
    }
}

/// A cancellable one-shot timer on the supervisor's queue. Unlike `asyncAfter` with a cancelled work item, a
/// cancelled timer never wakes the queue again, so an idle supervisor stays asleep.
final class OneShotTimer {
    private let source: DispatchSourceTimer

    init(after seconds: Double, queue: DispatchQueue, _ body: @escaping () -> Void) {
        source = DispatchSource.makeTimerSource(queue: queue)
        source.schedule(deadline: .now() + .nanoseconds(Int(max(0, seconds) * 1e9)), leeway: .milliseconds(1))
        source.setEventHandler { [source] in
            source.cancel()
            body()
        }
        source.resume()
    }

    func cancel() { source.cancel() }

    deinit { source.cancel() }
}
