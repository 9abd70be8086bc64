import MCPProtocol
import PluginABI

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
        Unmanaged<PluginInstance>.fromOpaque(ctx).takeUnretainedValue().listsChanged(lists)
    }
    host.notify_resource_updated = { ctx, uri, len in
        guard let ctx, let u = text(uri, len) else { return }
        Unmanaged<PluginInstance>.fromOpaque(ctx).takeUnretainedValue().resourceUpdated(u)
    }
    host.get_extension = { _, _ in nil }

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
