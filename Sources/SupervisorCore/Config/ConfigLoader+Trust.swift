extension ConfigLoader {
    /// Main-file trust settings (`trusted_keys_dir`).
    func readTrustMain(_ r: inout TableReader, into config: inout SupervisorConfig) throws(ConfigError) {}

    /// Per-server and `[defaults]` trust settings (`trust`, `sha256`).
    func readTrust(_ r: inout TableReader, into s: inout ServerConfig) throws(ConfigError) {}
}
