import Contracts
import MCPProtocol
import PluginABI
import Synchronization

/// Every call handle the plugin can hold, process-wide (one plugin per process).
let callRegistry = CallRegistry()

@inline(__always)
func text(_ pointer: UnsafePointer<CChar>?, _ count: Int) -> String? {
    guard count > 0 else { return "" }
    guard let pointer else { return nil }
    let buffer = UnsafeRawBufferPointer(start: pointer, count: count)
    return String(validating: buffer.bindMemory(to: UInt8.self), as: UTF8.self)
}

@inline(__always)
func bytes(_ pointer: UnsafePointer<UInt8>?, _ count: Int) -> [UInt8]? {
    guard count > 0 else { return [] }
    guard let pointer else { return nil }
    return Array(UnsafeBufferPointer(start: pointer, count: count))
}

private func appendStatus(_ call: PluginCall, _ item: JSONValue, size: Int) -> mcpp_status {
    do {
        try call.append(item, size: size)
        return MCPP_OK
    } catch {
        return status(error)
    }
}

private func status(_ error: any Error) -> mcpp_status {
    guard let failure = error as? PluginCall.AppendError else { return MCPP_E_FAILED }
    switch failure {
    case .finished: return MCPP_E_FINISHED
    case .tooLarge: return MCPP_E_TOO_LARGE
    case .invalid: return MCPP_E_INVALID
    }
}

private func argument(_ handle: OpaquePointer?, _ key: UnsafePointer<CChar>?, _ keyLen: Int) -> (
    PluginCall?, JSONValue?, mcpp_status
) {
    guard let call = callRegistry.lookup(handle) else { return (nil, nil, MCPP_E_FINISHED) }
    guard let name = text(key, keyLen) else { return (call, nil, MCPP_E_INVALID) }
    guard let value = call.arguments[name], !value.isNull else { return (call, nil, MCPP_E_NOT_FOUND) }
    return (call, value, MCPP_OK)
}

/// A block of resource contents or an embedded resource, depending on the call kind.
private func resourceItem(
    _ call: PluginCall, uri: String, mime: String, text: String?, blob: [UInt8]?
) -> JSONValue {
    var contents: [String: JSONValue] = [:]
    var uri = uri
    var mime = mime
    if case .resource(let requested, _, let declaredMime) = call.kind {
        if uri.isEmpty { uri = requested }
        if mime.isEmpty, let declaredMime { mime = declaredMime }
    }
    contents["uri"] = .string(uri)
    if !mime.isEmpty { contents["mimeType"] = .string(mime) }
    if let text { contents["text"] = .string(text) }
    if let blob { contents["blob"] = .string(Base64.encode(blob)) }
    if case .resource = call.kind { return .object(contents) }
    return ["type": "resource", "resource": .object(contents)]
}

/// Builds the static `mcpp_host` table. Host-level functions find the instance through `ctx`.
func makeHostTable(context: UnsafeMutableRawPointer) -> UnsafePointer<mcpp_host> {
    var host = mcpp_host()
    host.struct_size = UInt32(MemoryLayout<mcpp_host>.size)
    host.abi_minor = UInt32(MCPP_ABI_MINOR)
    host.ctx = context

    host.log = { ctx, level, msg, len in
        guard let ctx else { return }
        let instance = Unmanaged<PluginInstance>.fromOpaque(ctx).takeUnretainedValue()
        instance.pluginLog(level: level, message: text(msg, len) ?? "(invalid UTF-8)")
    }
    host.notify_list_changed = { ctx, lists in
        guard let ctx else { return }
        let instance = Unmanaged<PluginInstance>.fromOpaque(ctx).takeUnretainedValue()
        instance.listsChanged(lists)
        instance.relay(lists: lists)
    }
    host.notify_resource_updated = { ctx, uri, len in
        guard let ctx, let u = text(uri, len) else { return }
        let instance = Unmanaged<PluginInstance>.fromOpaque(ctx).takeUnretainedValue()
        instance.resourceUpdated(u)
        instance.relay(.resource(uri: u))
    }
    host.get_extension = { ctx, id in
        guard let ctx, let id, String(cString: id) == PluginMetrics.extensionID else { return nil }
        return Unmanaged<PluginInstance>.fromOpaque(ctx).takeUnretainedValue().metricsTable
    }

    host.arg_string = { handle, key, keyLen, out, outLen in
        let (call, value, found) = argument(handle, key, keyLen)
        guard let call, let value else { return found }
        guard case .string(let string) = value else { return MCPP_E_TYPE }
        let (pointer, count) = call.borrow("s:" + (text(key, keyLen) ?? ""), string)
        out?.pointee = pointer
        outLen?.pointee = count
        return MCPP_OK
    }
    host.arg_int = { handle, key, keyLen, out in
        let (_, value, found) = argument(handle, key, keyLen)
        guard let value else { return found }
        switch value {
        case .int(let i): out?.pointee = i
        case .double(let d) where d == d.rounded() && abs(d) < 9.2e18: out?.pointee = Int64(d)
        default: return MCPP_E_TYPE
        }
        return MCPP_OK
    }
    host.arg_double = { handle, key, keyLen, out in
        let (_, value, found) = argument(handle, key, keyLen)
        guard let value else { return found }
        guard let d = value.numberValue else { return MCPP_E_TYPE }
        out?.pointee = d
        return MCPP_OK
    }
    host.arg_bool = { handle, key, keyLen, out in
        let (_, value, found) = argument(handle, key, keyLen)
        guard let value else { return found }
        guard case .bool(let b) = value else { return MCPP_E_TYPE }
        out?.pointee = b ? 1 : 0
        return MCPP_OK
    }
    host.arg_json = { handle, key, keyLen, out, outLen in
        guard let call = callRegistry.lookup(handle) else { return MCPP_E_FINISHED }
        let value: JSONValue
        let cacheKey: String
        if key == nil {
            value = .object(call.arguments)
            cacheKey = "j:"
        } else {
            let (_, keyed, found) = argument(handle, key, keyLen)
            guard let keyed else { return found }
            value = keyed
            cacheKey = "j:k:" + (text(key, keyLen) ?? "")
        }
        let (pointer, count) = call.borrow(cacheKey, JSONWriter.string(value))
        out?.pointee = pointer
        outLen?.pointee = count
        return MCPP_OK
    }

    host.add_text = { handle, t, len in
        guard let call = callRegistry.lookup(handle) else { return MCPP_E_FINISHED }
        guard let s = text(t, len) else { return MCPP_E_INVALID }
        if case .resource = call.kind {
            return appendStatus(call, resourceItem(call, uri: "", mime: "", text: s, blob: nil), size: len)
        }
        if case .complete = call.kind { return MCPP_E_INVALID }
        return appendStatus(call, ["type": "text", "text": .string(s)], size: len)
    }
    host.add_image = { handle, mime, mimeLen, data, len in
        addMedia(handle, type: "image", mime: mime, mimeLen: mimeLen, data: data, len: len)
    }
    host.add_audio = { handle, mime, mimeLen, data, len in
        addMedia(handle, type: "audio", mime: mime, mimeLen: mimeLen, data: data, len: len)
    }
    host.add_resource_text = { handle, uri, uriLen, mime, mimeLen, t, len in
        guard let call = callRegistry.lookup(handle) else { return MCPP_E_FINISHED }
        guard let u = text(uri, uriLen), let m = text(mime, mimeLen), let s = text(t, len) else {
            return MCPP_E_INVALID
        }
        if case .complete = call.kind { return MCPP_E_INVALID }
        if u.isEmpty, case .resource = call.kind {} else if u.isEmpty { return MCPP_E_INVALID }
        return appendStatus(call, resourceItem(call, uri: u, mime: m, text: s, blob: nil), size: len + uriLen)
    }
    host.add_resource_blob = { handle, uri, uriLen, mime, mimeLen, data, len in
        guard let call = callRegistry.lookup(handle) else { return MCPP_E_FINISHED }
        guard let u = text(uri, uriLen), let m = text(mime, mimeLen), let b = bytes(data, len) else {
            return MCPP_E_INVALID
        }
        if case .complete = call.kind { return MCPP_E_INVALID }
        if u.isEmpty, case .resource = call.kind {} else if u.isEmpty { return MCPP_E_INVALID }
        return appendStatus(call, resourceItem(call, uri: u, mime: m, text: nil, blob: b), size: len * 4 / 3 + uriLen)
    }
    host.add_content_json = { handle, json, len in
        guard let call = callRegistry.lookup(handle) else { return MCPP_E_FINISHED }
        guard let p = json, len > 0,
            let v = try? JSONParser.parse(UnsafeRawBufferPointer(start: p, count: len).bindMemory(to: UInt8.self)),
            case .object(let o) = v, o["type"]?.stringValue != nil || o["uri"] != nil
        else { return MCPP_E_INVALID }
        if case .complete = call.kind { return MCPP_E_INVALID }
        return appendStatus(call, v, size: len)
    }
    host.set_structured = { handle, json, len in
        guard let call = callRegistry.lookup(handle) else { return MCPP_E_FINISHED }
        guard case .tool = call.kind, let p = json, len > 0,
            let v = try? JSONParser.parse(UnsafeRawBufferPointer(start: p, count: len).bindMemory(to: UInt8.self)),
            case .object = v
        else { return MCPP_E_INVALID }
        do {
            try call.update { s throws(PluginCall.AppendError) in
                guard s.outputBytes + len <= call.maxOutputBytes else {
                    s.overflowed = true
                    throw .tooLarge
                }
                s.outputBytes += len
                s.structured = v
            }
            return MCPP_OK
        } catch { return status(error) }
    }
    host.set_role = { handle, role in
        guard let call = callRegistry.lookup(handle) else { return MCPP_E_FINISHED }
        guard case .prompt = call.kind, role == MCPP_ROLE_USER || role == MCPP_ROLE_ASSISTANT else {
            return MCPP_E_INVALID
        }
        do {
            try call.update { s in s.role = role }
            return MCPP_OK
        } catch { return status(error) }
    }
    host.set_description = { handle, t, len in
        guard let call = callRegistry.lookup(handle) else { return MCPP_E_FINISHED }
        guard case .prompt = call.kind, let s = text(t, len) else { return MCPP_E_INVALID }
        do {
            try call.update { st in st.description = s }
            return MCPP_OK
        } catch { return status(error) }
    }
    host.add_completion = { handle, v, len in
        guard let call = callRegistry.lookup(handle) else { return MCPP_E_FINISHED }
        guard case .complete = call.kind, let s = text(v, len) else { return MCPP_E_INVALID }
        do {
            try call.update { st in st.completions.append(s) }
            return MCPP_OK
        } catch { return status(error) }
    }
    host.set_completion_info = { handle, total, hasMore in
        guard let call = callRegistry.lookup(handle) else { return MCPP_E_FINISHED }
        guard case .complete = call.kind else { return MCPP_E_INVALID }
        do {
            try call.update { st in
                st.completionTotal = total >= 0 ? total : nil
                st.completionHasMore = hasMore != 0
            }
            return MCPP_OK
        } catch { return status(error) }
    }

    host.progress = { handle, progress, total, msg, len in
        guard let call = callRegistry.lookup(handle) else { return MCPP_E_FINISHED }
        guard let m = text(msg, len) else { return MCPP_E_INVALID }
        if call.isCancelled { return MCPP_E_CANCELLED }
        call.observer.callProgress(progress: progress, total: total >= 0 ? total : nil, message: m.isEmpty ? nil : m)
        return MCPP_OK
    }
    host.call_log = { handle, level, msg, len in
        guard let call = callRegistry.lookup(handle) else { return MCPP_E_FINISHED }
        guard let m = text(msg, len) else { return MCPP_E_INVALID }
        if call.isCancelled { return MCPP_E_CANCELLED }
        call.observer.callLog(level: level, message: m)
        return MCPP_OK
    }
    host.is_cancelled = { handle in
        guard let call = callRegistry.lookup(handle) else { return 1 }
        return call.isCancelled ? 1 : 0
    }
    host.finish = { handle, outcome, msg, len in
        guard let call = callRegistry.lookup(handle) else { return }
        let m = text(msg, len) ?? "(message is not valid UTF-8)"
        if call.finish(outcome: outcome, message: m) { callRegistry.remove(call.id) }
    }

    host.request_input = { handle, kind, key, keyLen, params, paramsLen, callback, user in
        requestInput(handle, kind, key, keyLen, params, paramsLen, callback, user)
    }
    host.set_request_state = { handle, data, len in
        guard let call = callRegistry.lookup(handle) else { return MCPP_E_FINISHED }
        guard len <= 64 << 10, let b = bytes(data, len) else { return MCPP_E_INVALID }
        do {
            try call.update { s in s.pluginState = b }
            return MCPP_OK
        } catch { return status(error) }
    }
    host.get_request_state = { handle, out, outLen in
        guard let call = callRegistry.lookup(handle) else { return MCPP_E_FINISHED }
        guard let prior = call.priorState else { return MCPP_E_NOT_FOUND }
        let (pointer, count) = call.borrowBytes("rs:", prior)
        out?.pointee = pointer
        outLen?.pointee = count
        return MCPP_OK
    }
    host.set_cache = { handle, ttl, scope in
        guard let call = callRegistry.lookup(handle) else { return MCPP_E_FINISHED }
        guard case .resource = call.kind, ttl >= 0, scope == MCPP_CACHE_PRIVATE || scope == MCPP_CACHE_PUBLIC else {
            return MCPP_E_INVALID
        }
        do {
            try call.update { s in s.cache = (ttl, scope) }
            return MCPP_OK
        } catch { return status(error) }
    }

    host.json_get = { handle, json, jsonLen, pointer, pointerLen, type, out, outLen in
        guard let call = callRegistry.lookup(handle) else { return MCPP_E_FINISHED }
        guard let json, jsonLen > 0,
            let root = try? JSONParser.parse(
                UnsafeRawBufferPointer(start: json, count: jsonLen).bindMemory(to: UInt8.self)),
            let path = text(pointer, pointerLen)
        else { return MCPP_E_INVALID }
        guard let value = JSONPointer.resolve(path, in: root) else { return MCPP_E_NOT_FOUND }
        let kind: Int32
        let rendered: String
        switch value {
        case .null: (kind, rendered) = (MCPP_JSON_NULL, "null")
        case .bool(let b): (kind, rendered) = (MCPP_JSON_BOOL, b ? "true" : "false")
        case .int, .double: (kind, rendered) = (MCPP_JSON_NUMBER, JSONWriter.string(value))
        case .string(let s): (kind, rendered) = (MCPP_JSON_STRING, s)
        case .array: (kind, rendered) = (MCPP_JSON_ARRAY, JSONWriter.string(value))
        case .object, .raw: (kind, rendered) = (MCPP_JSON_OBJECT, JSONWriter.string(value))
        }
        let (p, n) = call.borrow("jg:\(kind):" + rendered, rendered)
        type?.pointee = kind
        out?.pointee = p
        outLen?.pointee = n
        return MCPP_OK
    }

    let table = UnsafeMutablePointer<mcpp_host>.allocate(capacity: 1)
    table.initialize(to: host)
    return UnsafePointer(table)
}

private func addMedia(
    _ call: OpaquePointer?, type: String, mime: UnsafePointer<CChar>?, mimeLen: Int, data: UnsafePointer<UInt8>?,
    len: Int
) -> mcpp_status {
    guard let pluginCall = callRegistry.lookup(call) else { return MCPP_E_FINISHED }
    guard let m = text(mime, mimeLen), !m.isEmpty, let b = bytes(data, len) else { return MCPP_E_INVALID }
    switch pluginCall.kind {
    case .tool, .prompt: break
    default: return MCPP_E_INVALID
    }
    return appendStatus(
        pluginCall, ["type": .string(type), "data": .string(Base64.encode(b)), "mimeType": .string(m)],
        size: len * 4 / 3)
}

/// The C callback and its user pointer, carried to a handler thread (the plugin promised they stay valid).
private struct InputCallback: @unchecked Sendable {
    let function: mcpp_input_callback
    let user: UnsafeMutableRawPointer?
}

/// The methods an input request kind stands for.
private let inputMethods: [Int32: String] = [
    MCPP_INPUT_ELICIT: "elicitation/create", MCPP_INPUT_SAMPLE: "sampling/createMessage",
    MCPP_INPUT_ROOTS: "roots/list",
]

/// mcpp_host.request_input: checks the arguments, then lets the call's observer route the request for its era.
private func requestInput(
    _ handle: OpaquePointer?, _ kind: Int32, _ key: UnsafePointer<CChar>?, _ keyLen: Int,
    _ params: UnsafePointer<CChar>?, _ paramsLen: Int, _ callback: mcpp_input_callback?,
    _ user: UnsafeMutableRawPointer?
) -> mcpp_status {
    guard let call = callRegistry.lookup(handle) else { return MCPP_E_FINISHED }
    guard let callback, let method = inputMethods[kind], let name = text(key, keyLen), !name.isEmpty else {
        return MCPP_E_INVALID
    }
    if case .complete = call.kind { return MCPP_E_INVALID }
    var value: JSONValue = [:]
    if paramsLen > 0 {
        guard let params,
            let parsed = try? JSONParser.parse(
                UnsafeRawBufferPointer(start: params, count: paramsLen).bindMemory(to: UInt8.self)),
            case .object = parsed
        else { return MCPP_E_INVALID }
        value = parsed
    }
    guard InputRequestShape.isValid(method: method, params: value) else { return MCPP_E_INVALID }
    value = InputRequestShape.completed(method: method, params: value)
    if call.isCancelled { return MCPP_E_CANCELLED }
    guard call.claimInputKey(name) else { return call.isFinished ? MCPP_E_FINISHED : MCPP_E_INVALID }
    let target = InputCallback(function: callback, user: user)
    let callID = call.id
    let once = Atomic<Bool>(false)
    let request = InputRequest(
        key: name, method: method, params: value,
        resolve: { status, answer in
            guard !once.exchange(true, ordering: .acquiringAndReleasing) else { return }
            call.schedule(afterHandler: status == MCPP_INPUT_SUSPENDED) {
                let text = answer.map(JSONWriter.string) ?? ""
                let handle = OpaquePointer(bitPattern: callID)
                text.withCString { target.function(target.user, handle, status, $0, text.utf8.count) }
            }
        })
    return call.observer.callRequestsInput(call, request)
}

/// The params a plugin may pass for each input method (the client validates the rest).
enum InputRequestShape {
    static func isValid(method: String, params: JSONValue) -> Bool {
        switch method {
        case "elicitation/create":
            guard params["message"]?.stringValue != nil else { return false }
            if params["mode"]?.stringValue == "url" {
                // An absolute http(s) URL (elicitation.mdx: the server provides a valid URL).
                guard let url = params["url"]?.stringValue else { return false }
                return isWebURL(url) && (params["elicitationId"] == nil || params["elicitationId"]?.stringValue != nil)
            }
            guard params["mode"] == nil || params["mode"]?.stringValue == "form" else { return false }
            guard case .object(let schema) = params["requestedSchema"], schema["properties"]?.objectValue != nil
            else { return false }
            return true
        case "sampling/createMessage":
            guard case .array = params["messages"], params["maxTokens"]?.numberValue != nil else { return false }
            return true
        default:
            return true
        }
    }

    /// What the host adds to a valid request: a URL-mode elicitation without an `elicitationId` gets a random
    /// one (2025-11-25 requires it; the plugin may set its own to match a completion it tracks).
    static func completed(method: String, params: JSONValue) -> JSONValue {
        guard method == "elicitation/create", params["mode"]?.stringValue == "url", params["elicitationId"] == nil,
            case .object(var p) = params
        else { return params }
        p["elicitationId"] = .string(SessionStore.newID())
        return .object(p)
    }

    /// `http://` or `https://`, a host, and no whitespace or control characters.
    static func isWebURL(_ text: String) -> Bool {
        let lower = text.lowercased()
        guard
            let rest = lower.hasPrefix("https://")
                ? lower.dropFirst(8) : lower.hasPrefix("http://") ? lower.dropFirst(7) : nil
        else { return false }
        guard let first = rest.first, first != "/", first != "?", first != "#" else { return false }
        return !text.unicodeScalars.contains { $0.value <= 0x20 || $0.value == 0x7f }
    }
}

/// RFC 6901 JSON pointers ("/a/0/b", with ~1 for "/" and ~0 for "~").
enum JSONPointer {
    static func resolve(_ pointer: String, in root: JSONValue) -> JSONValue? {
        guard !pointer.isEmpty else { return root }
        guard pointer.hasPrefix("/") else { return nil }
        var current = root
        for raw in pointer.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            let token = unescape(String(raw))
            switch current {
            case .object(let o):
                guard let next = o[token] else { return nil }
                current = next
            case .array(let a):
                guard let index = Int(token), index >= 0, index < a.count, token == String(index) else { return nil }
                current = a[index]
            default:
                return nil
            }
        }
        return current
    }

    private static func unescape(_ token: String) -> String {
        guard token.contains("~") else { return token }
        var out = ""
        var tilde = false
        for c in token {
            if tilde {
                out.append(c == "1" ? "/" : c == "0" ? "~" : c)
                tilde = false
            } else if c == "~" {
                tilde = true
            } else {
                out.append(c)
            }
        }
        return out
    }
}
