import Testing

@testable import SupervisorCore

extension ReplicaLifecycle.Decision {
    var restartDelay: Double? {
        if case .restart(let d, _) = self { return d }
        return nil
    }

    var fatalRetry: Double? {
        if case .fatal(let d, _) = self { return d }
        return nil
    }

    var isStay: Bool {
        if case .stay = self { return true }
        return false
    }

    var reasonText: String? {
        switch self {
        case .none: return nil
        case .restart(_, let r), .fatal(_, let r), .stay(let r): return r
        }
    }
}

/// `#expect` cannot take a mutating call (it re-evaluates the receiver as an immutable value), so events that
/// return a Bool (`ready`, `timerFired`, ...) are checked through this plain function.
func expectTrue(_ condition: Bool, _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(condition, comment, sourceLocation: sourceLocation)
}

func makeIntensity(maxRestarts: Int, window: Double, cooldown: Double) -> IntensityPolicy {
    var i = IntensityPolicy()
    i.maxRestarts = maxRestarts
    i.window = window
    i.cooldown = cooldown
    return i
}

/// Drives one replica through spawn / ready / exit / timer with a clock, the way the daemon would.
struct ReplicaDriver {
    var life = ReplicaLifecycle()
    var now: Double = 1000
    var nextPid: Int32 = 100
    var mode: RestartMode = .onFailure
    var backoff = makeBackoff(initial: 1, max: 100, multiplier: 2, jitter: 0, resetAfter: 60)
    var intensity = makeIntensity(maxRestarts: 100, window: 60, cooldown: 300)
    var random = 0.5

    mutating func spawn() -> Int32 {
        let pid = nextPid
        nextPid += 1
        life.spawned(pid: pid, at: now)
        return pid
    }

    mutating func exit(_ reason: ExitReason) -> ReplicaLifecycle.Decision {
        life.exited(reason, at: now, mode: mode, backoff: backoff, intensity: intensity, random: random)
    }

    /// Spawns, says ready, runs `duration` seconds and exits with `reason`.
    mutating func run(for duration: Double, then reason: ExitReason, sourceLocation: SourceLocation = #_sourceLocation)
        -> ReplicaLifecycle.Decision
    {
        _ = spawn()
        expectTrue(life.ready(at: now), sourceLocation: sourceLocation)
        now += duration
        return exit(reason)
    }

    /// Waits out a restart or fatal decision and fires the timer; returns whether the timer said "spawn".
    mutating func waitAndFire(_ d: ReplicaLifecycle.Decision) -> Bool {
        guard let wait = d.restartDelay ?? d.fatalRetry else { return false }
        now += wait
        return life.timerFired(at: now)
    }
}

struct ReplicaLifecycleTests {
    // MARK: Basic sequence

    @Test func initialState() {
        let r = ReplicaLifecycle()
        #expect(r.phase == .stopped)
        #expect(r.restarts == 0)
        #expect(r.lastExit == nil)
        #expect(r.attempt == 0)
        #expect(r.restartTimes.isEmpty)
    }

    @Test func spawnedReadyExitedRestart() {
        var d = ReplicaDriver()
        d.now = 10
        let pid = d.spawn()
        #expect(d.life.phase == .starting(pid: pid, since: 10))
        #expect(d.life.phase.pid == pid)
        d.now = 10.5
        expectTrue(d.life.ready(at: d.now))
        #expect(d.life.phase == .running(pid: pid, since: 10.5))
        d.now = 20
        let decision = d.exit(.exited(1))
        #expect(decision.restartDelay == 1)  // initial, no jitter
        #expect(d.life.phase == .backoff(at: 21))
        #expect(d.life.phase.pid == nil)
        #expect(d.life.restarts == 1)
        #expect(d.life.lastExit == .exited(1))
        // Too early: no spawn.
        expectTrue(!d.life.timerFired(at: 20.5))
        expectTrue(d.life.timerFired(at: 21))
        // The daemon spawns again.
        d.now = 21
        let pid2 = d.spawn()
        #expect(pid2 != pid)
        #expect(d.life.phase == .starting(pid: pid2, since: 21))
    }

    static let cases: [(RestartMode, ExitReason, Bool)] = [
        (.always, .exited(0), true),
        (.always, .exited(1), true),
        (.always, .signaled(9), true),
        (.always, .signaled(15), true),
        (.always, .startTimeout, true),
        (.always, .hung, true),
        (.always, .unhealthy, true),
        (.onFailure, .exited(0), false),
        (.onFailure, .exited(1), true),
        (.onFailure, .exited(255), true),
        (.onFailure, .signaled(9), true),
        (.onFailure, .signaled(11), true),
        (.onFailure, .startTimeout, true),
        (.onFailure, .hung, true),
        (.onFailure, .unhealthy, true),
        (.never, .exited(0), false),
        (.never, .exited(1), false),
        (.never, .signaled(9), false),
        (.never, .startTimeout, false),
        (.never, .hung, false),
        (.never, .unhealthy, false),
    ]

    @Test(arguments: cases)
    func restartModeAndReason(_ mode: RestartMode, _ reason: ExitReason, _ restarts: Bool) {
        var d = ReplicaDriver()
        d.mode = mode
        let pid = d.spawn()
        if reason != .startTimeout {
            // A start timeout means it never said ready.
            expectTrue(d.life.ready(at: d.now + 0.1))
        }
        #expect(d.life.phase.pid == pid)
        d.now += 5
        let decision = d.exit(reason)
        #expect(d.life.lastExit == reason)
        if restarts {
            #expect(decision.restartDelay == 1)
            #expect(d.life.phase == .backoff(at: d.now + 1))
            #expect(d.life.restarts == 1)
            expectTrue(d.life.timerFired(at: d.now + 1))
        } else {
            #expect(decision.isStay)
            #expect(d.life.phase == .exited(reason))
            #expect(d.life.restarts == 0)
            expectTrue(!d.life.timerFired(at: d.now + 10_000))
        }
    }

    @Test(arguments: RestartMode.allCases, Array(Int32(10)...19))
    func permanentStatusesNeverRestart(_ mode: RestartMode, _ status: Int32) {
        var d = ReplicaDriver()
        d.mode = mode
        let decision = d.run(for: 100, then: .exited(status))
        #expect(decision.isStay)
        #expect(d.life.phase == .exited(.exited(status)))
        #expect(d.life.restarts == 0)
        expectTrue(!d.life.timerFired(at: d.now + 1_000_000))
    }

    @Test func permanentStatusDuringStartupNeverRestarts() {
        var d = ReplicaDriver()
        d.mode = .always
        _ = d.spawn()
        d.now += 0.2
        #expect(d.exit(.exited(12)).isStay)
        #expect(d.life.phase == .exited(.exited(12)))
    }

    @Test(arguments: [Int32(9), 20, 1, 2, 127])
    func statusesOutsideTenToNineteenAreOrdinaryFailures(_ status: Int32) {
        var d = ReplicaDriver()
        d.mode = .onFailure
        #expect(d.run(for: 1, then: .exited(status)).restartDelay != nil)
    }

    @Test func permanentStatusAfterRestartsStopsTheLoop() {
        var d = ReplicaDriver()
        d.mode = .always
        var decision = d.run(for: 1, then: .exited(1))
        expectTrue(d.waitAndFire(decision))
        decision = d.run(for: 1, then: .exited(14))
        #expect(decision.isStay)
        #expect(d.life.phase == .exited(.exited(14)))
        #expect(d.life.restarts == 1)
        #expect(d.life.lastExit == .exited(14))
    }

    // MARK: Backoff across failures

    @Test func delaysGrowAcrossConsecutiveFailures() {
        var d = ReplicaDriver()
        var delays: [Double] = []
        for _ in 0..<6 {
            let decision = d.run(for: 2, then: .exited(1))
            delays.append(decision.restartDelay ?? -1)
            expectTrue(d.waitAndFire(decision))
        }
        #expect(delays == [1, 2, 4, 8, 16, 32])
        #expect(d.life.restarts == 6)
    }

    @Test func delaysStopAtTheCap() {
        var d = ReplicaDriver()
        d.backoff = makeBackoff(initial: 1, max: 5, multiplier: 2, jitter: 0, resetAfter: 60)
        var delays: [Double] = []
        for _ in 0..<6 {
            let decision = d.run(for: 1, then: .signaled(11))
            delays.append(decision.restartDelay ?? -1)
            expectTrue(d.waitAndFire(decision))
        }
        #expect(delays == [1, 2, 4, 5, 5, 5])
    }

    @Test func stableRunResetsTheBackoff() {
        var d = ReplicaDriver()
        var delays: [Double] = []
        for duration in [1.0, 1, 1, 61, 1, 1, 59, 1] {
            let decision = d.run(for: duration, then: .exited(2))
            delays.append(decision.restartDelay ?? -1)
            expectTrue(d.waitAndFire(decision))
        }
        // After the 61 s run the schedule starts again from `initial`; a 59 s run (< resetAfter 60) does not reset.
        #expect(delays == [1, 2, 4, 1, 2, 4, 8, 16])
    }

    @Test func jitterIsPassedThrough() {
        var d = ReplicaDriver()
        d.backoff = makeBackoff(initial: 10, max: 100, multiplier: 2, jitter: 0.5, resetAfter: 60)
        d.random = 0
        let first = d.run(for: 1, then: .exited(1))
        #expect(first.restartDelay.map { approximatelyEqual($0, 5) } == true)
        #expect(d.life.phase == .backoff(at: d.now + first.restartDelay!))
        expectTrue(d.waitAndFire(first))
        d.random = 0.999_999
        let second = d.run(for: 1, then: .exited(1))
        #expect(second.restartDelay.map { approximatelyEqual($0, 30, tolerance: 1e-5) } == true)
    }

    // MARK: Intensity

    @Test func exceedingMaxRestartsWithinTheWindowIsFatal() {
        var d = ReplicaDriver()
        d.mode = .always
        d.intensity = makeIntensity(maxRestarts: 3, window: 60, cooldown: 300)
        for i in 0..<3 {
            let decision = d.run(for: 1, then: .exited(1))
            #expect(decision.restartDelay != nil, "exit \(i + 1) restarts")
            expectTrue(d.waitAndFire(decision))
        }
        // Exit number maxRestarts + 1 within 60 s.
        let decision = d.run(for: 1, then: .exited(1))
        #expect(decision.fatalRetry == 300)
        #expect(d.life.phase == .fatal(retryAt: d.now + 300))
        #expect(d.life.restarts == 3)
        #expect(d.life.lastExit == .exited(1))
        #expect(decision.reasonText?.contains("4") == true, "the reason counts the exits: \(decision)")
    }

    @Test func fatalIsRetriedAfterTheCooldownWithAFreshWindow() {
        var d = ReplicaDriver()
        d.intensity = makeIntensity(maxRestarts: 2, window: 60, cooldown: 300)
        for _ in 0..<2 { expectTrue(d.waitAndFire(d.run(for: 1, then: .hung))) }
        let fatal = d.run(for: 1, then: .hung)
        #expect(fatal.fatalRetry == 300)
        let fatalAt = d.now
        expectTrue(!d.life.timerFired(at: fatalAt + 1))
        expectTrue(!d.life.timerFired(at: fatalAt + 299))
        #expect(d.life.phase == .fatal(retryAt: fatalAt + 300))
        d.now = fatalAt + 300
        expectTrue(d.life.timerFired(at: d.now))
        #expect(d.life.restartTimes.isEmpty)
        #expect(d.life.attempt == 0)
        // A fresh start: the next failure restarts from `initial` and is not fatal.
        let next = d.run(for: 1, then: .hung)
        #expect(next.restartDelay == 1)
        expectTrue(d.waitAndFire(next))
        #expect(d.run(for: 1, then: .hung).restartDelay == 2)
    }

    @Test func maxRestartsOneMakesTheSecondExitFatal() {
        var d = ReplicaDriver()
        d.intensity = makeIntensity(maxRestarts: 1, window: 60, cooldown: 45)
        expectTrue(d.waitAndFire(d.run(for: 1, then: .exited(3))))
        #expect(d.run(for: 1, then: .exited(3)).fatalRetry == 45)
    }

    @Test func exitsOutsideTheWindowAreForgotten() {
        var d = ReplicaDriver()
        d.backoff = makeBackoff(initial: 0.1, max: 1, multiplier: 1, jitter: 0, resetAfter: 1_000_000)
        d.intensity = makeIntensity(maxRestarts: 2, window: 10, cooldown: 300)
        // Exits spaced more than the window apart never add up.
        for _ in 0..<10 {
            let decision = d.run(for: 11, then: .exited(1))
            #expect(decision.restartDelay != nil)
            expectTrue(d.waitAndFire(decision))
        }
        #expect(d.life.restarts == 10)
    }

    @Test func windowSlides() {
        var d = ReplicaDriver()
        d.now = 0
        d.backoff = makeBackoff(initial: 0.1, max: 1, multiplier: 1, jitter: 0, resetAfter: 1_000_000)
        d.intensity = makeIntensity(maxRestarts: 2, window: 10, cooldown: 300)
        // Exits at t = 1, 2.1, 11.2, 11.8.
        expectTrue(d.waitAndFire(d.run(for: 1, then: .exited(1))))
        expectTrue(d.waitAndFire(d.run(for: 1, then: .exited(1))))
        // t = 11.2: the exit at 1 left the window, so only one exit (2.1) is recent: restart.
        let third = d.run(for: 9, then: .exited(1))
        #expect(third.restartDelay != nil)
        expectTrue(d.waitAndFire(third))
        // t = 11.8: the exits at 2.1 and 11.2 are within 10 s: this is the third in the window.
        let fourth = d.run(for: 0.5, then: .exited(1))
        #expect(fourth.fatalRetry == 300)
    }

    @Test func cleanExitsUnderAlwaysCountTowardIntensity() {
        var d = ReplicaDriver()
        d.mode = .always
        d.intensity = makeIntensity(maxRestarts: 2, window: 60, cooldown: 10)
        expectTrue(d.waitAndFire(d.run(for: 1, then: .exited(0))))
        expectTrue(d.waitAndFire(d.run(for: 1, then: .exited(0))))
        #expect(d.run(for: 1, then: .exited(0)).fatalRetry == 10)
    }

    // MARK: Stop requests

    @Test func stopWhileRunningThenExitStays() {
        var d = ReplicaDriver()
        d.mode = .always
        let pid = d.spawn()
        expectTrue(d.life.ready(at: d.now))
        d.now += 30
        #expect(d.life.stopRequested(at: d.now) == pid)
        #expect(d.life.phase == .stopping(pid: pid, since: d.now))
        let stopAt = d.now
        // A second request (impatient admin) returns the same pid and keeps the first time.
        d.now += 1
        #expect(d.life.stopRequested(at: d.now) == pid)
        #expect(d.life.phase == .stopping(pid: pid, since: stopAt))
        d.now += 1
        let decision = d.exit(.signaled(15))
        #expect(decision.isStay)
        #expect(d.life.phase == .stopped)
        #expect(d.life.restarts == 0)
        expectTrue(!d.life.timerFired(at: d.now + 1_000))
    }

    @Test(arguments: [ExitReason.exited(1), .signaled(9), .exited(0), .exited(12)])
    func exitAfterStopRequestNeverRestarts(_ reason: ExitReason) {
        var d = ReplicaDriver()
        d.mode = .always
        _ = d.spawn()
        expectTrue(d.life.ready(at: d.now))
        _ = d.life.stopRequested(at: d.now + 1)
        d.now += 2
        #expect(d.exit(reason).isStay)
        #expect(d.life.phase == .stopped)
    }

    @Test func stopWhileStarting() {
        var d = ReplicaDriver()
        let pid = d.spawn()
        #expect(d.life.stopRequested(at: d.now + 0.1) == pid)
        #expect(d.life.phase == .stopping(pid: pid, since: d.now + 0.1))
        // The ready message that raced with the stop is ignored.
        expectTrue(!d.life.ready(at: d.now + 0.2))
        #expect(d.life.phase == .stopping(pid: pid, since: d.now + 0.1))
        #expect(d.exit(.signaled(15)).isStay)
        #expect(d.life.phase == .stopped)
    }

    @Test func stopDuringBackoff() {
        var d = ReplicaDriver()
        let decision = d.run(for: 1, then: .exited(1))
        let delay = decision.restartDelay!
        #expect(d.life.stopRequested(at: d.now + delay / 2) == nil)
        #expect(d.life.phase == .stopped)
        expectTrue(!d.life.timerFired(at: d.now + delay))
        expectTrue(!d.life.timerFired(at: d.now + delay + 100))
    }

    @Test func stopWhileFatal() {
        var d = ReplicaDriver()
        d.intensity = makeIntensity(maxRestarts: 1, window: 60, cooldown: 50)
        expectTrue(d.waitAndFire(d.run(for: 1, then: .exited(1))))
        #expect(d.run(for: 1, then: .exited(1)).fatalRetry == 50)
        #expect(d.life.stopRequested(at: d.now + 1) == nil)
        #expect(d.life.phase == .stopped)
        expectTrue(!d.life.timerFired(at: d.now + 50))
    }

    @Test func stopWhenExitedOrStopped() {
        var d = ReplicaDriver()
        #expect(d.life.stopRequested(at: 0) == nil)
        #expect(d.life.phase == .stopped)
        d.mode = .never
        _ = d.run(for: 1, then: .exited(0))
        #expect(d.life.phase == .exited(.exited(0)))
        #expect(d.life.stopRequested(at: d.now) == nil)
        #expect(d.life.phase == .stopped)
    }

    @Test func startAgainAfterStop() {
        var d = ReplicaDriver()
        let pid = d.spawn()
        _ = d.life.stopRequested(at: d.now)
        _ = d.exit(.signaled(15))
        let pid2 = d.spawn()
        #expect(pid2 != pid)
        #expect(d.life.phase == .starting(pid: pid2, since: d.now))
        expectTrue(d.life.ready(at: d.now + 1))
    }

    // MARK: Stray events

    @Test func lateOrDuplicateReadyIsIgnored() {
        var d = ReplicaDriver()
        // Never spawned.
        expectTrue(!d.life.ready(at: 1))
        #expect(d.life.phase == .stopped)
        let pid = d.spawn()
        expectTrue(d.life.ready(at: d.now + 1))
        expectTrue(!d.life.ready(at: d.now + 2))
        #expect(d.life.phase == .running(pid: pid, since: d.now + 1))
        // After the exit, during backoff.
        d.now += 5
        let decision = d.exit(.exited(1))
        expectTrue(!d.life.ready(at: d.now + 0.1))
        #expect(d.life.phase == .backoff(at: d.now + decision.restartDelay!))
    }

    @Test func exitWhenNothingRunsIsIgnored() {
        var r = ReplicaLifecycle()
        let b = BackoffPolicy()
        let i = IntensityPolicy()
        #expect(r.exited(.exited(1), at: 5, mode: .always, backoff: b, intensity: i, random: 0.5) == .none)
        #expect(r.phase == .stopped)
        #expect(r.restarts == 0)
    }

    @Test func duplicateExitDuringBackoffIsIgnored() {
        var d = ReplicaDriver()
        let first = d.run(for: 1, then: .exited(1))
        let before = d.life
        let again = d.exit(.signaled(9))
        #expect(again == .none)
        #expect(d.life.phase == before.phase)
        #expect(d.life.restarts == before.restarts)
        #expect(d.life.restartTimes == before.restartTimes)
        #expect(d.life.attempt == before.attempt)
        expectTrue(d.life.timerFired(at: d.now + first.restartDelay!))
    }

    @Test func ignoredExitDoesNotRewriteLastExit() {
        var d = ReplicaDriver()
        _ = d.run(for: 1, then: .exited(1))
        let before = d.life
        _ = d.exit(.signaled(9))
        // Regression test (fixed): `exited` sets `lastExit` before it checks the phase, so an event it ignores ("not ours,
        // already handled", decision .none) still overwrites lastExit with the stale reason.
        #expect(d.life.lastExit == .exited(1))
        #expect(d.life == before)
    }

    @Test func timerInTheWrongPhaseDoesNothing() {
        var d = ReplicaDriver()
        expectTrue(!d.life.timerFired(at: 1_000_000))  // stopped
        _ = d.spawn()
        expectTrue(!d.life.timerFired(at: 1_000_000))  // starting
        expectTrue(d.life.ready(at: d.now))
        expectTrue(!d.life.timerFired(at: 1_000_000))  // running
        _ = d.life.stopRequested(at: d.now)
        expectTrue(!d.life.timerFired(at: 1_000_000))  // stopping
    }

    @Test func restartsAndLastExitAcrossAHistory() {
        var d = ReplicaDriver()
        d.mode = .onFailure
        let reasons: [ExitReason] = [.exited(1), .signaled(6), .hung, .unhealthy]
        for (n, reason) in reasons.enumerated() {
            let decision = d.run(for: 1, then: reason)
            #expect(d.life.lastExit == reason)
            #expect(d.life.restarts == n + 1)
            expectTrue(d.waitAndFire(decision))
        }
        _ = d.spawn()
        d.now += 1
        let timeout = d.exit(.startTimeout)
        #expect(timeout.restartDelay == 16)
        #expect(d.life.restarts == 5)
        #expect(d.life.lastExit == .startTimeout)
        expectTrue(d.waitAndFire(timeout))
        // A clean exit under on-failure: not a restart, but it is the last exit.
        #expect(d.run(for: 1, then: .exited(0)).isStay)
        #expect(d.life.restarts == 5)
        #expect(d.life.lastExit == .exited(0))
    }

    @Test func phaseNames() {
        let phases: [ReplicaLifecycle.Phase] = [
            .stopped, .starting(pid: 1, since: 0), .running(pid: 1, since: 0), .stopping(pid: 1, since: 0),
            .backoff(at: 0), .fatal(retryAt: 0), .exited(.exited(0)),
        ]
        #expect(phases.map(\.name) == ["stopped", "starting", "running", "stopping", "backoff", "fatal", "exited"])
        #expect(phases.map(\.pid) == [nil, 1, 1, 1, nil, nil, nil])
    }
}

struct ExitReasonTests {
    /// The host's load errors (10–19) and the ranges reserved for trust, sandbox and command errors (30–59);
    /// the environment range (20–29, a listening socket that cannot be used) is retried.
    @Test func permanentStatusesAreTheHostsLoadRanges() {
        for code in Int32(-1)...300 {
            let permanent = (10...19).contains(code) || (30...59).contains(code)
            #expect(ExitReason.isPermanent(code) == permanent, "status \(code)")
        }
    }

    @Test func descriptionsNameTheCause() {
        #expect(ExitReason.exited(3).description.contains("3"))
        #expect(ExitReason.signaled(9).description.contains("9"))
        #expect(ExitReason.signaled(9).description.contains("SIGKILL"))
        #expect(ExitReason.signaled(11).description.contains("SIGSEGV"))
        #expect(ExitReason.signaled(64).description.contains("64"))
        #expect(ExitReason.exited(12).description.contains("12"))
        let all: [ExitReason] = [.exited(1), .signaled(1), .startTimeout, .hung, .unhealthy]
        #expect(Set(all.map(\.description)).count == all.count)
    }
}
