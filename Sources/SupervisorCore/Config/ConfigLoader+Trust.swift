/// Plugin trust in the configuration (docs/security.md, "Plugin trust"; docs/configuration.md):
///
/// - main file: `trusted_keys_dir` (relative to the main file), the folder of trusted Ed25519 public keys (PEM);
/// - `[defaults]` and each server file: `trust = "signed" | "any"`, and per server `sha256 = "<64 hex>"`.
///
/// `trust` and `sha256` in the same table is an error (a digest already names exactly one file); a server file's
/// setting replaces the one from `[defaults]`, whichever key each uses. A server that sets neither (and whose
/// `[defaults]` sets neither) gets `signed` once `trusted_keys_dir` is set, else `any` (`resolveTrust`).
extension ConfigLoader {
    /// Main-file trust settings (`trusted_keys_dir`).
    func readTrustMain(_ r: inout TableReader, into config: inout SupervisorConfig) throws(ConfigError) {
        guard let text = try r.string("trusted_keys_dir") else { return }
        guard !text.isEmpty else {
            throw r.error("trusted_keys_dir", line: nil, "must name a folder of trusted public keys (*.pem)")
        }
        let directory = Path.resolve(text, relativeTo: Path.directory(of: r.file))
        guard let names = source.list(directory) else {
            throw r.error("trusted_keys_dir", line: nil, "cannot read the trusted keys folder \(directory)")
        }
        guard names.contains(where: { $0.hasSuffix(".pem") && !$0.hasPrefix(".") }) else {
            throw r.error(
                "trusted_keys_dir", line: nil,
                "the trusted keys folder \(directory) holds no public key (*.pem): no signed plugin could load")
        }
        config.trustedKeysDirectory = directory
    }

    /// Per-server and `[defaults]` trust settings (`trust`, `sha256`).
    func readTrust(_ r: inout TableReader, into s: inout ServerConfig) throws(ConfigError) {
        let trust = try r.string("trust")
        let digest = try r.string("sha256")
        if trust != nil, digest != nil {
            throw r.error(
                "sha256", line: nil,
                "cannot be combined with trust in the same table: sha256 already admits exactly one file; "
                    + "remove one of them")
        }
        if let trust {
            switch trust {
            case "signed": s.trust = .signed
            case "any": s.trust = .any
            default: throw r.error("trust", line: nil, "must be signed or any, not '\(trust)'")
            }
        }
        if let digest {
            guard r.prefix.isEmpty else {
                throw r.error(
                    "sha256", line: nil, "names exactly one file, so it belongs in a server's file, not in [defaults]")
            }
            guard Self.isDigest(digest) else {
                throw r.error(
                    "sha256", line: nil,
                    "must be the plugin's SHA-256 as 64 hexadecimal digits (sha256sum FILE), not '\(digest)'")
            }
            s.trust = .sha256(digest.lowercased())
        }
    }

    /// After every file is read: the default policy (`signed` once `trusted_keys_dir` is set, else `any`) for the
    /// servers that chose none, and `signed` without a `trusted_keys_dir` refused where it was written.
    func resolveTrust(
        _ config: inout SupervisorConfig, main: TOMLTable, lines: [String: [String: Int]]
    ) throws(ConfigError) {
        var defaultsChose = false
        if case .table(let d)? = main["defaults"]?.value {
            defaultsChose = d["trust"] != nil || d["sha256"] != nil
            if config.trustedKeysDirectory == nil, case .string("signed")? = d["trust"]?.value {
                throw ConfigError(
                    file: config.mainFile, line: d["trust"]?.line, key: "defaults.trust",
                    message: Self.signedWithoutKeys)
            }
        }
        for i in config.servers.indices {
            let own = lines[config.servers[i].name] ?? [:]
            let chose = own["trust"] != nil || own["sha256"] != nil
            if !chose && !defaultsChose {
                config.servers[i].trust = config.trustedKeysDirectory != nil ? .signed : .any
            }
            if config.trustedKeysDirectory == nil, config.servers[i].trust == .signed, let line = own["trust"] {
                throw ConfigError(
                    file: config.servers[i].file, line: line, key: "trust", message: Self.signedWithoutKeys)
            }
        }
    }

    static let signedWithoutKeys =
        "is \"signed\" but the main file sets no trusted_keys_dir (the folder of trusted public keys)"

    /// 64 hexadecimal digits.
    static func isDigest(_ text: String) -> Bool {
        text.utf8.count == 64
            && text.unicodeScalars.allSatisfy {
                ($0 >= "0" && $0 <= "9") || ($0 >= "a" && $0 <= "f") || ($0 >= "A" && $0 <= "F")
            }
    }
}
