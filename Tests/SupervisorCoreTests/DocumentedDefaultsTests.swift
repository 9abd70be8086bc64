import Glibc
import Testing

@testable import SupervisorCore

/// The defaults the documents promise, read from the documents' own tables (docs/supervisor.md, docs/health.md),
/// against what the loader gives a configuration that sets nothing: so a default changed in the code without the
/// document, or the other way round, fails here. (Comparing with `ServerConfig()` would only compare the code
/// with itself.)
struct DocumentedDefaultsTests {
    let loader = ConfigLoaderTests()

    /// A configuration that sets nothing but the one required key.
    func bare() throws -> (SupervisorConfig, ServerConfig) {
        let config = try loader.load(main: "", servers: ["w.toml": "plugin = \"w.so\"\n"])
        let server = try #require(config.servers.first)
        return (config, server)
    }

    @Test func mainFileDefaultsMatchSupervisorMd() throws {
        let table = try DocTable.read("docs/supervisor.md", table: 0)
        let (config, _) = try bare()
        let base = ConfigLoaderTests.main.split(separator: "/").dropLast().joined(separator: "/")
        #expect(config.stateDirectory == "/" + base + "/" + (try table.code("state_dir")))
        #expect(config.serversDirectory == "/" + base + "/" + (try table.code("servers_dir")))
        #expect(config.listenAddress == (try table.code("listen_address")))
        let range = try table.numbers("port_range")
        #expect(range.count == 2)
        #expect(Double(config.portRange.lowerBound) == range.first)
        #expect(Double(config.portRange.upperBound) == range.last)
        // Resolved by the executable, not the loader: `host` "next to mcp-supervisor", `control_socket`
        // "<state_dir>/control.sock" (test_control_socket.py checks where it really is), `control_group` none.
        #expect(try table.cell("host").contains("next to"))
        #expect(config.hostExecutable == nil)
        #expect(try table.code("control_socket") == "<state_dir>/control.sock")
        #expect(config.controlSocket == nil)
        #expect(try table.cell("control_group") == "none")
        #expect(config.controlGroup == nil)
        #expect(try table.cell("metrics_listen").hasPrefix("none"))
        #expect(config.metricsListen == nil)
        #expect(try table.cell("metrics_allow_remote") == "false")
        #expect(config.metricsAllowRemote == false)
        #expect(config.metricsScrapeTimeout == (try table.number("metrics_scrape_timeout")))
    }

    @Test func serverFileDefaultsMatchSupervisorMd() throws {
        let table = try DocTable.read("docs/supervisor.md", table: 1)
        let (_, server) = try bare()
        #expect(try table.cell("name") == "file name")
        #expect(server.name == "w")
        #expect(try table.cell("port") == "dynamic")
        #expect(server.port == nil)
        #expect(Double(server.replicas) == (try table.number("replicas")))
        #expect(server.restart.rawValue == (try table.code("restart")))
        #expect(server.startTimeout == (try table.number("start_timeout")))
        #expect(server.stopTimeout == (try table.number("stop_timeout")))
        let heartbeat = try table.numbers("heartbeat_interval")
        #expect(heartbeat == [server.heartbeatInterval, server.heartbeatTimeout])
        #expect(try table.code("depends_on") == "[]")
        #expect(server.dependsOn.isEmpty)
        #expect(try table.cell("group") == "none")
        #expect(server.group == "")
        #expect(try table.code("host_args") == "[]")
        #expect(server.hostArguments.isEmpty)
        #expect(server.pluginConfig == (try table.code("[config]")))
        #expect(try table.cell("[env]").isEmpty)
        #expect(server.environment.isEmpty)

        let backoff = try table.settings("[backoff]")
        #expect(backoff.count == 5)
        #expect(server.backoff.initial == backoff["initial"])
        #expect(server.backoff.max == backoff["max"])
        #expect(server.backoff.multiplier == backoff["multiplier"])
        #expect(server.backoff.jitter == backoff["jitter"])
        #expect(server.backoff.resetAfter == backoff["reset_after"])

        let intensity = try table.settings("[intensity]")
        #expect(intensity.count == 3)
        #expect(Double(server.intensity.maxRestarts) == intensity["max_restarts"])
        #expect(server.intensity.window == intensity["window"])
        #expect(server.intensity.cooldown == intensity["cooldown"])

        // The summary in supervisor.md's [health] row is the same as health.md's table.
        let health = try table.settings("[health]")
        #expect(health.count == 5)
        #expect(try table.cell("[health]").contains("level = \"\(server.health.level.rawValue)\""))
        #expect(server.health.interval == health["interval"])
        #expect(server.health.timeout == health["timeout"])
        #expect(server.health.degradedLatency == health["degraded_latency"])
        #expect(Double(server.health.failures) == health["failures"])
        #expect(Double(server.health.successes) == health["successes"])
    }

    @Test func healthDefaultsMatchHealthMd() throws {
        let table = try DocTable.read("docs/health.md", table: 2)
        let (_, server) = try bare()
        #expect(server.health.level.rawValue == (try table.code("level")).trimmingQuotes)
        #expect(server.health.interval == (try table.number("interval")))
        #expect(server.health.timeout == (try table.number("timeout")))
        #expect(server.health.degradedLatency == (try table.number("degraded_latency")))
        #expect(Double(server.health.failures) == (try table.number("failures")))
        #expect(Double(server.health.successes) == (try table.number("successes")))
        // And the documented rule between two of them holds for the defaults.
        #expect(server.health.degradedLatency < server.health.timeout)
    }
}

/// One markdown table of a document in docs/: its rows by the first cell's name (backticks removed; for a
/// `a` / `b` row, the first name), each row's second cell (the default) as written.
struct DocTable {
    struct Missing: Error, CustomStringConvertible {
        var description: String
    }

    let document: String
    let rows: [String: String]

    /// The `table`-th table (0-based) of the document at `path` (relative to the repository root).
    static func read(_ path: String, table: Int) throws -> DocTable {
        let text = try readFile(repositoryRoot() + "/" + path)
        var tables: [[String: String]] = []
        var current: [String: String]?
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingSpaces
            guard line.hasPrefix("|") else {
                if let t = current { tables.append(t) }
                current = nil
                continue
            }
            let cells = line.dropFirst().split(separator: "|", omittingEmptySubsequences: false).map {
                $0.trimmingSpaces
            }
            guard cells.count >= 2 else { continue }
            if current == nil {
                current = [:]  // the header row
                continue
            }
            if cells[0].allSatisfy({ $0 == "-" }) { continue }  // the separator row
            let name = (cells[0].split(separator: "/").first ?? "").trimmingSpaces.filter { $0 != "`" }
            current?[name] = cells[1]
        }
        if let t = current { tables.append(t) }
        guard table < tables.count else { throw Missing(description: "\(path) has only \(tables.count) tables") }
        return DocTable(document: path, rows: tables[table])
    }

    func cell(_ key: String) throws -> String {
        guard let value = rows[key] else { throw Missing(description: "\(document): no row for \(key)") }
        return value
    }

    /// A cell written as one code span: `value`.
    func code(_ key: String) throws -> String {
        let value = try cell(key)
        guard value.hasPrefix("`"), value.hasSuffix("`"), value.count >= 2 else {
            throw Missing(description: "\(document): the default of \(key) is not one code span: \(value)")
        }
        return String(value.dropFirst().dropLast())
    }

    /// Every number in a cell, in order ("20 / 60", "`[39000, 39999]`").
    func numbers(_ key: String) throws -> [Double] {
        try cell(key).split(whereSeparator: { !($0.isNumber || $0 == ".") }).compactMap { Double(String($0)) }
    }

    func number(_ key: String) throws -> Double {
        let all = try numbers(key)
        guard all.count == 1 else { throw Missing(description: "\(document): \(key) is not one number: \(all)") }
        return all[0]
    }

    /// `name = number` code spans of a cell (`initial = 0.1`, `max = 30`, ...); non-numeric ones are left out.
    func settings(_ key: String) throws -> [String: Double] {
        var out: [String: Double] = [:]
        for span in try cell(key).split(separator: "`").map(String.init) where span.contains("=") {
            let parts = span.split(separator: "=", maxSplits: 1).map { $0.trimmingSpaces }
            if let v = Double(parts[1]) {
                out[parts[0]] = v
            } else if !parts[1].hasPrefix("\"") {
                throw Missing(description: "\(document): \(key): cannot read \(span)")
            }
        }
        return out
    }

    /// The repository root: this file is Tests/SupervisorCoreTests/DocumentedDefaultsTests.swift.
    static func repositoryRoot(file: String = #filePath) -> String {
        file.split(separator: "/", omittingEmptySubsequences: false).dropLast(3).joined(separator: "/")
    }

    static func readFile(_ path: String) throws -> String {
        guard let f = fopen(path, "r") else { throw Missing(description: "cannot open \(path)") }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&chunk, 1, chunk.count, f)
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension StringProtocol {
    fileprivate var trimmingSpaces: String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }

    fileprivate var trimmingQuotes: String { String(filter { $0 != "\"" }) }
}
