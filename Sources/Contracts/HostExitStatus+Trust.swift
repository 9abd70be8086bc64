/// The trust range's statuses (30–39, permanent: the supervisor never restarts on them). docs/plugin-host.md,
/// "Exit statuses", and docs/security.md, "Plugin trust".
extension HostExitStatus {
    /// `--trust signed`: no readable `<plugin>.sig` beside the plugin.
    public static let signatureMissing = HostExitStatus(rawValue: 30)
    /// `--trust signed`: the signature is not a valid Ed25519 signature of the plugin's bytes by any trusted key.
    public static let signatureInvalid = HostExitStatus(rawValue: 31)
    /// `--sha256`: the plugin's SHA-256 is not the expected one.
    public static let digestMismatch = HostExitStatus(rawValue: 32)
    /// `--trust signed`: the trusted keys folder cannot be read or holds no usable Ed25519 public key.
    public static let trustedKeysUnusable = HostExitStatus(rawValue: 33)
    /// The verified copy (a sealed memfd) could not be made.
    public static let verifiedCopyFailed = HostExitStatus(rawValue: 34)
}

extension LogEventName {
    /// The host verified the plugin (signature or digest) and loads the verified copy.
    public static let pluginVerified = "plugin.verified"
    /// The supervisor runs a server with `trust = "any"` (once per server per supervisor start).
    public static let trustAny = "trust.any"
}
