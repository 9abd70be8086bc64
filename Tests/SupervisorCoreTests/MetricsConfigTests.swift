import Testing

@testable import SupervisorCore

/// `metrics_listen`, `metrics_allow_remote`, `metrics_scrape_timeout` and the per-server `group` (docs/metrics.md).
struct MetricsConfigTests {
    let loader = ConfigLoaderTests()
    static let main = ConfigLoaderTests.main

    @Test func offByDefault() throws {
        let c = try loader.load(main: "", servers: ["w.toml": "plugin = \"w.so\"\n"])
        #expect(c.metricsListen == nil)
        #expect(c.metricsAllowRemote == false)
        #expect(c.metricsScrapeTimeout == 0.5)
        #expect(c.servers.first?.group == "")
    }

    @Test(arguments: [
        ("127.0.0.1:9464", "127.0.0.1", 9464, false), ("[::1]:9464", "::1", 9464, true),
        ("127.1.2.3:1", "127.1.2.3", 1, false), ("[::ffff:127.0.0.1]:65535", "::ffff:127.0.0.1", 65535, true),
        ("[0:0:0:0:0:0:0:1]:80", "0:0:0:0:0:0:0:1", 80, true),
    ])
    func loopbackAddresses(_ text: String, _ host: String, _ port: Int, _ v6: Bool) throws {
        let c = try loader.load(main: "metrics_listen = \"\(text)\"\nmetrics_scrape_timeout = 1.5\n")
        let address = try #require(c.metricsListen)
        #expect(address == MetricsAddress(host: host, port: port, isIPv6: v6))
        #expect(address.isLoopback)
        #expect(address.description == text)
        #expect(c.metricsScrapeTimeout == 1.5)
    }

    @Test(arguments: ["0.0.0.0:9464", "192.168.1.10:9464", "[::]:9464", "[2001:db8::1]:9464", "[::ffff:10.0.0.1]:9"])
    func remoteNeedsAllowRemote(_ text: String) throws {
        let e = loader.loadError(main: "state_dir = \"s\"\nmetrics_listen = \"\(text)\"\n")
        loader.expectError(e, file: Self.main, line: 2, key: "metrics_listen", messageContains: "metrics_allow_remote")
        let c = try loader.load(main: "metrics_allow_remote = true\nmetrics_listen = \"\(text)\"\n")
        #expect(c.metricsListen?.description == text)
        #expect(c.metricsListen?.isLoopback == false)
    }

    @Test(arguments: [
        "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:http", "localhost:9464",
        "::1:9464", "[::1]9464", "[::1:9464", "[1::2::3]:9", "[12345::]:9", "256.0.0.1:9", "1.2.3:9", "",
        "127.0.0.1:+80", "[::1]:-1",
    ])
    func badAddresses(_ text: String) {
        let e = loader.loadError(main: "\nmetrics_listen = \"\(text)\"\n")
        loader.expectError(e, file: Self.main, line: 2, key: "metrics_listen", messageContains: "is not an address")
    }

    @Test func listenMustBeAString() {
        let e = loader.loadError(main: "metrics_listen = 9464\n")
        loader.expectError(e, file: Self.main, line: 1, key: "metrics_listen", messageContains: "must be a string")
    }

    @Test func allowRemoteMustBeABool() {
        let e = loader.loadError(main: "metrics_allow_remote = \"yes\"\n")
        loader.expectError(e, file: Self.main, line: 1, key: "metrics_allow_remote", messageContains: "true or false")
    }

    @Test(arguments: ["0", "0.001", "61", "-1", "\"fast\""])
    func badScrapeTimeout(_ value: String) {
        let e = loader.loadError(main: "\n\nmetrics_scrape_timeout = \(value)\n")
        loader.expectError(e, file: Self.main, line: 3, key: "metrics_scrape_timeout")
    }

    @Test(arguments: ["blue", "team.a-1_B", String(repeating: "g", count: 64)])
    func goodGroups(_ group: String) throws {
        let c = try loader.load(main: "", servers: ["w.toml": "plugin = \"w.so\"\ngroup = \"\(group)\"\n"])
        #expect(c.servers.first?.group == group)
    }

    @Test(arguments: ["", "has space", "a/b", "ümlaut", String(repeating: "g", count: 65), "x\\\"y", "{}"])
    func badGroups(_ group: String) {
        let e = loader.loadError(servers: ["w.toml": "plugin = \"w.so\"\n\ngroup = \"\(group)\"\n"])
        loader.expectError(
            e, file: ConfigLoaderTests.server("w.toml"), line: 3, key: "group", messageContains: "not a valid group")
    }

    @Test func groupIsPerServerNotADefault() {
        let e = loader.loadError(main: "[defaults]\ngroup = \"g\"\n")
        loader.expectError(e, file: Self.main, line: 2, key: "defaults.group", messageContains: "unknown")
    }

    @Test func metricsKeysDoNotRestartServers() throws {
        let old = try loader.load(main: "", servers: ["w.toml": "plugin = \"w.so\"\n"])
        let new = try loader.load(
            main: "metrics_listen = \"127.0.0.1:9464\"\nmetrics_scrape_timeout = 2\n",
            servers: ["w.toml": "plugin = \"w.so\"\n"])
        #expect(ConfigDiff(old: old, new: new).unchanged == ["w"])
    }
}
