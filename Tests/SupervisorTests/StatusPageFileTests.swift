import Glibc
import Testing

@testable import Supervisor

/// Writes rendered pages for Tests/integration/test_status_page.py, which opens them in headless Chromium: run with
/// `STATUS_PAGE_OUT=DIR` (test_status_page.py runs the test bundle with `--filter StatusPageFileTests`). Without
/// the variable it only checks that the pages render.
///
/// DIR/page.html: four servers in two groups with histories (one named like a script, which must show and not
/// run); DIR/killed.html: the same a moment later, when `alpha` was killed; DIR/expected.tsv: one line per server
/// and page, `page<TAB>id<TAB>state<TAB>health<TAB>samples`.
struct StatusPageFileTests {
    static let evil = "<script>document.documentElement.setAttribute('data-pwned','1')</script>"

    static func pages() -> [(String, StatusPageModel)] {
        let now = 1_795_939_236.0
        func history(_ n: Int, rate: (Int) -> Double, errors: (Int) -> Double, p95: (Int) -> Double?) -> [PageSample] {
            (0..<n).map {
                PageSample(
                    time: now - Double((n - 1 - $0) * 10), requestRate: rate($0), errorRatio: errors($0), p95: p95($0))
            }
        }
        let alpha = StatusPageModel.Server(
            name: "alpha", group: "search", state: "running", health: "healthy", score: 1, port: 8765,
            replicas: [
                .init(index: 0, state: "ready", pid: 4242, uptime: 3725, health: "healthy"),
                .init(index: 1, state: "ready", pid: 4243, uptime: 3724, health: "healthy"),
            ], restarts: 0, lastExit: nil,
            history: history(
                60, rate: { 20 + 15 * Double(($0 * 7) % 11) / 10 }, errors: { $0 % 13 == 0 ? 0.02 : 0 },
                p95: { 0.012 + 0.004 * Double($0 % 5) }))
        let beta = StatusPageModel.Server(
            name: "beta", group: "search", state: "running", health: "degraded", score: 0.5, port: 8766,
            replicas: [.init(index: 0, state: "ready", pid: 5000, uptime: 90, health: "degraded")], restarts: 2,
            lastExit: "exit 1",
            history: history(
                24, rate: { Double($0) / 4 }, errors: { Double($0) / 48 }, p95: { $0 % 6 == 0 ? nil : 0.25 }))
        let gamma = StatusPageModel.Server(
            name: "gamma", group: "", state: "down", health: "offline", score: 0, port: 8767,
            replicas: [.init(index: 0, state: "backoff", pid: nil, uptime: nil, health: "offline")], restarts: 5,
            lastExit: "signal 9 (SIGKILL)", history: history(5, rate: { _ in 0 }, errors: { _ in 0 }, p95: { _ in nil })
        )
        let evil = StatusPageModel.Server(
            name: Self.evil, group: "", state: "starting", health: "initializing", score: 0, port: nil, replicas: [],
            restarts: 0, lastExit: nil, history: [])
        let before = StatusPageModel(
            generatedAt: now, version: "0.1.0", sampleInterval: 10, servers: [alpha, beta, gamma, evil])
        var after = before
        after.generatedAt = now + 5
        after.servers[0].state = "down"
        after.servers[0].health = "offline"
        after.servers[0].score = 0
        after.servers[0].restarts = 2
        after.servers[0].lastExit = "signal 9 (SIGKILL)"
        after.servers[0].replicas = [
            .init(index: 0, state: "backoff", pid: nil, uptime: nil, health: "offline"),
            .init(index: 1, state: "backoff", pid: nil, uptime: nil, health: "offline"),
        ]
        return [("page", before), ("killed", after)]
    }

    static var outputDirectory: String? { getenv("STATUS_PAGE_OUT").map { String(cString: $0) } }

    @Test func pagesRender() {
        for (_, model) in Self.pages() {
            let html = StatusPage.render(model)
            for server in model.servers {
                #expect(html.contains("id=\"server-\(StatusPage.escape(server.name))\""))
            }
        }
    }

    @Test(.enabled(if: StatusPageFileTests.outputDirectory != nil)) func writePagesForChromium() throws {
        let dir = Self.outputDirectory!
        var expected = ""
        for (name, model) in Self.pages() {
            try write(StatusPage.render(model), to: "\(dir)/\(name).html")
            for s in model.servers {
                expected += "\(name)\tserver-\(s.name)\t\(s.state)\t\(s.health)\t\(s.history.count)\n"
            }
        }
        try write(expected, to: "\(dir)/expected.tsv")
    }

    struct WriteError: Error, CustomStringConvertible {
        var description: String
    }

    func write(_ text: String, to path: String) throws {
        guard let file = fopen(path, "w") else { throw WriteError(description: "cannot open \(path): errno \(errno)") }
        defer { fclose(file) }
        let bytes = Array(text.utf8)
        guard fwrite(bytes, 1, bytes.count, file) == bytes.count else {
            throw WriteError(description: "cannot write \(path)")
        }
    }
}
