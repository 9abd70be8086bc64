import Testing

@testable import SupervisorCore

struct HealthTrackerTests {
    var config: HealthConfig {
        var c = HealthConfig()
        c.failures = 3
        c.successes = 2
        return c
    }

    @Test func startsOfflineAndInitializesOnStart() {
        var t = HealthTracker()
        #expect(t.state == .offline)
        #expect(t.record(.passed, config: config) == .none)
        #expect(t.state == .offline, "a probe result without a process changes nothing")
        t.started()
        #expect(t.state == .initializing)
    }

    @Test func firstPassMakesAStartingChildHealthy() {
        var t = HealthTracker()
        t.started()
        _ = t.record(.passed, config: config)
        #expect(t.state == .healthy)
        #expect(t.reason == nil)
    }

    @Test func slowProbeDegradesWithoutCountingAsFailure() {
        var t = HealthTracker()
        t.started()
        _ = t.record(.passed, config: config)
        for _ in 0..<10 { #expect(t.record(.slow("612 ms > 500 ms"), config: config) == .none) }
        #expect(t.state == .degraded)
        #expect(t.consecutiveFailures == 0)
        #expect(t.reason == "612 ms > 500 ms")
    }

    @Test func failuresBelowThresholdDegradeThenUnhealthyOnce() {
        var t = HealthTracker()
        t.started()
        _ = t.record(.passed, config: config)
        #expect(t.record(.failed("a"), config: config) == .none)
        #expect(t.state == .degraded)
        #expect(t.record(.failed("b"), config: config) == .none)
        #expect(t.state == .degraded)
        #expect(
            t.record(.failed("c"), config: config)
                == .becameUnhealthy("3 health probe(s) in a row failed; last: c"))
        #expect(t.state == .unhealthy)
        #expect(t.record(.failed("d"), config: config) == .none, "the verdict comes once, on the transition")
        #expect(t.state == .unhealthy)
    }

    @Test func aPassBetweenFailuresResetsTheCount() {
        var t = HealthTracker()
        t.started()
        _ = t.record(.passed, config: config)
        _ = t.record(.failed("a"), config: config)
        _ = t.record(.failed("b"), config: config)
        _ = t.record(.passed, config: config)
        #expect(t.record(.failed("c"), config: config) == .none)
        #expect(t.state == .degraded)
    }

    @Test func recoveryNeedsConfiguredSuccesses() {
        var t = HealthTracker()
        t.started()
        for _ in 0..<3 { _ = t.record(.failed("x"), config: config) }
        #expect(t.state == .unhealthy)
        _ = t.record(.passed, config: config)
        #expect(t.state == .unhealthy, "one success is not enough with successes = 2")
        _ = t.record(.passed, config: config)
        #expect(t.state == .healthy)

        _ = t.record(.slow("slow"), config: config)
        #expect(t.state == .degraded)
        _ = t.record(.passed, config: config)
        #expect(t.state == .degraded)
        _ = t.record(.slow("slow"), config: config)
        _ = t.record(.passed, config: config)
        #expect(t.state == .degraded, "a slow probe restarts the recovery count")
        _ = t.record(.passed, config: config)
        #expect(t.state == .healthy)
    }

    @Test func slowDoesNotLiftUnhealthy() {
        var t = HealthTracker()
        t.started()
        for _ in 0..<3 { _ = t.record(.failed("x"), config: config) }
        _ = t.record(.slow("slow"), config: config)
        #expect(t.state == .unhealthy)
    }

    @Test func aStartingChildThatNeverPassesBecomesUnhealthy() {
        var t = HealthTracker()
        t.started()
        _ = t.record(.failed("x"), config: config)
        #expect(t.state == .initializing)
        _ = t.record(.failed("x"), config: config)
        #expect(t.record(.failed("x"), config: config) != .none)
        #expect(t.state == .unhealthy)
    }

    @Test func stopAndRestartResetEverything() {
        var t = HealthTracker()
        t.started()
        for _ in 0..<3 { _ = t.record(.failed("x"), config: config) }
        t.stopped("exited with status 1")
        #expect(t.state == .offline)
        #expect(t.reason == "exited with status 1")
        t.started()
        #expect(t.state == .initializing)
        #expect(t.consecutiveFailures == 0)
    }

    @Test func levelsAreOrdered() {
        #expect(HealthLevel.basic < .detailed)
        #expect(HealthLevel.detailed < .diagnostic)
        #expect(!(HealthLevel.diagnostic < .basic))
    }
}

struct HealthAggregateTests {
    @Test(arguments: [
        ([HealthState.healthy], HealthState.healthy, 1.0),
        ([.healthy, .healthy], .healthy, 1.0),
        ([.offline], .offline, 0.0),
        ([.offline, .offline], .offline, 0.0),
        ([.initializing], .initializing, 0.0),
        ([.healthy, .initializing], .initializing, 0.5),
        ([.healthy, .degraded], .degraded, 0.75),
        ([.healthy, .offline], .degraded, 0.5),
        ([.healthy, .unhealthy], .degraded, 0.5),
        ([.unhealthy, .unhealthy], .unhealthy, 0.0),
        ([.unhealthy, .offline], .unhealthy, 0.0),
        ([.degraded], .degraded, 0.5),
        ([.healthy, .healthy, .degraded], .degraded, 0.83),
    ])
    func aggregate(_ replicas: [HealthState], _ state: HealthState, _ score: Double) {
        #expect(HealthAggregate.state(replicas) == state)
        #expect(HealthAggregate.score(replicas) == score)
    }

    @Test func noReplicasIsOfflineWithScoreZero() {
        #expect(HealthAggregate.state([]) == .offline)
        #expect(HealthAggregate.score([]) == 0)
    }
}

struct HealthConfigLoaderTests {
    let loader = ConfigLoaderTests()

    @Test func defaultsWhenAbsent() throws {
        let c = try loader.load(main: "", servers: ["w.toml": "plugin = \"w.so\"\n"])
        #expect(c.servers.first?.health == HealthConfig())
        #expect(HealthConfig().level == .detailed)
        #expect(HealthConfig().interval == 30)
    }

    @Test func everyKeyFromTheServerFile() throws {
        let text = """
            plugin = "w.so"

            [health]
            level = "diagnostic"
            interval = 1.5
            timeout = 2
            degraded_latency = 0.25
            failures = 4
            successes = 3
            """
        let h = try #require(try loader.load(main: "", servers: ["w.toml": text]).servers.first?.health)
        #expect(h.level == .diagnostic)
        #expect(h.interval == 1.5)
        #expect(h.timeout == 2)
        #expect(h.degradedLatency == 0.25)
        #expect(h.failures == 4)
        #expect(h.successes == 3)
    }

    @Test func defaultsHealthIsInheritedAndOverridden() throws {
        let main = "[defaults.health]\ninterval = 3\nfailures = 5\n"
        let c = try loader.load(
            main: main,
            servers: ["a.toml": "plugin = \"a.so\"\n", "b.toml": "plugin = \"b.so\"\n[health]\nfailures = 1\n"])
        #expect(c.server(named: "a")?.health.interval == 3)
        #expect(c.server(named: "a")?.health.failures == 5)
        #expect(c.server(named: "b")?.health.interval == 3)
        #expect(c.server(named: "b")?.health.failures == 1)
    }

    @Test func zeroIntervalTurnsProbingOff() throws {
        let c = try loader.load(main: "", servers: ["w.toml": "plugin = \"w.so\"\n[health]\ninterval = 0\n"])
        #expect(c.servers.first?.health.interval == 0)
    }

    @Test(arguments: [
        ("level = \"deep\"", "health.level", 4),
        ("interval = 0.01", "health.interval", 4),
        ("interval = -1", "health.interval", 4),
        ("timeout = 0", "health.timeout", 4),
        ("failures = 0", "health.failures", 4),
        ("successes = 1001", "health.successes", 4),
        ("failures = \"3\"", "health.failures", 4),
        ("degraded_latency = 9", "health.degraded_latency", 4),
        ("probe = 1", "health.probe", 4),
    ])
    func badHealthSettings(_ setting: String, _ key: String, _ line: Int) {
        let e = loader.loadError(servers: ["web.toml": "plugin = \"w.so\"\n\n[health]\n\(setting)\n"])
        #expect(e?.file == ConfigLoaderTests.server("web.toml"))
        #expect(e?.key == key)
        #expect(e?.line == line)
    }

    @Test func badHealthInDefaultsNamesTheMainFile() {
        let e = loader.loadError(main: "[defaults.health]\nfailures = 0\n")
        #expect(e?.file == ConfigLoaderTests.main)
        #expect(e?.key == "defaults.health.failures")
        #expect(e?.line == 2)
    }
}

struct ProbeFindingsTests {
    var config: HealthConfig {
        var c = HealthConfig()
        c.timeout = 2
        c.degradedLatency = 0.2
        return c
    }

    func good() -> ProbeFindings {
        var f = ProbeFindings()
        f.loopAnswered = true
        f.slots = 2
        f.plugin = .some(.init(ok: true, detail: "ok"))
        f.portError = .some(nil)
        f.latency = 0.01
        return f
    }

    @Test func everythingAnsweredInTimeIsAPass() {
        #expect(good().outcome(config) == .passed)
        var basic = ProbeFindings()
        basic.loopAnswered = true
        #expect(basic.outcome(config) == .passed, "a basic probe asks only the event loop")
        var noCallback = good()
        noCallback.plugin = .some(.init(ok: nil, detail: ""))
        #expect(noCallback.outcome(config) == .passed, "a plugin without a health callback is not unhealthy")
    }

    @Test func silentLoopFails() {
        var f = good()
        f.loopAnswered = false
        #expect(
            f.outcome(config)
                == .failed("no answer on the control channel within 2.0 s: the event loop is blocked or stopped"))
    }

    @Test func portErrorFails() {
        var f = good()
        f.portError = .some("connect: Connection refused")
        #expect(f.outcome(config) == .failed("server/discover over the port: connect: Connection refused"))
    }

    @Test func unansweredPluginFails() {
        var f = good()
        f.plugin = .some(nil)
        #expect(f.outcome(config) == .failed("the plugin's health callback did not return within 2.0 s"))
    }

    @Test func pluginSaysUnhealthy() {
        var f = good()
        f.plugin = .some(.init(ok: false, detail: "db down"))
        #expect(f.outcome(config) == .failed("the plugin reports unhealthy: db down"))
    }

    @Test func stuckSlots() {
        var f = good()
        f.stuck = 1
        #expect(f.outcome(config) == .slow("1 of 2 call slot(s) held by calls stuck past their deadline"))
        f.stuck = 2
        #expect(f.outcome(config) == .failed("every call slot (2) is held by a call stuck past its deadline"))
    }

    @Test func slowIsDegradedNotFailed() {
        var f = good()
        f.latency = 0.35
        #expect(f.outcome(config) == .slow("the probe took 350 ms, above degraded_latency (200 ms)"))
        f.latency = 0.2
        #expect(f.outcome(config) == .passed, "exactly the threshold is still fine")
    }
}
