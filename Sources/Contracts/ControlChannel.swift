import MCPProtocol

/// The control channel between the supervisor and one host (fd 4, a socketpair): one JSON object per line,
/// framed by `LineFramer` on the supervisor's side and NIOExtras' `LineBasedFrameDecoder` on the host's.
///
/// Every message is a value of `SupervisorMessage` (supervisor → host, keyed by `op`) or `HostMessage`
/// (host → supervisor, keyed by `event`); `encode()` and `decode(_:)` are the only places the keys are spelled.
/// A receiver ignores what it does not know (an unknown op or event, an extra key), so either side can add
/// messages and fields without breaking the other; `ControlChannelProtocol.version` counts such additions.
public enum ControlChannelProtocol {
    /// 1: ready, ping/pong, health (loop and plugin parts), stop. 2: metrics (a `TrafficSnapshot`). 3: changed
    /// (a plugin's change notification, relayed to the other replicas of its server). The host sends it in
    /// `ready`; the supervisor asks a host for metrics only when its `ready` said 2 or more, and relays changes
    /// only to hosts that said 3 or more. 4: servers (the gateway's table of backends, pushed on every change;
    /// sent only to the gateway, docs/gateway.md). 5: `changed` with a session (a legacy session a DELETE ended,
    /// relayed only to hosts that said 5 or more, docs/protocol.md "Legacy sessions across replicas").
    public static let version = 5
}

/// What the supervisor sends a host.
public enum SupervisorMessage: Sendable, Equatable {
    /// Answer with `pong` from the event loop (the answer proves the loop runs).
    case ping(seq: Int)
    /// Answer with a `health` loop part at once and, at detailed and diagnostic, a plugin part once the plugin's
    /// health callback returned.
    case health(seq: Int, level: HealthLevel)
    /// Drain and exit.
    case stop
    /// Answer with `metrics` (a `TrafficSnapshot`) from the event loop (version 2).
    case metrics(seq: Int)
    /// Another replica's plugin reported a change (version 3): tell this host's listeners too (and, for lists,
    /// read the declarations again), without relaying it back; or a DELETE ended a legacy session there (version
    /// 5): end it here too, and never adopt its id again.
    case changed(PluginChange)
    /// The gateway's backends now (version 4): every server behind it, with its port and state. Sent when the
    /// gateway is ready and again on every change.
    case servers([GatewayBackend])

    enum Key {
        static let op = "op"
        static let seq = "seq"
        static let level = "level"
        static let servers = "servers"
    }

    enum Op {
        static let ping = "ping"
        static let health = "health"
        static let stop = "stop"
        static let metrics = "metrics"
        static let changed = "changed"
        static let servers = "servers"
    }

    public func encode() -> JSONValue {
        switch self {
        case .servers(let backends):
            return .object([Key.op: .string(Op.servers), Key.servers: .array(backends.map { $0.encode() })])
        case .ping(let seq): return .object([Key.op: .string(Op.ping), Key.seq: .int(Int64(seq))])
        case .health(let seq, let level):
            return .object([Key.op: .string(Op.health), Key.seq: .int(Int64(seq)), Key.level: .string(level.rawValue)])
        case .stop: return .object([Key.op: .string(Op.stop)])
        case .metrics(let seq): return .object([Key.op: .string(Op.metrics), Key.seq: .int(Int64(seq))])
        case .changed(let change):
            var o: [String: JSONValue] = [Key.op: .string(Op.changed)]
            change.encode(into: &o)
            return .object(o)
        }
    }

    /// The message, or nil for anything this version does not know. A `health` op without a known level is a
    /// basic probe (what version 1 hosts did).
    public static func decode(_ value: JSONValue) -> SupervisorMessage? {
        guard let op = value[Key.op]?.stringValue else { return nil }
        let seq = value[Key.seq].flatMap(intValue) ?? 0
        switch op {
        case Op.ping: return .ping(seq: seq)
        case Op.health:
            return .health(seq: seq, level: value[Key.level]?.stringValue.flatMap(HealthLevel.init) ?? .basic)
        case Op.stop: return .stop
        case Op.metrics: return .metrics(seq: seq)
        case Op.changed: return PluginChange.decode(value).map { .changed($0) }
        case Op.servers:
            guard case .array(let items)? = value[Key.servers] else { return nil }
            return .servers(items.compactMap(GatewayBackend.decode))
        default: return nil
        }
    }
}

/// One server as the gateway sees it (docs/gateway.md): where it listens and whether it can answer now.
public struct GatewayBackend: Sendable, Equatable {
    /// Where the server stands, for routing: `running` answers; `starting` (a replica is on its way) is waited
    /// for within a call's deadline; `fatal`, `stopped` (by an admin) and `exited` fail at once.
    public enum State: String, Sendable, Equatable {
        case running, starting, fatal, stopped, exited
    }

    public var name: String
    /// Its names' prefix on the gateway (its alias or its name).
    public var prefix: String
    public var port: Int
    /// Its `group` ("" when none).
    public var group: String
    public var state: State
    /// A change of this number means the server restarted or reloaded: its lists are read again.
    public var generation: Int
    /// Its class of equivalent servers (`equivalent_to`, taken both ways and transitively): the name of the
    /// class's first server in name order; its own name when it has no equivalent.
    public var equivalence: String
    /// Its health score (0-1, the mean of its replicas' scores), which weighs it among its equivalents.
    public var health: Double

    public init(
        name: String, prefix: String, port: Int, group: String, state: State, generation: Int,
        equivalence: String? = nil, health: Double = 1
    ) {
        self.name = name
        self.prefix = prefix
        self.port = port
        self.group = group
        self.state = state
        self.generation = generation
        self.equivalence = equivalence ?? name
        self.health = health
    }

    func encode() -> JSONValue {
        [
            "name": .string(name), "prefix": .string(prefix), "port": .int(Int64(port)), "group": .string(group),
            "state": .string(state.rawValue), "generation": .int(Int64(generation)),
            "equivalence": .string(equivalence), "health": .double(health),
        ]
    }

    static func decode(_ v: JSONValue) -> GatewayBackend? {
        guard let name = v["name"]?.stringValue, let prefix = v["prefix"]?.stringValue,
            let port = v["port"].flatMap(intValue), (1...65535).contains(port),
            let state = v["state"]?.stringValue.flatMap(State.init)
        else { return nil }
        return GatewayBackend(
            name: name, prefix: prefix, port: port, group: v["group"]?.stringValue ?? "", state: state,
            generation: v["generation"].flatMap(intValue) ?? 0, equivalence: v["equivalence"]?.stringValue,
            health: v["health"]?.numberValue ?? 1)
    }
}

/// What one replica's host reports and the supervisor relays to the server's other replicas, which would otherwise
/// not hear of it: a plugin's change notification (`notify_list_changed` or `notify_resource_updated`, version 3)
/// for their listeners, or a legacy session a DELETE ended (version 5), which they must not adopt again.
public enum PluginChange: Sendable, Equatable {
    /// MCPP_LIST_* bits.
    case lists(UInt32)
    case resource(uri: String)
    /// The `Mcp-Session-Id` of a legacy session ended by DELETE (version 5).
    case sessionEnded(id: String)

    static let listsKey = "lists"
    static let uriKey = "uri"
    static let sessionKey = "session"
    /// Longer than any sealed session id a host makes (2 KiB).
    static let maxSessionBytes = 4096

    /// The control-channel version a host must have said in `ready` to be sent this change.
    public var channelVersion: Int {
        if case .sessionEnded = self { return 5 }
        return 3
    }

    func encode(into o: inout [String: JSONValue]) {
        switch self {
        case .lists(let bits): o[Self.listsKey] = .int(Int64(bits))
        case .resource(let uri): o[Self.uriKey] = .string(uri)
        case .sessionEnded(let id): o[Self.sessionKey] = .string(id)
        }
    }

    /// nil when neither a list bit set (1...7), a URI (non-empty, at most 64 KiB) nor a session id (non-empty, at
    /// most 4 KiB) is there.
    static func decode(_ value: JSONValue) -> PluginChange? {
        if let id = value[sessionKey]?.stringValue {
            return id.isEmpty || id.utf8.count > maxSessionBytes ? nil : .sessionEnded(id: id)
        }
        if let uri = value[uriKey]?.stringValue {
            return uri.isEmpty || uri.utf8.count > 65536 ? nil : .resource(uri: uri)
        }
        guard let bits = value[listsKey].flatMap(intValue), (1...7).contains(bits) else { return nil }
        return .lists(UInt32(bits))
    }
}

/// The host's call slots as it reports them in `pong` and the loop part of `health`.
public struct SlotUse: Sendable, Equatable {
    /// Calls running now.
    public var inflight: Int
    /// Slots held by calls past their deadline.
    public var stuck: Int
    /// The plugin's slot count.
    public var slots: Int

    public init(inflight: Int, stuck: Int, slots: Int) {
        self.inflight = inflight
        self.stuck = stuck
        self.slots = slots
    }
}

/// The plugin part of a health answer.
public struct PluginHealth: Sendable, Equatable {
    /// nil: the plugin has no health callback (counts as healthy).
    public var ok: Bool?
    public var detail: String
    /// How long the plugin's callback took, in milliseconds.
    public var milliseconds: Double?
    /// The plugin's diagnostic report (text, or JSON text).
    public var report: String?
    /// The previous callback has not returned yet.
    public var busy: Bool

    public init(ok: Bool?, detail: String, milliseconds: Double? = nil, report: String? = nil, busy: Bool = false) {
        self.ok = ok
        self.detail = detail
        self.milliseconds = milliseconds
        self.report = report
        self.busy = busy
    }
}

/// What a host sends the supervisor.
public enum HostMessage: Sendable, Equatable {
    /// The host serves on its port.
    case ready(pid: Int32, port: Int, protocolVersion: Int)
    /// The answer to a ping (`seq` nil when the ping had none).
    case pong(seq: Int?, slots: SlotUse)
    /// The event loop's part of a health answer, written at once.
    case healthLoop(seq: Int, slots: SlotUse)
    /// The plugin's part, after its health callback returned.
    case healthPlugin(seq: Int, PluginHealth)
    /// The answer to `metrics`: the host's traffic counters now.
    case metrics(seq: Int, TrafficSnapshot)
    /// The plugin reported a change (version 3), or a DELETE ended a legacy session (version 5); the supervisor
    /// relays it to the server's other replicas.
    case changed(PluginChange)
    /// The gateway's items left out of its lists, each with its reason (version 4; shown by `mcpctl status`).
    case leftOut([String])

    enum Key {
        static let event = "event"
        static let items = "items"
        static let seq = "seq"
        static let pid = "pid"
        static let port = "port"
        static let protocolVersion = "protocol"
        static let inflight = "inflight"
        static let stuck = "stuck"
        static let slots = "slots"
        static let part = "part"
        static let ok = "ok"
        static let detail = "detail"
        static let ms = "ms"
        static let report = "report"
        static let busy = "busy"
    }

    enum Event {
        static let ready = "ready"
        static let pong = "pong"
        static let health = "health"
        static let metrics = "metrics"
        static let changed = "changed"
        static let leftOut = "left_out"
    }

    enum Part {
        static let loop = "loop"
        static let plugin = "plugin"
    }

    public func encode() -> JSONValue {
        var o: [String: JSONValue] = [:]
        func put(_ use: SlotUse) {
            o[Key.inflight] = .int(Int64(use.inflight))
            o[Key.stuck] = .int(Int64(use.stuck))
            o[Key.slots] = .int(Int64(use.slots))
        }
        switch self {
        case .ready(let pid, let port, let version):
            o[Key.event] = .string(Event.ready)
            o[Key.pid] = .int(Int64(pid))
            o[Key.port] = .int(Int64(port))
            o[Key.protocolVersion] = .int(Int64(version))
        case .pong(let seq, let use):
            o[Key.event] = .string(Event.pong)
            if let seq { o[Key.seq] = .int(Int64(seq)) }
            put(use)
        case .healthLoop(let seq, let use):
            o[Key.event] = .string(Event.health)
            o[Key.part] = .string(Part.loop)
            o[Key.seq] = .int(Int64(seq))
            put(use)
        case .healthPlugin(let seq, let plugin):
            o[Key.event] = .string(Event.health)
            o[Key.part] = .string(Part.plugin)
            o[Key.seq] = .int(Int64(seq))
            o[Key.ok] = plugin.ok.map { .bool($0) } ?? .null
            o[Key.detail] = .string(plugin.detail)
            if let ms = plugin.milliseconds { o[Key.ms] = .double(ms) }
            if let report = plugin.report { o[Key.report] = .string(report) }
            if plugin.busy { o[Key.busy] = .bool(true) }
        case .metrics(let seq, let snapshot):
            o[Key.event] = .string(Event.metrics)
            o[Key.seq] = .int(Int64(seq))
            snapshot.encode(into: &o)
        case .changed(let change):
            o[Key.event] = .string(Event.changed)
            change.encode(into: &o)
        case .leftOut(let items):
            o[Key.event] = .string(Event.leftOut)
            o[Key.items] = .array(items.map { .string($0) })
        }
        return .object(o)
    }

    /// The message, or nil for anything this version does not know (or a message missing what it needs).
    public static func decode(_ value: JSONValue) -> HostMessage? {
        guard let event = value[Key.event]?.stringValue else { return nil }
        func int(_ key: String) -> Int? { value[key].flatMap(intValue) }
        func slots() -> SlotUse {
            SlotUse(inflight: int(Key.inflight) ?? 0, stuck: int(Key.stuck) ?? 0, slots: int(Key.slots) ?? 0)
        }
        switch event {
        case Event.ready:
            return .ready(
                pid: Int32(clamping: int(Key.pid) ?? 0), port: int(Key.port) ?? 0,
                protocolVersion: int(Key.protocolVersion) ?? 1)
        case Event.pong:
            return .pong(seq: int(Key.seq), slots: slots())
        case Event.health:
            guard let seq = int(Key.seq) else { return nil }
            switch value[Key.part]?.stringValue {
            case Part.loop: return .healthLoop(seq: seq, slots: slots())
            case Part.plugin:
                let ok: Bool? = if case .bool(let b) = value[Key.ok] { b } else { nil }
                return .healthPlugin(
                    seq: seq,
                    PluginHealth(
                        ok: ok, detail: value[Key.detail]?.stringValue ?? "", milliseconds: value[Key.ms]?.numberValue,
                        report: value[Key.report]?.stringValue, busy: value[Key.busy] == .bool(true)))
            default: return nil
            }
        case Event.metrics:
            guard let seq = int(Key.seq) else { return nil }
            return .metrics(seq: seq, TrafficSnapshot.decode(value))
        case Event.changed: return PluginChange.decode(value).map { .changed($0) }
        case Event.leftOut:
            guard case .array(let items)? = value[Key.items] else { return nil }
            return .leftOut(items.prefix(1000).compactMap { $0.stringValue.map { String($0.prefix(500)) } })
        default: return nil
        }
    }
}

/// An integer from any JSON number that holds one.
func intValue(_ value: JSONValue) -> Int? {
    switch value {
    case .int(let i): return Int(exactly: i)
    case .double(let d) where d == d.rounded() && abs(d) < 1e15: return Int(d)
    default: return nil
    }
}
