import CTrust
import Contracts

#if canImport(Glibc)
    import Glibc
#endif

/// What a plugin file must prove before it loads (`--trust`, `--trusted-keys-dir`, `--sha256`;
/// docs/security.md, "Plugin trust").
public struct TrustRequirement: Sendable, Equatable, CustomStringConvertible {
    /// A valid Ed25519 signature (`<plugin>.sig`) by a key in `keysDirectory`.
    public var signed: Bool
    public var keysDirectory: String?
    /// Exactly this file: its SHA-256, lower-case hex.
    public var sha256: String?

    public init(signed: Bool = false, keysDirectory: String? = nil, sha256: String? = nil) {
        self.signed = signed
        self.keysDirectory = keysDirectory
        self.sha256 = sha256?.lowercased()
    }

    public static let any = TrustRequirement()

    /// Today's behaviour: any file loads, nothing is verified.
    public var isAny: Bool { !signed && sha256 == nil }

    public var description: String {
        switch (signed, sha256 != nil) {
        case (false, false): return "any"
        case (true, false): return "signed"
        case (false, true): return "sha256"
        case (true, true): return "signed and sha256"
        }
    }

    /// The `mcp-plugin-host` arguments that ask for this requirement.
    public var arguments: [String] {
        var args = ["--trust", signed ? "signed" : "any"]
        if signed, let keysDirectory { args += ["--trusted-keys-dir", keysDirectory] }
        if let sha256 { args += ["--sha256", sha256] }
        return args
    }

    /// 64 hexadecimal digits (either case).
    public static func isDigest(_ text: String) -> Bool {
        text.utf8.count == 64
            && text.utf8.allSatisfy {
                ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
                    || ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "f"))
                    || ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "F"))
            }
    }
}

/// A trusted public key: its file and its fingerprint (SHA-256 of its DER SubjectPublicKeyInfo).
public struct TrustedKey: Sendable, Equatable {
    public var file: String
    public var fingerprint: String
}

/// A plugin whose bytes passed the requirement: a sealed memfd holding exactly the verified bytes. The loader
/// maps this descriptor, never the file again; it stays open for the life of the process.
public struct VerifiedPlugin: Sendable {
    public let fd: Int32
    public let size: Int
    /// SHA-256 of the verified bytes, lower-case hex.
    public let sha256: String
    /// The key whose signature verified (nil when only the digest was required).
    public let signedBy: TrustedKey?
    public let requirement: TrustRequirement

    /// One line for the log and `--check`.
    public var summary: String {
        var parts: [String] = []
        if let signedBy {
            parts.append("signed by trusted key \(signedBy.fingerprint) (\(Path.lastComponent(signedBy.file)))")
        }
        if requirement.sha256 != nil {
            parts.append("SHA-256 matches \(sha256)")
        } else {
            parts.append("sha256 \(sha256)")
        }
        return parts.joined(separator: "; ") + "; loading the verified copy (sealed memfd, \(size) bytes)"
    }

    public func close() { _ = Glibc.close(fd) }
}

/// Verifies a plugin file against a `TrustRequirement` and makes the copy the loader uses.
///
/// Why a copy: opening the file once and checking then loading through that one descriptor protects against a
/// rename (the descriptor keeps the old inode) but not against a write into the same inode between the check
/// and the loader's mmap — and the loader maps the file lazily, so a later in-place write would change code that
/// already runs. The bytes are therefore copied into a memfd, the memfd is sealed against any write, grow or
/// shrink (by anyone, this process included), and only then hashed and verified; the loader maps that memfd.
/// Whatever happens to the file after the copy, the process runs the bytes that were verified, or nothing.
public enum PluginTrust {
    /// `SHA256:<64 hex>`.
    public static func fingerprintText(_ digest: [UInt8]) -> String { "SHA256:" + hex(digest) }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The usable keys of a folder (every `*.pem`, sorted by name) and one line per `*.pem` that is not usable.
    public static func loadKeys(_ directory: String) throws(HostFailure) -> (
        keys: [(key: TrustedKey, handle: OpaquePointer)], problems: [String]
    ) {
        guard let dir = opendir(directory) else {
            throw HostFailure(
                .trustedKeysUnusable,
                "cannot read the trusted keys folder \(directory): \(String(cString: strerror(errno)))")
        }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(cString: $0.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name.hasSuffix(".pem"), !name.hasPrefix(".") { names.append(name) }
        }
        closedir(dir)
        var keys: [(key: TrustedKey, handle: OpaquePointer)] = []
        var problems: [String] = []
        for name in names.sorted() {
            let file = Path.join(directory, name)
            var fingerprint = [UInt8](repeating: 0, count: 32)
            var reason = [CChar](repeating: 0, count: 512)
            if let handle = mcpt_key_load(file, &fingerprint, &reason, reason.count) {
                keys.append((TrustedKey(file: file, fingerprint: fingerprintText(fingerprint)), handle))
            } else {
                problems.append("\(name): \(text(reason))")
            }
        }
        return (keys, problems)
    }

    /// Verifies `path` and returns its verified copy; nil for `any` (nothing is verified, the loader opens the
    /// file as it always did). Refusals are `HostFailure`s in the trust range (30–39), one line each.
    public static func verify(path: String, requirement: TrustRequirement) throws(HostFailure) -> VerifiedPlugin? {
        guard !requirement.isAny else { return nil }
        var keys: [(key: TrustedKey, handle: OpaquePointer)] = []
        var problems: [String] = []
        defer { for k in keys { mcpt_key_free(k.handle) } }
        var signature: [UInt8] = []
        let sigPath = path + ".sig"
        if requirement.signed {
            guard let directory = requirement.keysDirectory else {
                throw HostFailure(
                    .trustedKeysUnusable, "trust = signed needs a trusted keys folder (--trusted-keys-dir)")
            }
            (keys, problems) = try loadKeys(directory)
            guard !keys.isEmpty else {
                throw HostFailure(
                    .trustedKeysUnusable,
                    "no usable Ed25519 public key (*.pem) in the trusted keys folder \(directory)"
                        + (problems.isEmpty ? "" : ": " + problems.joined(separator: "; ")))
            }
            signature = try readSignature(sigPath)
        }

        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw HostFailure(.cannotOpen, "cannot open the plugin file: \(String(cString: strerror(errno)))")
        }
        defer { _ = Glibc.close(fd) }
        var fileStatus = stat()
        guard fstat(fd, &fileStatus) == 0, (fileStatus.st_mode & S_IFMT) == S_IFREG else {
            throw HostFailure(.cannotOpen, "not a regular file")
        }
        var reason = [CChar](repeating: 0, count: 512)
        let copy = mcpt_sealed_copy(fd, &reason, reason.count)
        guard copy >= 0 else { throw HostFailure(.verifiedCopyFailed, text(reason)) }
        var keep = false
        defer { if !keep { _ = Glibc.close(copy) } }
        guard mcpt_is_sealed(copy) == 1 else {
            throw HostFailure(.verifiedCopyFailed, "the verified copy is not sealed")
        }
        var data: UnsafePointer<UInt8>?
        var size = 0
        guard mcpt_map(copy, &data, &size, &reason, reason.count) == 0, let data else {
            throw HostFailure(.verifiedCopyFailed, text(reason))
        }
        defer { mcpt_unmap(data, size) }

        var digest = [UInt8](repeating: 0, count: 32)
        guard mcpt_sha256(data, size, &digest, &reason, reason.count) == 0 else {
            throw HostFailure(.verifiedCopyFailed, text(reason))
        }
        let actual = hex(digest)
        if let expected = requirement.sha256, expected != actual {
            throw HostFailure(
                .digestMismatch, "digest mismatch: the plugin's SHA-256 is \(actual), expected \(expected) (sha256)")
        }
        var signer: TrustedKey?
        if requirement.signed {
            for k in keys {
                let rc = mcpt_verify(k.handle, data, size, signature, signature.count, &reason, reason.count)
                if rc == 1 {
                    signer = k.key
                    break
                }
                if rc < 0 { problems.append("\(Path.lastComponent(k.key.file)): \(text(reason))") }
            }
            guard signer != nil else {
                throw HostFailure(
                    .signatureInvalid,
                    "signature \(sigPath) is not a valid Ed25519 signature of this file by any trusted key (tried "
                        + keys.map(\.key.fingerprint).joined(separator: ", ") + " in \(requirement.keysDirectory ?? "")"
                        + (problems.isEmpty ? "" : "; unusable: " + problems.joined(separator: "; ")) + ")")
            }
        }
        keep = true
        return VerifiedPlugin(fd: copy, size: size, sha256: actual, signedBy: signer, requirement: requirement)
    }

    /// The raw 64-byte signature beside the plugin.
    static func readSignature(_ sigPath: String) throws(HostFailure) -> [UInt8] {
        let fd = open(sigPath, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let why = errno == ENOENT ? "no signature file" : "cannot read the signature file"
            throw HostFailure(
                .signatureMissing,
                "\(why) \(sigPath) (\(String(cString: strerror(errno)))): trust = signed needs a detached Ed25519 "
                    + "signature by a trusted key beside the plugin")
        }
        defer { _ = Glibc.close(fd) }
        var buf = [UInt8](repeating: 0, count: 65)
        var total = 0
        while total < buf.count {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress! + total, $0.count - total) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 {
                throw HostFailure(
                    .signatureMissing, "cannot read the signature file \(sigPath): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            total += n
        }
        guard total == 64 else {
            throw HostFailure(
                .signatureInvalid,
                "signature file \(sigPath) is \(total == 65 ? "more than 64" : "\(total)") bytes, not a raw 64-byte "
                    + "Ed25519 signature (openssl pkeyutl -sign -rawin)")
        }
        return Array(buf[0..<64])
    }

    /// SHA-256 of a whole file read through `fd` (for `--check` under `any`: a digest to pin), lower-case hex.
    public static func digest(fd: Int32) -> String? {
        var data: UnsafePointer<UInt8>?
        var size = 0
        var reason = [CChar](repeating: 0, count: 256)
        guard mcpt_map(fd, &data, &size, &reason, reason.count) == 0, let data else { return nil }
        defer { mcpt_unmap(data, size) }
        var digest = [UInt8](repeating: 0, count: 32)
        guard mcpt_sha256(data, size, &digest, &reason, reason.count) == 0 else { return nil }
        return hex(digest)
    }

    static func text(_ reason: [CChar]) -> String {
        reason.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}

/// Path arithmetic on strings (the host has no Foundation).
enum Path {
    static func join(_ a: String, _ b: String) -> String { a.hasSuffix("/") ? a + b : a + "/" + b }

    static func lastComponent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }
}
