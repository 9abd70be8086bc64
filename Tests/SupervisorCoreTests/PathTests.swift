import Testing

@testable import SupervisorCore

struct PathTests {
    @Test func directoryOf() {
        #expect(Path.directory(of: "/etc/mcp/supervisor.toml") == "/etc/mcp")
        #expect(Path.directory(of: "/supervisor.toml") == "/")
        #expect(Path.directory(of: "supervisor.toml") == ".")
        #expect(Path.directory(of: "conf/supervisor.toml") == "conf")
    }

    @Test func lastComponent() {
        #expect(Path.lastComponent("/etc/mcp/servers.d/web.toml") == "web.toml")
        #expect(Path.lastComponent("web.toml") == "web.toml")
    }

    @Test func joinAndResolve() {
        #expect(Path.join("/a", "b") == "/a/b")
        #expect(Path.join("/a/", "b") == "/a/b")
        #expect(Path.join("/", "b") == "/b")
        #expect(Path.resolve("/abs/x.so", relativeTo: "/base") == "/abs/x.so")
        #expect(Path.resolve("rel/x.so", relativeTo: "/base") == "/base/rel/x.so")
    }
}
