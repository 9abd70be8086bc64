import Testing

@testable import SupervisorCore

/// `trusted_keys_dir`, `trust` and `sha256` (docs/security.md, "Plugin trust").
struct TrustConfigTests {
    let loader = ConfigLoaderTests()
    static let main = ConfigLoaderTests.main
    static let key = ["/etc/mcp/keys/dev.pem": "-----BEGIN PUBLIC KEY-----\n"]
    static let digest = "DD51BCB61787E5B1E0591266A38AFCFF1EB6220CF6E170C38A3DCF95BD626ADB"

    func server(_ c: SupervisorConfig, _ name: String) throws -> ServerConfig {
        try #require(c.server(named: name))
    }

    @Test func anyWithoutTrustedKeysDir() throws {
        let c = try loader.load(main: "", servers: ["w.toml": "plugin = \"w.so\"\n"])
        #expect(c.trustedKeysDirectory == nil)
        #expect(try server(c, "w").trust == .any)
    }

    @Test func signedByDefaultOnceTrustedKeysDirIsSet() throws {
        let c = try loader.load(
            main: "trusted_keys_dir = \"keys\"\n",
            servers: [
                "a.toml": "plugin = \"a.so\"\n", "b.toml": "plugin = \"b.so\"\ntrust = \"any\"\n",
                "c.toml": "plugin = \"c.so\"\nsha256 = \"\(Self.digest)\"\n",
            ], extra: Self.key)
        #expect(c.trustedKeysDirectory == "/etc/mcp/keys")
        #expect(try server(c, "a").trust == .signed)
        #expect(try server(c, "b").trust == .any)
        #expect(try server(c, "c").trust == .sha256(Self.digest.lowercased()))
    }

    @Test func absoluteTrustedKeysDir() throws {
        let c = try loader.load(
            main: "trusted_keys_dir = \"/srv/keys\"\n", extra: ["/srv/keys/a.pem": "", "/srv/keys/notes.txt": ""])
        #expect(c.trustedKeysDirectory == "/srv/keys")
    }

    @Test func defaultsChooseForServersThatDoNot() throws {
        let c = try loader.load(
            main: "trusted_keys_dir = \"keys\"\n[defaults]\ntrust = \"any\"\n",
            servers: [
                "a.toml": "plugin = \"a.so\"\n", "b.toml": "plugin = \"b.so\"\ntrust = \"signed\"\n",
                "c.toml": "plugin = \"c.so\"\nsha256 = \"\(Self.digest)\"\n",
            ], extra: Self.key)
        #expect(try server(c, "a").trust == .any)
        #expect(try server(c, "b").trust == .signed)
        #expect(try server(c, "c").trust == .sha256(Self.digest.lowercased()))
        let d = try loader.load(
            main: "trusted_keys_dir = \"keys\"\n[defaults]\ntrust = \"signed\"\n",
            servers: ["a.toml": "plugin = \"a.so\"\n", "b.toml": "plugin = \"b.so\"\ntrust = \"any\"\n"],
            extra: Self.key)
        #expect(try server(d, "a").trust == .signed)
        #expect(try server(d, "b").trust == .any)
    }

    @Test func digestWithoutTrustedKeysDir() throws {
        let c = try loader.load(main: "", servers: ["a.toml": "plugin = \"a.so\"\nsha256 = \"\(Self.digest)\"\n"])
        #expect(try server(c, "a").trust == .sha256(Self.digest.lowercased()))
    }

    @Test func signedWithoutTrustedKeysDirInServerFile() {
        let e = loader.loadError(servers: ["a.toml": "plugin = \"a.so\"\n\ntrust = \"signed\"\n"])
        loader.expectError(
            e, file: ConfigLoaderTests.server("a.toml"), line: 3, key: "trust", messageContains: "trusted_keys_dir")
    }

    @Test func signedWithoutTrustedKeysDirInDefaults() {
        let e = loader.loadError(main: "state_dir = \"s\"\n[defaults]\ntrust = \"signed\"\n")
        loader.expectError(e, file: Self.main, line: 3, key: "defaults.trust", messageContains: "trusted_keys_dir")
    }

    @Test func trustAndDigestInOneTable() {
        let e = loader.loadError(
            servers: ["a.toml": "plugin = \"a.so\"\ntrust = \"any\"\nsha256 = \"\(Self.digest)\"\n"])
        loader.expectError(
            e, file: ConfigLoaderTests.server("a.toml"), line: 3, key: "sha256", messageContains: "cannot be combined")
    }

    @Test func digestInDefaults() {
        let e = loader.loadError(main: "[defaults]\nsha256 = \"\(Self.digest)\"\n")
        loader.expectError(e, file: Self.main, line: 2, key: "defaults.sha256", messageContains: "server's file")
    }

    @Test(arguments: [
        String(Self.digest.dropLast()), Self.digest + "0", String(Self.digest.dropLast()) + "g", "",
        "sha256:" + Self.digest,
    ])
    func badDigests(_ text: String) {
        let e = loader.loadError(servers: ["a.toml": "plugin = \"a.so\"\nsha256 = \"\(text)\"\n"])
        loader.expectError(
            e, file: ConfigLoaderTests.server("a.toml"), line: 2, key: "sha256", messageContains: "64 hexadecimal")
    }

    @Test(arguments: ["Signed", "none", "sha256", ""])
    func badTrustValues(_ text: String) {
        let e = loader.loadError(servers: ["a.toml": "plugin = \"a.so\"\ntrust = \"\(text)\"\n"])
        loader.expectError(
            e, file: ConfigLoaderTests.server("a.toml"), line: 2, key: "trust", messageContains: "must be signed or any"
        )
    }

    @Test func trustMustBeAString() {
        let e = loader.loadError(servers: ["a.toml": "plugin = \"a.so\"\ntrust = true\n"])
        loader.expectError(
            e, file: ConfigLoaderTests.server("a.toml"), line: 2, key: "trust", messageContains: "string")
    }

    @Test func unreadableTrustedKeysDir() {
        let e = loader.loadError(main: "state_dir = \"s\"\ntrusted_keys_dir = \"nokeys\"\n")
        loader.expectError(
            e, file: Self.main, line: 2, key: "trusted_keys_dir", messageContains: "cannot read the trusted keys folder"
        )
    }

    @Test func trustedKeysDirWithoutKeys() throws {
        let source = MemoryFileSource(
            [Self.main: "trusted_keys_dir = \"keys\"\n", "/etc/mcp/keys/README": "", "/etc/mcp/keys/.hidden.pem": ""],
            emptyDirectories: [ConfigLoaderTests.serversDir])
        let e = loader.loadError(source)
        loader.expectError(e, file: Self.main, line: 1, key: "trusted_keys_dir", messageContains: "no public key")
    }

    @Test func trustChangeIsAChange() throws {
        let before = try loader.load(main: "", servers: ["a.toml": "plugin = \"a.so\"\n"])
        let after = try loader.load(main: "", servers: ["a.toml": "plugin = \"a.so\"\nsha256 = \"\(Self.digest)\"\n"])
        #expect(before.servers[0] != after.servers[0])
    }
}
