import MCPProtocol
import PluginABI

/// Every call handle the plugin can hold, process-wide (one plugin per process).
let callRegistry = CallRegistry()

@inline(__always)
func text(_ p: UnsafePointer<CChar>?, _ n: Int) -> String? {
    guard n > 0 else { return "" }
    guard let p else { return nil }
    let buf = UnsafeRawBufferPointer(start: p, count: n)
    return String(validating: buf.bindMemory(to: UInt8.self), as: UTF8.self)
}

@inline(__always)
func bytes(_ p: UnsafePointer<UInt8>?, _ n: Int) -> [UInt8]? {
    guard n > 0 else { return [] }
    guard let p else { return nil }
    return Array(UnsafeBufferPointer(start: p, count: n))
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
    guard let e = error as? PluginCall.AppendError else { return MCPP_E_FAILED }
    switch e {
    case .finished: return MCPP_E_FINISHED
    case .tooLarge: return MCPP_E_TOO_LARGE
    case .invalid: return MCPP_E_INVALID
    }
}

private func argument(_ call: OpaquePointer?, _ key: UnsafePointer<CChar>?, _ keyLen: Int) -> (
    PluginCall?, JSONValue?, mcpp_status
) {
    guard let c = callRegistry.lookup(call) else { return (nil, nil, MCPP_E_FINISHED) }
    guard let k = text(key, keyLen) else { return (c, nil, MCPP_E_INVALID) }
    guard let v = c.arguments[k], !v.isNull else { return (c, nil, MCPP_E_NOT_FOUND) }
    return (c, v, MCPP_OK)
}

/// A block of resource contents or an embedded resource, depending on the call kind.
private func resourceItem(
    _ call: PluginCall, uri: String, mime: String, text: String?, blob: [UInt8]?
) -> JSONValue {
    var r: [String: JSONValue] = [:]
    var u = uri
    var m = mime
    if case .resource(let requested, _, let declaredMime) = call.kind {
        if u.isEmpty { u = requested }
        if m.isEmpty, let declaredMime { m = declaredMime }
    }
    r["uri"] = .string(u)
    if !m.isEmpty { r["mimeType"] = .string(m) }
    if let text { r["text"] = .string(text) }
    if let blob { r["blob"] = .string(Base64.encode(blob)) }
    if case .resource = call.kind { return .object(r) }
    return ["type": "resource", "resource": .object(r)]
}

/// Builds the static `mcpp_host` table. Host-level functions find the instance through `ctx`.
func makeHostTable(context: UnsafeMutableRawPointer) -> UnsafePointer<mcpp_host> {
    var h = mcpp_host()
    h.struct_size = UInt32(MemoryLayout<mcpp_host>.size)
    h.abi_minor = UInt32(MCPP_ABI_MINOR)
    h.ctx = context

    h.log = { ctx, level, msg, len in
        guard let ctx else { return }
        let instance = Unmanaged<PluginInstance>.fromOpaque(ctx).takeUnretainedValue()
        instance.pluginLog(level: level, message: text(msg, len) ?? "(invalid UTF-8)")
    }
    h.notify_list_changed = { ctx, lists in
        guard let ctx else { return }
        Unmanaged<PluginInstance>.fromOpaque(ctx).takeUnretainedValue().listsChanged(lists)
    }
    h.notify_resource_updated = { ctx, uri, len in
        guard let ctx, let u = text(uri, len) else { return }
        Unmanaged<PluginInstance>.fromOpaque(ctx).takeUnretainedValue().resourceUpdated(u)
    }
    h.get_extension = { _, _ in nil }

    h.arg_string = { call, key, keyLen, out, outLen in
        let (c, v, st) = argument(call, key, keyLen)
        guard let c, let v else { return st }
        guard case .string(let s) = v else { return MCPP_E_TYPE }
        let (p, n) = c.borrow("s:" + (text(key, keyLen) ?? ""), s)
        out?.pointee = p
        outLen?.pointee = n
        return MCPP_OK
    }
    h.arg_int = { call, key, keyLen, out in
        let (_, v, st) = argument(call, key, keyLen)
        guard let v else { return st }
        switch v {
        case .int(let i): out?.pointee = i
        case .double(let d) where d == d.rounded() && abs(d) < 9.2e18: out?.pointee = Int64(d)
        default: return MCPP_E_TYPE
        }
        return MCPP_OK
    }
    h.arg_double = { call, key, keyLen, out in
        let (_, v, st) = argument(call, key, keyLen)
        guard let v else { return st }
        guard let d = v.numberValue else { return MCPP_E_TYPE }
        out?.pointee = d
        return MCPP_OK
    }
    h.arg_bool = { call, key, keyLen, out in
        let (_, v, st) = argument(call, key, keyLen)
        guard let v else { return st }
        guard case .bool(let b) = v else { return MCPP_E_TYPE }
        out?.pointee = b ? 1 : 0
        return MCPP_OK
    }
    h.arg_json = { call, key, keyLen, out, outLen in
        guard let c = callRegistry.lookup(call) else { return MCPP_E_FINISHED }
        let value: JSONValue
        let cacheKey: String
        if key == nil {
            value = .object(c.arguments)
            cacheKey = "j:"
        } else {
            let (_, v, st) = argument(call, key, keyLen)
            guard let v else { return st }
            value = v
            cacheKey = "j:k:" + (text(key, keyLen) ?? "")
        }
        let (p, n) = c.borrow(cacheKey, JSONWriter.string(value))
        out?.pointee = p
        outLen?.pointee = n
        return MCPP_OK
    }

    h.add_text = { call, t, len in
        guard let c = callRegistry.lookup(call) else { return MCPP_E_FINISHED }
        guard let s = text(t, len) else { return MCPP_E_INVALID }
        if case .resource = c.kind {
            return appendStatus(c, resourceItem(c, uri: "", mime: "", text: s, blob: nil), size: len)
        }
        if case .complete = c.kind { return MCPP_E_INVALID }
        return appendStatus(c, ["type": "text", "text": .string(s)], size: len)
    }
    h.add_image = { call, mime, mimeLen, data, len in
        addMedia(call, type: "image", mime: mime, mimeLen: mimeLen, data: data, len: len)
    }
    h.add_audio = { call, mime, mimeLen, data, len in
        addMedia(call, type: "audio", mime: mime, mimeLen: mimeLen, data: data, len: len)
    }
    h.add_resource_text = { call, uri, uriLen, mime, mimeLen, t, len in
        guard let c = callRegistry.lookup(call) else { return MCPP_E_FINISHED }
        guard let u = text(uri, uriLen), let m = text(mime, mimeLen), let s = text(t, len) else {
            return MCPP_E_INVALID
        }
        if case .complete = c.kind { return MCPP_E_INVALID }
        if u.isEmpty, case .resource = c.kind {} else if u.isEmpty { return MCPP_E_INVALID }
        return appendStatus(c, resourceItem(c, uri: u, mime: m, text: s, blob: nil), size: len + uriLen)
    }
    h.add_resource_blob = { call, uri, uriLen, mime, mimeLen, data, len in
        guard let c = callRegistry.lookup(call) else { return MCPP_E_FINISHED }
        guard let u = text(uri, uriLen), let m = text(mime, mimeLen), let b = bytes(data, len) else {
            return MCPP_E_INVALID
        }
        if case .complete = c.kind { return MCPP_E_INVALID }
        if u.isEmpty, case .resource = c.kind {} else if u.isEmpty { return MCPP_E_INVALID }
        return appendStatus(c, resourceItem(c, uri: u, mime: m, text: nil, blob: b), size: len * 4 / 3 + uriLen)
    }
    h.add_content_json = { call, json, len in
        guard let c = callRegistry.lookup(call) else { return MCPP_E_FINISHED }
        guard let p = json, len > 0,
            let v = try? JSONParser.parse(UnsafeRawBufferPointer(start: p, count: len).bindMemory(to: UInt8.self)),
            case .object(let o) = v, o["type"]?.stringValue != nil || o["uri"] != nil
        else { return MCPP_E_INVALID }
        if case .complete = c.kind { return MCPP_E_INVALID }
        return appendStatus(c, v, size: len)
    }
    h.set_structured = { call, json, len in
        guard let c = callRegistry.lookup(call) else { return MCPP_E_FINISHED }
        guard case .tool = c.kind, let p = json, len > 0,
            let v = try? JSONParser.parse(UnsafeRawBufferPointer(start: p, count: len).bindMemory(to: UInt8.self)),
            case .object = v
        else { return MCPP_E_INVALID }
        do {
            try c.update { s throws(PluginCall.AppendError) in
                guard s.outputBytes + len <= c.maxOutputBytes else {
                    s.overflowed = true
                    throw .tooLarge
                }
                s.outputBytes += len
                s.structured = v
            }
            return MCPP_OK
        } catch { return status(error) }
    }
    h.set_role = { call, role in
        guard let c = callRegistry.lookup(call) else { return MCPP_E_FINISHED }
        guard case .prompt = c.kind, role == MCPP_ROLE_USER || role == MCPP_ROLE_ASSISTANT else {
            return MCPP_E_INVALID
        }
        do {
            try c.update { s in s.role = role }
            return MCPP_OK
        } catch { return status(error) }
    }
    h.set_description = { call, t, len in
        guard let c = callRegistry.lookup(call) else { return MCPP_E_FINISHED }
        guard case .prompt = c.kind, let s = text(t, len) else { return MCPP_E_INVALID }
        do {
            try c.update { st in st.description = s }
            return MCPP_OK
        } catch { return status(error) }
    }
    h.add_completion = { call, v, len in
        guard let c = callRegistry.lookup(call) else { return MCPP_E_FINISHED }
        guard case .complete = c.kind, let s = text(v, len) else { return MCPP_E_INVALID }
        do {
            try c.update { st in st.completions.append(s) }
            return MCPP_OK
        } catch { return status(error) }
    }
    h.set_completion_info = { call, total, hasMore in
        guard let c = callRegistry.lookup(call) else { return MCPP_E_FINISHED }
        guard case .complete = c.kind else { return MCPP_E_INVALID }
        do {
            try c.update { st in
                st.completionTotal = total >= 0 ? total : nil
                st.completionHasMore = hasMore != 0
            }
            return MCPP_OK
        } catch { return status(error) }
    }

    h.progress = { call, progress, total, msg, len in
        guard let c = callRegistry.lookup(call) else { return MCPP_E_FINISHED }
        guard let m = text(msg, len) else { return MCPP_E_INVALID }
        if c.isCancelled { return MCPP_E_CANCELLED }
        c.observer.callProgress(progress: progress, total: total >= 0 ? total : nil, message: m.isEmpty ? nil : m)
        return MCPP_OK
    }
    h.call_log = { call, level, msg, len in
        guard let c = callRegistry.lookup(call) else { return MCPP_E_FINISHED }
        guard let m = text(msg, len) else { return MCPP_E_INVALID }
        if c.isCancelled { return MCPP_E_CANCELLED }
        c.observer.callLog(level: level, message: m)
        return MCPP_OK
    }
    h.is_cancelled = { call in
        guard let c = callRegistry.lookup(call) else { return 1 }
        return c.isCancelled ? 1 : 0
    }
    h.finish = { call, outcome, msg, len in
        guard let c = callRegistry.lookup(call) else { return }
        let m = text(msg, len) ?? "(message is not valid UTF-8)"
        if c.finish(outcome: outcome, message: m) { callRegistry.remove(c.id) }
    }

    let p = UnsafeMutablePointer<mcpp_host>.allocate(capacity: 1)
    p.initialize(to: h)
    return UnsafePointer(p)
}

private func addMedia(
    _ call: OpaquePointer?, type: String, mime: UnsafePointer<CChar>?, mimeLen: Int, data: UnsafePointer<UInt8>?,
    len: Int
) -> mcpp_status {
    guard let c = callRegistry.lookup(call) else { return MCPP_E_FINISHED }
    guard let m = text(mime, mimeLen), !m.isEmpty, let b = bytes(data, len) else { return MCPP_E_INVALID }
    switch c.kind {
    case .tool, .prompt: break
    default: return MCPP_E_INVALID
    }
    return appendStatus(
        c, ["type": .string(type), "data": .string(Base64.encode(b)), "mimeType": .string(m)], size: len * 4 / 3)
}
