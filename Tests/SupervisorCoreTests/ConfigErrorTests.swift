import Testing

@testable import SupervisorCore

struct ConfigErrorTests {
    @Test func descriptionWithEverything() {
        let e = ConfigError(file: "/etc/a.toml", line: 12, key: "backoff.jitter", message: "must be between 0 and 1")
        #expect(e.description == "/etc/a.toml:12: backoff.jitter: must be between 0 and 1")
    }

    @Test func descriptionWithoutLine() {
        let e = ConfigError(file: "/etc/a.toml", line: nil, key: "plugin", message: "is required")
        #expect(e.description == "/etc/a.toml: plugin: is required")
    }

    @Test func descriptionWithoutKey() {
        let e = ConfigError(file: "/etc/a.toml", line: 3, key: nil, message: "unterminated string")
        #expect(e.description == "/etc/a.toml:3: unterminated string")
    }

    @Test func descriptionWithFileOnly() {
        let e = ConfigError(file: "/etc/a.toml", line: nil, key: nil, message: "cannot read")
        #expect(e.description == "/etc/a.toml: cannot read")
    }
}
