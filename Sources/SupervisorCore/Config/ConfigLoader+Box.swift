extension ConfigLoader {
    /// Per-server and `[defaults]` box settings.
    func readBox(_ r: inout TableReader, into s: inout ServerConfig) throws(ConfigError) {}
}
