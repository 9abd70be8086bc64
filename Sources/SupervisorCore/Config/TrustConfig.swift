/// Plugin trust (docs/security.md, "Plugin trust"): which plugin files a server may load.
/// Owned by the trust work (issue 13); the loader reads it in ConfigLoader+Trust.swift.
public enum TrustPolicy: Sendable, Equatable {
    /// Any file (today's behaviour), logged as a warning once per start.
    case any
    /// A valid detached Ed25519 signature (`<plugin>.sig`) by a key in `trusted_keys_dir`.
    case signed
    /// Exactly this file: its SHA-256, lower-case hex.
    case sha256(String)
}
