import SupervisorCore
import Testing

@testable import Supervisor

/// The host arguments each trust policy becomes (docs/security.md, "Plugin trust"), and the `trust = any`
/// warning's once-per-server rule.
struct TrustArgumentsTests {
    func server(_ name: String, _ trust: TrustPolicy) -> ServerConfig {
        var s = ServerConfig(name: name, file: "/etc/mcp/servers.d/\(name).toml", plugin: "/opt/\(name).so")
        s.trust = trust
        return s
    }

    @Test func argumentsPerPolicy() {
        var config = SupervisorConfig(mainFile: "/etc/mcp/s.toml", stateDirectory: "/s", serversDirectory: "/d")
        config.trustedKeysDirectory = "/etc/mcp/keys"
        #expect(TrustArguments.host(for: server("a", .any), config: config) == ["--trust", "any"])
        #expect(
            TrustArguments.host(for: server("b", .signed), config: config)
                == ["--trust", "signed", "--trusted-keys-dir", "/etc/mcp/keys"])
        let digest = String(repeating: "ab", count: 32)
        #expect(
            TrustArguments.host(for: server("c", .sha256(digest)), config: config)
                == ["--trust", "any", "--sha256", digest])
    }

    @Test func warnsOncePerServerAndOnlyForAny() {
        let log = SupervisorLog()
        let name = "trust-arguments-test-\(UInt64.random(in: 0...UInt64.max))"
        #expect(TrustArguments.warnIfUntrusted(server(name, .any), log: log))
        #expect(!TrustArguments.warnIfUntrusted(server(name, .any), log: log))
        #expect(!TrustArguments.warnIfUntrusted(server(name + "-signed", .signed), log: log))
        #expect(
            !TrustArguments.warnIfUntrusted(
                server(name + "-pinned", .sha256(String(repeating: "0", count: 64))), log: log))
    }
}
