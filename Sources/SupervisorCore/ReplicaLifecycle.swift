import Contracts

/// Why a replica's process ended.
public enum ExitReason: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)
    /// It never said ready within the start timeout (and was killed).
    case startTimeout
    /// It stopped answering heartbeats (and was killed).
    case hung
    /// It was unhealthy too long (and was killed).
    case unhealthy
    /// The OOM killer of its cgroup ended it: "killed: out of memory (memory_max 256M)" (the box, issue 13).
    case outOfMemory(String)

    public var description: String {
        switch self {
        case .exited(let c):
            guard ExitReason.isPermanent(c) else { return "exited with status \(c)" }
            let command = HostExitStatus.range(of: c)?.name == "command"
            return "exited with status \(c)" + (command ? " (command error)" : " (plugin or configuration error)")
        case .signaled(let s): return "killed by signal \(s)" + (ExitReason.signalNames[s].map { " (\($0))" } ?? "")
        case .startTimeout: return "did not become ready within its start timeout"
        case .hung: return "stopped answering heartbeats"
        case .unhealthy: return "was unhealthy"
        case .outOfMemory(let text): return text
        }
    }

    /// The permanent ranges of mcp-plugin-host's exit table: the plugin or its configuration is wrong; restarting
    /// cannot help.
    public static func isPermanent(_ code: Int32) -> Bool { HostExitStatus.isPermanent(code) }

    static let signalNames: [Int32: String] = [
        1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL",
        11: "SIGSEGV", 13: "SIGPIPE", 15: "SIGTERM",
    ]

    var isFailure: Bool {
        if case .exited(0) = self { return false }
        return true
    }
}

/// The lifecycle of one replica as a value: events in, decisions out. The daemon performs the decisions
/// (spawn, kill, arm a timer); this type holds no process, socket or clock, so every rule is unit-testable.
public struct ReplicaLifecycle: Sendable, Equatable {
    public enum Phase: Sendable, Equatable {
        /// Not running and not meant to run (never started, stopped on request, or exited for good).
        case stopped
        /// Spawned, waiting for "ready" until the start timeout.
        case starting(pid: Int32, since: Double)
        case running(pid: Int32, since: Double)
        /// Asked to stop; waiting for the exit.
        case stopping(pid: Int32, since: Double)
        /// Waiting to restart at `at`.
        case backoff(at: Double)
        /// Too many restarts within the window: retried at `retryAt`.
        case fatal(retryAt: Double)
        /// Ended and not restarted (clean exit under on-failure/never, permanent error status).
        case exited(ExitReason)

        public var name: String {
            switch self {
            case .stopped: return "stopped"
            case .starting: return "starting"
            case .running: return "running"
            case .stopping: return "stopping"
            case .backoff: return "backoff"
            case .fatal: return "fatal"
            case .exited: return "exited"
            }
        }

        public var pid: Int32? {
            switch self {
            case .starting(let p, _), .running(let p, _), .stopping(let p, _): return p
            default: return nil
            }
        }
    }

    /// What the daemon must do after an event.
    public enum Decision: Sendable, Equatable {
        case none
        /// Spawn again after `delay` seconds.
        case restart(after: Double, reason: String)
        /// Mark the server fatal; try again after `cooldown` seconds.
        case fatal(retryAfter: Double, reason: String)
        /// Do not restart.
        case stay(reason: String)
    }

    public private(set) var phase: Phase = .stopped
    /// Consecutive failed runs, for the backoff exponent.
    public private(set) var attempt = 0
    /// Times of recent restarts, for the intensity window.
    public private(set) var restartTimes: [Double] = []
    public private(set) var restarts = 0
    public private(set) var lastExit: ExitReason?

    public init() {}

    public mutating func spawned(pid: Int32, at now: Double) {
        phase = .starting(pid: pid, since: now)
    }

    /// The child said "ready". Returns false if it was not starting (a late or duplicate message).
    @discardableResult
    public mutating func ready(at now: Double) -> Bool {
        guard case .starting(let pid, _) = phase else { return false }
        phase = .running(pid: pid, since: now)
        return true
    }

    /// A stop was requested (shutdown, reload, admin). Returns the pid to stop, if any.
    public mutating func stopRequested(at now: Double) -> Int32? {
        switch phase {
        case .starting(let pid, _), .running(let pid, _):
            phase = .stopping(pid: pid, since: now)
            return pid
        case .stopping(let pid, _):
            return pid
        case .backoff, .fatal, .exited, .stopped:
            phase = .stopped
            return nil
        }
    }

    /// A retry timer fired (backoff or fatal cool-down): whether to spawn now.
    public mutating func timerFired(at now: Double) -> Bool {
        switch phase {
        case .backoff(let at) where at <= now + 0.000_5: return true
        case .fatal(let at) where at <= now + 0.000_5:
            // A fresh start after the cool-down: forget the burst that made it fatal.
            restartTimes.removeAll()
            attempt = 0
            return true
        default: return false
        }
    }

    /// The process ended. Decides whether and when it starts again.
    public mutating func exited(
        _ reason: ExitReason, at now: Double, mode: RestartMode, backoff: BackoffPolicy, intensity: IntensityPolicy,
        random: Double
    ) -> Decision {
        var ranFor = 0.0
        switch phase {
        case .stopping, .running, .starting: lastExit = reason
        default: break
        }
        switch phase {
        case .stopping:
            phase = .stopped
            return .stay(reason: "stopped on request (\(reason))")
        case .running(_, let since), .starting(_, let since):
            ranFor = now - since
        default:
            return .none  // not ours (already handled)
        }
        if case .exited(let code) = reason, ExitReason.isPermanent(code) {
            phase = .exited(reason)
            return .stay(reason: "\(reason): not restarting; fix the plugin or its configuration, then reload")
        }
        switch mode {
        case .never:
            phase = .exited(reason)
            return .stay(reason: "\(reason); restart = never")
        case .onFailure where !reason.isFailure:
            phase = .exited(reason)
            return .stay(reason: "\(reason); restart = on-failure")
        default: break
        }
        if ranFor >= backoff.resetAfter { attempt = 0 }
        restartTimes = restartTimes.filter { now - $0 < intensity.window }
        if restartTimes.count >= intensity.maxRestarts {
            phase = .fatal(retryAt: now + intensity.cooldown)
            return .fatal(
                retryAfter: intensity.cooldown,
                reason: "\(reason); \(restartTimes.count + 1) exits within \(Self.fmt(intensity.window)) s: fatal, "
                    + "retrying in \(Self.fmt(intensity.cooldown)) s")
        }
        let delay = backoff.delay(attempt: attempt, random: random)
        attempt += 1
        restarts += 1
        restartTimes.append(now)
        phase = .backoff(at: now + delay)
        return .restart(after: delay, reason: "\(reason); restarting in \(Self.fmt(delay)) s")
    }

    static func fmt(_ d: Double) -> String {
        let ms = (d * 1000).rounded()
        return ms.truncatingRemainder(dividingBy: 1000) == 0 ? "\(Int(ms / 1000))" : "\(ms / 1000)"
    }
}
