import Contracts

/// The levels and states are the contract between the processes (Contracts); these names keep SupervisorCore's
/// callers unchanged.
public typealias HealthLevel = Contracts.HealthLevel
public typealias HealthState = Contracts.HealthState

/// A server's health probing (`[health]` in its file).
public struct HealthConfig: Sendable, Equatable {
    /// The level of the periodic probe.
    public var level: HealthLevel = .detailed
    /// Seconds between probes of one child; 0 turns periodic probing off (heartbeats still run, and the
    /// `health` control method still probes on demand).
    public var interval: Double = 30
    /// A probe that has not completed after this long failed.
    public var timeout: Double = 5
    /// A probe slower than this (end to end, its slowest part) makes the child degraded.
    public var degradedLatency: Double = 0.5
    /// This many failed probes in a row make the child unhealthy (and restart it, unless `restart = "never"`).
    public var failures: Int = 3
    /// A degraded or unhealthy child needs this many good probes in a row to be healthy again.
    public var successes: Int = 2

    public init() {}
}

/// What one probe found.
public enum ProbeOutcome: Sendable, Equatable {
    /// Every part answered, within the latency threshold, and the plugin says healthy.
    case passed
    /// Every part answered, but slowly or with a warning (stuck call slots): serving, not well.
    case slow(String)
    /// A part failed or timed out.
    case failed(String)
}

/// The health state machine of one child. Pure: the supervisor feeds it events and acts on the returned
/// verdicts.
public struct HealthTracker: Sendable, Equatable {
    public private(set) var state: HealthState = .offline
    public private(set) var consecutiveFailures = 0
    public private(set) var consecutiveSuccesses = 0
    /// Why the state is what it is (the last probe's finding), for status output.
    public private(set) var reason: String?

    public init() {}

    /// What the supervisor should do after a probe.
    public enum Verdict: Sendable, Equatable {
        case none
        /// The child just became unhealthy.
        case becameUnhealthy(String)
    }

    /// A process was started.
    public mutating func started() {
        state = .initializing
        consecutiveFailures = 0
        consecutiveSuccesses = 0
        reason = nil
    }

    /// The process is gone.
    public mutating func stopped(_ why: String? = nil) {
        state = .offline
        consecutiveFailures = 0
        consecutiveSuccesses = 0
        reason = why
    }

    /// Feeds one probe result.
    public mutating func record(_ outcome: ProbeOutcome, config: HealthConfig) -> Verdict {
        guard state != .offline else { return .none }
        switch outcome {
        case .passed:
            consecutiveFailures = 0
            consecutiveSuccesses += 1
            switch state {
            case .initializing:
                state = .healthy
                reason = nil
            case .degraded, .unhealthy:
                if consecutiveSuccesses >= config.successes {
                    state = .healthy
                    reason = nil
                }
            case .healthy, .offline:
                break
            }
        case .slow(let why):
            // Serving, so not a failure; not good either, so no step towards recovery.
            consecutiveFailures = 0
            consecutiveSuccesses = 0
            if state != .unhealthy { state = .degraded }
            reason = why
        case .failed(let why):
            consecutiveSuccesses = 0
            consecutiveFailures += 1
            reason = why
            if consecutiveFailures >= config.failures {
                let was = state
                state = .unhealthy
                if was != .unhealthy {
                    return .becameUnhealthy("\(consecutiveFailures) health probe(s) in a row failed; last: \(why)")
                }
            } else if state == .healthy {
                state = .degraded
            }
        }
        return .none
    }
}

/// A server's health from its replicas' states.
public enum HealthAggregate {
    /// The server's state: offline when nothing runs, healthy when every replica is, initializing while the
    /// rest are healthy or starting, unhealthy when no running replica is better, degraded for any other mix (some
    /// capacity is missing or slow).
    public static func state(_ replicas: [HealthState]) -> HealthState {
        let running = replicas.filter { $0 != .offline }
        if running.isEmpty { return .offline }
        if replicas.allSatisfy({ $0 == .healthy }) { return .healthy }
        if replicas.allSatisfy({ $0 == .healthy || $0 == .initializing }) { return .initializing }
        if running.allSatisfy({ $0 == .unhealthy }) { return .unhealthy }
        return .degraded
    }

    /// The mean of the replicas' scores (healthy 1, degraded 0.5, anything else 0), rounded to 0.01.
    public static func score(_ replicas: [HealthState]) -> Double {
        guard !replicas.isEmpty else { return 0 }
        let s = replicas.map(\.score).reduce(0, +) / Double(replicas.count)
        return (s * 100).rounded() / 100
    }
}

/// What the parts of one probe found; `outcome` turns it into a verdict. Parts: the event loop's answer on the
/// control channel (every level), the plugin's health callback and `server/discover` over the port (detailed
/// and up).
public struct ProbeFindings: Sendable, Equatable {
    /// The host's event loop answered on the control channel before the deadline.
    public var loopAnswered = false
    /// Call slots held by calls past their deadline, and the plugin's slot count.
    public var stuck = 0
    public var slots = 0
    /// The plugin part: nil when not asked; `.some(nil)` when asked and not answered before the deadline.
    public var plugin: PluginPart??
    /// The port part: nil when not asked; otherwise the error, or nil for a good answer.
    public var portError: String??
    /// The slowest answered part, seconds from the probe's start.
    public var latency: Double = 0

    public struct PluginPart: Sendable, Equatable {
        /// nil: the plugin has no health callback (counts as healthy).
        public var ok: Bool?
        public var detail: String

        public init(ok: Bool?, detail: String) {
            self.ok = ok
            self.detail = detail
        }
    }

    public init() {}

    /// The verdict. Failures first (they count towards unhealthy), then what makes a serving child degraded.
    public func outcome(_ config: HealthConfig) -> ProbeOutcome {
        let t = Self.format(config.timeout)
        if !loopAnswered {
            return .failed("no answer on the control channel within \(t): the event loop is blocked or stopped")
        }
        if case .some(.some(let e)) = portError { return .failed("server/discover over the port: \(e)") }
        if case .some(.none) = plugin { return .failed("the plugin's health callback did not return within \(t)") }
        if case .some(.some(let p)) = plugin, p.ok == false {
            return .failed("the plugin reports unhealthy: \(p.detail.isEmpty ? "(no detail)" : p.detail)")
        }
        if slots > 0 && stuck >= slots {
            return .failed("every call slot (\(slots)) is held by a call stuck past its deadline")
        }
        if stuck > 0 { return .slow("\(stuck) of \(slots) call slot(s) held by calls stuck past their deadline") }
        if latency > config.degradedLatency {
            return .slow(
                "the probe took \(Self.format(latency)), above degraded_latency (\(Self.format(config.degradedLatency)))"
            )
        }
        return .passed
    }

    /// Seconds as "1.5 s" or "250 ms".
    public static func format(_ seconds: Double) -> String {
        if seconds >= 1 { return "\((seconds * 10).rounded() / 10) s" }
        return "\(Int((seconds * 1000).rounded())) ms"
    }
}
