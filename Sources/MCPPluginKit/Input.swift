import Synchronization

// ABI 1.1: asking the client for input (elicitation, sampling, roots), request state and cache hints.
//
// `try await call.elicit(...)` parks the handler: the host's handler thread is released while the client thinks
// (so the host's callback can arrive, and in 2026-07-28 the host can answer `input_required`), and the handler
// resumes on the Swift pool with the answer. In 2026-07-28 the first attempt ends with `InputError.suspended`:
// let it propagate (the kit finishes the call and the host answers `input_required`); the client's retry runs the
// handler again from the start and the same question (same key) is then answered at once.

/// Why an input request gave no answer.
public enum InputError: Error, Sendable, Equatable, CustomStringConvertible {
    /// 2026-07-28: the client answers in a retry of the whole request. Let it propagate.
    case suspended
    /// The client answered with an error (the JSON-RPC error object, as JSON text).
    case refused(String)
    /// The client did not declare the capability; nothing was sent. Propagated, the call fails with the
    /// protocol's missing-capability error.
    case unsupported
    /// The call was cancelled or passed its deadline while waiting.
    case cancelled
    /// The host offers ABI 1.0 only, or refused the request (status).
    case notOffered(String)

    public var description: String {
        switch self {
        case .suspended: "the client answers in a retry (input_required)"
        case .refused(let error): "the client refused: \(error)"
        case .unsupported: "the client does not support this request"
        case .cancelled: "the call was cancelled while waiting for the client"
        case .notOffered(let why): "input requests are not available: \(why)"
        }
    }
}

/// The user's answer to an elicitation.
public struct Elicitation: Sendable {
    /// "accept", "decline" or "cancel".
    public let action: String
    /// The submitted content as JSON text (an object), when accepted.
    public let content: String?
    /// The whole ElicitResult as JSON text.
    public let json: String

    public var accepted: Bool { action == "accept" }
}

/// Which lists a cache hint covers (`mcpp_registry.set_list_cache`).
public struct ListKinds: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let tools = ListKinds(rawValue: UInt32(MCPP_LIST_TOOLS))
    public static let resources = ListKinds(rawValue: UInt32(MCPP_LIST_RESOURCES))
    public static let prompts = ListKinds(rawValue: UInt32(MCPP_LIST_PROMPTS))
}

/// Who may keep a cached result (2026-07-28 `cacheScope`).
public enum CacheScope: Sendable {
    case `private`, `public`
    var raw: Int32 { self == .public ? MCPP_CACHE_PUBLIC : MCPP_CACHE_PRIVATE }
}

/// One value read out of JSON text with `Call.jsonValue(_:at:)`.
public enum JSONItem: Sendable, Equatable {
    case null
    case bool(Bool)
    /// The number as written.
    case number(String)
    case string(String)
    /// An array or object, as JSON text.
    case array(String), object(String)
}

/// The continuation an input callback resumes; passed through the ABI's `user` pointer.
final class InputWaiter: @unchecked Sendable {
    // @unchecked: the continuation is set before the request is made and resumed exactly once (the ABI calls
    // back exactly once).
    var continuation: CheckedContinuation<(Int32, String), Never>?
}

extension Call {
    /// True when the host implements ABI 1.1's calls (a 1.0 host's table ends before them).
    var hostHas1_1: Bool {
        host.pointee.abi_minor >= 1 && Int(host.pointee.struct_size) >= MemoryLayout<mcpp_host>.size
    }

    /// Asks the client: `kind` is MCPP_INPUT_ELICIT, SAMPLE or ROOTS; `params` the request's params as JSON text.
    /// Returns the client's result as JSON text. `key` names the question within the call (the same question must
    /// use the same key in every attempt).
    public func requestInput(kind: Int32, key: String, params: String) async throws(InputError) -> String {
        guard hostHas1_1 else { throw .notOffered("the host offers ABI 1.0") }
        let waiter = InputWaiter()
        let user = Unmanaged.passRetained(waiter).toOpaque()
        let host = self.host
        let handle = self.handle
        let sent = SendableStatus()
        let (status, answer) = await withCheckedContinuation { (c: CheckedContinuation<(Int32, String), Never>) in
            waiter.continuation = c
            let st = key.withCString { k in
                params.withCString { p in
                    host.pointee.request_input(
                        handle, kind, k, key.utf8.count, p, params.utf8.count,
                        { user, _, status, answer, len in
                            guard let user else { return }
                            let w = Unmanaged<InputWaiter>.fromOpaque(user).takeRetainedValue()
                            w.continuation?.resume(returning: (status, Runtime.string(answer, len)))
                        }, user)
                }
            }
            sent.status = st
            if st == MCPP_OK {
                park()  // the host's handler thread may go: the answer comes later, on another thread
            } else {
                Unmanaged<InputWaiter>.fromOpaque(user).release()
                c.resume(returning: (-1, ""))
            }
        }
        if status == -1 {
            switch sent.status {
            case MCPP_E_INVALID:
                throw .notOffered(
                    "the host refused it: an empty or repeated key, params that are not a JSON object, or a call "
                        + "other than tools/call, prompts/get and resources/read")
            case MCPP_E_FINISHED: throw .notOffered("the call is already finished")
            case MCPP_E_CANCELLED: throw .cancelled
            default: throw .notOffered("the host refused it with status \(sent.status)")
            }
        }
        switch status {
        case MCPP_INPUT_ANSWERED: return answer
        case MCPP_INPUT_REFUSED: throw .refused(answer)
        case MCPP_INPUT_UNSUPPORTED: throw .unsupported
        case MCPP_INPUT_SUSPENDED: throw .suspended
        default: throw .cancelled
        }
    }

    /// Asks the user (elicitation, form mode): `message` and the `requestedSchema` as JSON text.
    public func elicit(key: String, message: String, schema: String) async throws(InputError) -> Elicitation {
        let answer = try await requestInput(
            kind: MCPP_INPUT_ELICIT, key: key,
            params: "{\"message\":\(Self.quoted(message)),\"requestedSchema\":\(schema)}")
        guard case .string(let action) = jsonValue(answer, at: "/action") else {
            throw .refused("the client's answer has no action: \(answer)")
        }
        var content: String?
        if case .object(let text) = jsonValue(answer, at: "/content") { content = text }
        return Elicitation(action: action, content: content, json: answer)
    }

    /// Asks the client's model (sampling): one user message, at most `maxTokens`; returns the text of its answer
    /// (or the whole CreateMessageResult as JSON text when the content is not text).
    public func sample(key: String, prompt: String, maxTokens: Int = 256) async throws(InputError) -> String {
        let answer = try await requestInput(
            kind: MCPP_INPUT_SAMPLE, key: key,
            params:
                "{\"messages\":[{\"role\":\"user\",\"content\":{\"type\":\"text\",\"text\":\(Self.quoted(prompt))}}],\"maxTokens\":\(maxTokens)}"
        )
        if case .string(let text) = jsonValue(answer, at: "/content/text") { return text }
        return answer
    }

    /// The client's roots, as URIs.
    public func roots(key: String) async throws(InputError) -> [String] {
        let answer = try await requestInput(kind: MCPP_INPUT_ROOTS, key: key, params: "")
        var uris: [String] = []
        while case .string(let uri) = jsonValue(answer, at: "/roots/\(uris.count)/uri") { uris.append(uri) }
        return uris
    }

    /// One value of JSON text (an answer, say) at an RFC 6901 pointer; nil when the pointer leads nowhere or the
    /// text is not JSON (or the host offers ABI 1.0).
    public func jsonValue(_ json: String, at pointer: String) -> JSONItem? {
        guard hostHas1_1 else { return nil }
        var type: Int32 = 0
        var out: UnsafePointer<CChar>? = nil
        var len = 0
        let st = json.withCString { j in
            pointer.withCString { p in
                host.pointee.json_get(handle, j, json.utf8.count, p, pointer.utf8.count, &type, &out, &len)
            }
        }
        guard st == MCPP_OK else { return nil }
        let text = Runtime.string(out, len)
        switch type {
        case MCPP_JSON_NULL: return .null
        case MCPP_JSON_BOOL: return .bool(text == "true")
        case MCPP_JSON_NUMBER: return .number(text)
        case MCPP_JSON_STRING: return .string(text)
        case MCPP_JSON_ARRAY: return .array(text)
        default: return .object(text)
        }
    }

    /// Bytes the next attempt of this call gets back (2026-07-28, sealed by the host; at most 64 KiB).
    public func setRequestState(_ bytes: [UInt8]) throws(InputError) {
        guard hostHas1_1 else { throw .notOffered("the host offers ABI 1.0") }
        let st = bytes.withUnsafeBufferPointer { host.pointee.set_request_state(handle, $0.baseAddress, $0.count) }
        guard st == MCPP_OK else { throw .notOffered("set_request_state failed with status \(st)") }
    }

    /// The bytes the attempt this one retries set; nil on a first attempt.
    public var requestState: [UInt8]? {
        guard hostHas1_1 else { return nil }
        var out: UnsafePointer<UInt8>? = nil
        var len = 0
        guard host.pointee.get_request_state(handle, &out, &len) == MCPP_OK else { return nil }
        guard let out else { return [] }
        return Array(UnsafeBufferPointer(start: out, count: len))
    }

    /// resources/read: how long (and by whom) the result may be cached (2026-07-28 `ttlMs`, `cacheScope`).
    public func setCache(ttlMs: Int64, scope: CacheScope) {
        guard hostHas1_1 else { return }
        _ = host.pointee.set_cache(handle, ttlMs, scope.raw)
    }

    static func quoted(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20:
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}

/// The status of a request made inside a continuation closure, read after it.
final class SendableStatus: @unchecked Sendable {
    // @unchecked: written inside the continuation's closure, read after the await that ran it.
    var status: mcpp_status = MCPP_OK
}
