import CTrust
import Contracts
import MCPProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// Seals and opens the 2026-07-28 `requestState` the host hands a client with `input_required` (docs/protocol.md,
/// "Input requests"). The payload (answers so far, the keys asked in this round, the plugin's bytes, an expiry) is
/// encrypted and authenticated with ChaCha20-Poly1305 (libcrypto) under a key every replica of the server shares,
/// with the method, the tool, prompt or URI and the arguments bound in as associated data: a retry that changes
/// any of them, a token from another server, an edited or an expired one is refused, on any replica.
struct RequestStateSealer: Sendable {
    let key: [UInt8]
    let ttl: Duration
    /// Largest sealed token accepted or made (it also counts against the request body limit).
    static let maxTokenBytes = 512 << 10

    /// What a token carries.
    struct Payload: Sendable {
        var answers: [String: JSONValue]
        var asked: [String]
        var pluginState: [UInt8]?
    }

    enum Failure: Error { case malformed, unverified, expired, tooLarge }

    init(key: [UInt8], ttl: Duration) {
        precondition(key.count == 32, "the requestState key is 32 bytes")
        self.key = key
        self.ttl = ttl
    }

    /// The associated data: what the retry must repeat exactly.
    static func binding(server: String, method: String, target: String, arguments: [String: JSONValue]) -> [UInt8] {
        Array("mcp-supervisor requestState 1\n\(server)\n\(method)\n\(target)\n".utf8)
            + JSONWriter.serialize(.object(arguments))
    }

    private static func nowMs() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    func seal(_ payload: Payload, binding: [UInt8]) throws(Failure) -> String {
        var fields: [String: JSONValue] = [
            "v": 1, "exp": .int(Self.nowMs() + ttl.wholeNanoseconds / 1_000_000),
            "a": .object(payload.answers), "q": .array(payload.asked.map { .string($0) }),
        ]
        if let state = payload.pluginState { fields["s"] = .string(Base64.encode(state)) }
        let plain = JSONWriter.serialize(.object(fields))
        var sealed = [UInt8](repeating: 0, count: plain.count + Int(MCPT_SEAL_OVERHEAD))
        let n = key.withUnsafeBufferPointer { k in
            binding.withUnsafeBufferPointer { aad in
                plain.withUnsafeBufferPointer { p in
                    mcpt_seal(k.baseAddress, aad.baseAddress, aad.count, p.baseAddress, p.count, &sealed)
                }
            }
        }
        guard n == sealed.count else { throw .malformed }
        let token = Base64.encode(sealed)
        guard token.utf8.count <= Self.maxTokenBytes else { throw .tooLarge }
        return token
    }

    func open(_ token: String, binding: [UInt8]) throws(Failure) -> Payload {
        guard token.utf8.count <= Self.maxTokenBytes, let sealed = Base64.decode(token),
            sealed.count >= Int(MCPT_SEAL_OVERHEAD)
        else { throw .malformed }
        var plain = [UInt8](repeating: 0, count: max(sealed.count - Int(MCPT_SEAL_OVERHEAD), 1))
        let n = key.withUnsafeBufferPointer { k in
            binding.withUnsafeBufferPointer { aad in
                sealed.withUnsafeBufferPointer { s in
                    mcpt_open(k.baseAddress, aad.baseAddress, aad.count, s.baseAddress, s.count, &plain)
                }
            }
        }
        guard n >= 0 else { throw .unverified }
        guard let value = try? JSONParser.parse(plain[0..<n]), case .object(let o) = value,
            o["v"] == 1, let exp = o["exp"]?.intValue, case .object(let answers) = o["a"],
            case .array(let asked) = o["q"]
        else { throw .malformed }
        guard exp > Self.nowMs() else { throw .expired }
        var state: [UInt8]? = nil
        if let s = o["s"] {
            guard let text = s.stringValue, let bytes = Base64.decode(text) else { throw .malformed }
            state = bytes
        }
        return Payload(answers: answers, asked: asked.compactMap(\.stringValue), pluginState: state)
    }
}
