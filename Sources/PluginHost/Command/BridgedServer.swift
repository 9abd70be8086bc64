import Contracts
import Dispatch
import Locking
import MCPProtocol
import NIOCore
import NIOPosix
import PluginABI
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A command server (docs/servers.md): an existing MCP program (stdio, or Streamable HTTP on a private loopback
/// port) behind the host's own protocol engine.
///
/// The bridge performs the program's `initialize` once and keeps that one session for every client of every era;
/// the dispatcher serves clients exactly as for a plugin, and each call becomes one request to the program with
/// the bridge's own id (so concurrent clients never see each other's ids). Cancellation is forwarded as
/// `notifications/cancelled`, progress by a progress token per call, list changes re-read the program's lists.
/// The program's own requests (elicitation, sampling, roots) are carried to the client of the call in flight
/// through the host's input requests (ABI 1.1 semantics, both eras; docs/servers.md says what stdio cannot keep
/// apart).
public final class BridgedServer: Sendable {
    public let serverName: String
    public let serverVersion: String
    public let serverTitle: String?
    public let instructions: String?
    /// The revision the program agreed to.
    public let programProtocol: String
    let handlers: PluginHandlers
    public let concurrency: Int
    let program: RunningProgram
    private let capabilities: [String: JSONValue]
    private let catalogBox: Locked<Catalog>
    private let state = Locked(BridgeState())
    private let changeHandlers = Locked<[@Sendable (UInt32, String?) -> Void]>([])
    /// Keeps the program's change notifications in the order it sent them (a list change re-lists first).
    private let changes = ChangeSequencer()
    private let logSink: @Sendable (String) -> Void
    private let healthBusy = Locked<Double?>(nil)
    private let pingTimeout: Duration
    /// How long an attempt suspended for input (2026-07-28) keeps the program's call waiting for the retry.
    private let parkTimeout: Duration

    /// The bridge's view of one client request that became a request to the program.
    fileprivate final class ProgramCall: Sendable {
        let rpcID: Int64
        let kind: CallKind
        /// The attempt the program's answer goes to (a 2026-07-28 retry replaces it), nil while parked.
        let attempt: Locked<PluginCall?>
        /// The program's input requests so far, numbered: their keys are "input-1", "input-2", ... for the
        /// client, so a retry that reaches a fresh program call answers them again in order.
        let inputs = Locked<(count: Int, waiting: [String: (id: JSONValue, method: String, params: JSONValue)])>(
            (0, [:]))

        init(rpcID: Int64, kind: CallKind, attempt: PluginCall) {
            self.rpcID = rpcID
            self.kind = kind
            self.attempt = Locked(attempt)
        }
    }

    private struct BridgeState {
        /// Program calls by the bridge's request id (also the progress token).
        var calls: [Int64: ProgramCall] = [:]
        /// Calls in flight, newest last: the program's own requests go to the newest tools/call.
        var order: [Int64] = []
        /// 2026-07-28: program calls waiting for a retry, by the token sealed into requestState.
        var parked: [[UInt8]: ProgramCall] = [:]
        var closing = false
    }

    /// Starts the program, performs `initialize` and reads its lists. Fails with the host's exit status for
    /// the cause (docs/plugin-host.md): 50-53, or 21 when the program exits first.
    public init(
        spec: ProgramSpec, group: EventLoopGroup, initTimeout: Duration, pingTimeout: Duration = .seconds(5),
        parkTimeout: Duration = .seconds(300), maxConcurrency: Int,
        stderr: @escaping @Sendable (String) -> Void, log: @escaping @Sendable (String) -> Void,
        onExit: @escaping @Sendable (ProgramExit) -> Void
    ) throws(HostFailure) {
        logSink = log
        self.pingTimeout = pingTimeout
        self.parkTimeout = parkTimeout
        concurrency = maxConcurrency
        let program = try RunningProgram(
            spec, group: group, connectWithin: initTimeout, onStderr: stderr, onExit: onExit)
        self.program = program
        let initialized = DispatchSemaphore(value: 0)
        let answer = Locked<Result<JSONValue, ProgramRPCError>?>(nil)
        let earlyInbound = Locked<[RunningProgram.Inbound]>([])
        program.start(
            onInbound: { message in earlyInbound.withLock { $0.append(message) } },
            onClose: { _ in })
        program.request(
            "initialize",
            [
                "protocolVersion": .string(ProtocolVersion.legacy[0]),
                "capabilities": ["roots": ["listChanged": true], "sampling": [:], "elicitation": [:]],
                "clientInfo": ["name": "mcp-plugin-host", "version": "1"],
            ], timeout: initTimeout
        ) { result in
            answer.withLock { $0 = result }
            initialized.signal()
        }
        initialized.wait()
        let result: JSONValue
        switch answer.withLock({ $0 })! {
        case .success(let r): result = r
        case .failure(let e):
            if program.exit == nil, !program.reached, case .http(let path) = spec.transport {
                program.terminate(grace: .milliseconds(200))
                throw HostFailure(
                    .commandHTTPUnreachable,
                    "\(spec.shown): it did not serve MCP at http://127.0.0.1:\(program.httpPort)\(path) within \(initTimeout) (is \(ProgramSpec.portPlaceholder) where it takes its port?)"
                )
            }
            if e.code == -32001 || program.exit != nil || e.message.hasPrefix("the program") {
                // Its end may be a moment behind its closed output: an exit is 21 (restarting may help), a
                // program still running that gave no usable answer does not speak MCP (53).
                let exit = Self.waitForExit(program, .milliseconds(500))
                let how = exit.map { "; it \($0)" } ?? ""
                if exit == nil { program.terminate(grace: .milliseconds(200)) }
                throw HostFailure(
                    exit == nil ? .commandNotMCP : .programExited,
                    "\(spec.shown): no answer to initialize (\(e.message))\(how)")
            }
            program.terminate(grace: .milliseconds(200))
            throw HostFailure(.commandNotMCP, "\(spec.shown): initialize failed: \(e.code) \(e.message)")
        }
        guard let version = result["protocolVersion"]?.stringValue, let info = result["serverInfo"]?.objectValue
        else {
            program.terminate(grace: .milliseconds(200))
            throw HostFailure(
                .commandNotMCP, "\(spec.shown): its initialize result has no protocolVersion or serverInfo")
        }
        guard ProtocolVersion.legacy.contains(version) else {
            program.terminate(grace: .milliseconds(200))
            throw HostFailure(
                .commandNotMCP,
                "\(spec.shown): it speaks MCP \(version); the bridge speaks \(ProtocolVersion.legacy.joined(separator: ", "))"
            )
        }
        programProtocol = version
        serverName = info["name"]?.stringValue ?? spec.argv[0]
        serverVersion = info["version"]?.stringValue ?? ""
        serverTitle = info["title"]?.stringValue
        instructions = result["instructions"]?.stringValue
        capabilities = result["capabilities"]?.objectValue ?? [:]
        var h: PluginHandlers = []
        if capabilities["tools"] != nil { h.insert(.tools) }
        if capabilities["resources"] != nil { h.insert(.resources) }
        if capabilities["prompts"] != nil { h.insert(.prompts) }
        if capabilities["completions"] != nil { h.insert(.completions) }
        handlers = h
        catalogBox = Locked(Catalog())
        program.initialized(protocolVersion: version)
        program.notify("notifications/initialized", [:])
        // From here on the bridge handles what the program sends unasked (a notification sent before
        // `initialized`, such as a log line, is handled now).
        program.start(
            onInbound: { [weak self] message in self?.inbound(message) },
            onClose: { [weak self] why in self?.closed(why) })
        for message in earlyInbound.withLock({ $0 }) { inbound(message) }
        let catalog: Catalog
        do { catalog = try readCatalog(timeout: initTimeout) } catch {
            program.terminate(grace: .milliseconds(200))
            throw HostFailure(.commandNotMCP, "\(spec.shown): \(error.message)")
        }
        catalogBox.withLock { $0 = catalog }
        if capabilities["resources"]?["subscribe"]?.boolValue == true { subscribeAll(catalog) }
    }

    private static func waitForExit(_ program: RunningProgram, _ limit: Duration) -> ProgramExit? {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if let e = program.exit { return e }
            usleep(10_000)
        }
        return program.exit
    }

    public var pid: pid_t { program.pid }
    /// An http program's private loopback port (0 for stdio).
    public var programPort: Int { program.httpPort }

    // MARK: Lists

    private typealias ListError = RemoteLists.ReadError

    /// The program's lists as the host's catalog. An item the host cannot serve (a duplicate, a bad schema) is
    /// left out with a log line naming it; the rest are served.
    private func readCatalog(timeout: Duration) throws(ListError) -> Catalog {
        let lists = try RemoteLists.read(
            handlers,
            send: { method, params, done in program.request(method, .object(params), timeout: timeout, done) },
            log: log)
        var catalog = Catalog()
        lists.add(to: &catalog) { e in log("left out of the program's lists: \(e.description)") }
        return catalog
    }

    /// The program changed some of its lists: read them again (off the event loop), then tell the listeners.
    private func relist(_ lists: UInt32) { changes.post(.lists(lists), from: self) }

    /// Resources with `subscribe`: the bridge's one session subscribes to every listed resource, so an update
    /// reaches whichever client listens (clients' own subscriptions are kept by the host).
    private func subscribeAll(_ catalog: Catalog) {
        for r in catalog.resources {
            program.request("resources/subscribe", ["uri": .string(r.uri)], timeout: .seconds(30)) { [weak self] r in
                if case .failure(let e) = r { self?.log("resources/subscribe failed: \(e.message)") }
            }
        }
    }

    // MARK: What the program sends unasked

    private func inbound(_ message: RunningProgram.Inbound) {
        switch message {
        case .notification("$/nonjson", let params):
            log(
                "the program wrote a line that is not JSON-RPC on its stdout (ignored): \(params["line"]?.stringValue ?? "")"
            )
        case .notification("notifications/tools/list_changed", _): relist(UInt32(MCPP_LIST_TOOLS))
        case .notification("notifications/resources/list_changed", _): relist(UInt32(MCPP_LIST_RESOURCES))
        case .notification("notifications/prompts/list_changed", _): relist(UInt32(MCPP_LIST_PROMPTS))
        case .notification("notifications/resources/updated", let params):
            guard let uri = params["uri"]?.stringValue else { return }
            changes.post(.resource(uri), from: self)
        case .notification("notifications/progress", let params):
            guard let token = params["progressToken"]?.intValue, let progress = params["progress"]?.numberValue,
                let call = attempt(token)
            else { return }
            call.observer.callProgress(
                progress: progress, total: params["total"]?.numberValue, message: params["message"]?.stringValue)
        case .notification("notifications/message", let params):
            let level = Int32(LogLevel.severity(params["level"]?.stringValue ?? "info") ?? 6)
            let data = params["data"].map { v in v.stringValue ?? JSONWriter.string(v) } ?? ""
            let text = (params["logger"]?.stringValue).map { "\($0): \(data)" } ?? data
            if let call = soleCall() {
                call.observer.callLog(level: level, message: text)
            } else {
                log("[\(LogLevel.name(level))] \(text)")
            }
        case .notification:
            break
        case .request(let id, "ping", _):
            program.respond(id, result: [:])
        case .request(let id, let method, let params):
            programRequest(id: id, method: method, params: .object(params))
        }
    }

    private func attempt(_ rpcID: Int64) -> PluginCall? {
        state.withLock { $0.calls[rpcID] }?.attempt.withLock { $0 }
    }

    /// The one call in flight, if exactly one is: stdio carries no link between a program's message and the
    /// request it belongs to.
    private func soleCall() -> PluginCall? {
        let only = state.withLock { s -> ProgramCall? in s.calls.count == 1 ? s.calls.values.first : nil }
        return only?.attempt.withLock { $0 }
    }

    /// elicitation/create, sampling/createMessage, roots/list from the program: carried to the client of the
    /// newest tools/call (or prompts/get, resources/read) in flight, as one of its input requests.
    private func programRequest(id: JSONValue, method: String, params: JSONValue) {
        guard ["elicitation/create", "sampling/createMessage", "roots/list"].contains(method) else {
            program.respond(id, error: ProgramRPCError(code: -32601, message: "method not found: \(method)"))
            return
        }
        let target = state.withLock { s -> ProgramCall? in
            for rpcID in s.order.reversed() {
                if let c = s.calls[rpcID], case .complete = c.kind {} else if let c = s.calls[rpcID] { return c }
            }
            return nil
        }
        guard let target, let call = target.attempt.withLock({ $0 }) else {
            if method == "roots/list" {
                // No client request is in flight to ask: the bridge's session has no roots of its own.
                program.respond(id, result: ["roots": []])
            } else {
                program.respond(
                    id,
                    error: ProgramRPCError(
                        code: -32603, message: "no client request is in flight to carry \(method) to a client"))
            }
            return
        }
        let key = target.inputs.withLock { i -> String in
            i.count += 1
            let key = "input-\(i.count)"
            i.waiting[key] = (id, method, params)
            return key
        }
        ask(target, call, key: key)
    }

    /// Hands the program's request `key` to the attempt's client (its era decides how).
    private func ask(_ target: ProgramCall, _ call: PluginCall, key: String) {
        guard let waiting = target.inputs.withLock({ $0.waiting[key] }) else { return }
        let once = Atomic<Bool>(false)
        let request = InputRequest(
            key: key, method: waiting.method, params: waiting.params,
            resolve: { [weak self] status, answer in
                guard let self, !once.exchange(true, ordering: .acquiringAndReleasing) else { return }
                self.resolved(target, call, key: key, status: status, answer: answer)
            })
        guard call.claimInputKey(key) else {
            answerProgram(target, key: key, .failure(ProgramRPCError(code: -32603, message: "the call has ended")))
            return
        }
        let status = call.observer.callRequestsInput(call, request)
        if status != MCPP_OK {
            answerProgram(
                target, key: key, .failure(ProgramRPCError(code: -32603, message: "the client cannot be asked now")))
        }
    }

    private func resolved(_ target: ProgramCall, _ call: PluginCall, key: String, status: Int32, answer: JSONValue?) {
        switch status {
        case MCPP_INPUT_ANSWERED:
            answerProgram(target, key: key, .success(answer ?? [:]))
        case MCPP_INPUT_REFUSED:
            answerProgram(
                target, key: key,
                .failure(
                    ProgramRPCError(
                        code: answer?["code"]?.intValue ?? -32603,
                        message: answer?["message"]?.stringValue ?? "the client refused", data: answer?["data"])))
        case MCPP_INPUT_UNSUPPORTED:
            answerProgram(
                target, key: key,
                .failure(
                    ProgramRPCError(code: -32601, message: "the client does not support \(target.inputMethod(key))")))
        case MCPP_INPUT_SUSPENDED:
            park(target, call)
        default:
            answerProgram(
                target, key: key, .failure(ProgramRPCError(code: -32800, message: "the request was cancelled")))
        }
    }

    private func answerProgram(_ target: ProgramCall, key: String, _ result: Result<JSONValue, ProgramRPCError>) {
        guard let waiting = target.inputs.withLock({ $0.waiting.removeValue(forKey: key) }) else { return }
        switch result {
        case .success(let r): program.respond(waiting.id, result: r)
        case .failure(let e): program.respond(waiting.id, error: e)
        }
    }

    /// 2026-07-28: the client answers in a retry. The attempt ends with input_required and a token in its
    /// requestState; the program's call waits (up to `parkTimeout`) for the retry to bring the answers. A retry
    /// that reaches another replica, or comes too late, starts the call afresh and answers the program's
    /// requests from the answers it carries, in order (docs/servers.md).
    private func park(_ target: ProgramCall, _ call: PluginCall) {
        guard
            target.attempt.withLock({ a -> Bool in
                guard a === call else { return false }
                a = nil
                return true
            })
        else { return }
        let token = (0..<16).map { _ in UInt8.random(in: 0...255) }
        state.withLock { $0.parked[token] = target }
        try? call.update { s in s.pluginState = token }
        _ = call.finish(outcome: MCPP_OUTCOME_OK, message: "")
        DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(parkTimeout.nanoseconds))) {
            [weak self] in
            guard let self, self.state.withLock({ $0.parked.removeValue(forKey: token) }) != nil else { return }
            self.log("\(target.kind.activity): no retry within \(self.parkTimeout); the program's call is cancelled")
            self.abandon(target, reason: "the client did not retry")
        }
    }

    /// Ends a program call nobody waits for: the program hears notifications/cancelled.
    private func abandon(_ target: ProgramCall, reason: String) {
        state.withLock { s in
            s.calls.removeValue(forKey: target.rpcID)
            s.order.removeAll { $0 == target.rpcID }
        }
        program.forget(target.rpcID)
        program.notify("notifications/cancelled", ["requestId": .int(target.rpcID), "reason": .string(reason)])
        for key in target.inputs.withLock({ Array($0.waiting.keys) }) {
            answerProgram(target, key: key, .failure(ProgramRPCError(code: -32800, message: reason)))
        }
    }

    // MARK: Calls

    private func start(_ call: PluginCall) {
        if let token = call.priorState, let parked = state.withLock({ $0.parked.removeValue(forKey: token) }) {
            resume(parked, with: call)
            return
        }
        if call.isCancelled {
            _ = call.finish(with: .internalError("cancelled before it started"))
            return
        }
        let (method, params) = RemoteOutcome.request(for: call)
        let rpcID = program.reserveID()
        let pc = ProgramCall(rpcID: rpcID, kind: call.kind, attempt: call)
        state.withLock { s in
            s.calls[rpcID] = pc
            s.order.append(rpcID)
        }
        call.onCancel { [weak self] in self?.cancelled(pc, call) }
        var p = params
        if case .tool = call.kind { p["_meta"] = ["progressToken": .int(rpcID)] }
        program.request(
            method, .object(p), id: rpcID,
            sized: { [weak self] result, size in
                self?.answered(pc, result, size: size)
            })
    }

    /// A 2026-07-28 retry of a parked call: answer the program's waiting requests from the retry and let the
    /// program's result (or its next request) go to the new attempt.
    private func resume(_ pc: ProgramCall, with call: PluginCall) {
        pc.attempt.withLock { $0 = call }
        call.onCancel { [weak self] in self?.cancelled(pc, call) }
        let waiting = pc.inputs.withLock { $0.waiting.keys.sorted() }
        var unanswered: [String] = []
        for key in waiting {
            if let answer = call.priorAnswers[key] {
                call.useAnswer(key, answer)
                answerProgram(pc, key: key, .success(answer))
            } else {
                unanswered.append(key)
            }
        }
        for key in unanswered { ask(pc, call, key: key) }
    }

    private func cancelled(_ pc: ProgramCall, _ call: PluginCall) {
        guard pc.attempt.withLock({ $0 === call }) else { return }
        abandon(pc, reason: "the client's request was cancelled")
        _ = call.finish(with: .internalError("cancelled"))
    }

    /// `size` is the answer's length as the program sent it (nil inside a batch: then it is measured here).
    private func answered(_ pc: ProgramCall, _ result: Result<JSONValue, ProgramRPCError>, size: Int?) {
        state.withLock { s in
            s.calls.removeValue(forKey: pc.rpcID)
            s.order.removeAll { $0 == pc.rpcID }
        }
        guard let call = pc.attempt.withLock({ $0 }) else { return }
        RemoteOutcome.finish(call, kind: pc.kind, result, size: size, who: "the program")
    }

    // MARK: The program's end

    private func closed(_ why: String) {
        let calls = state.withLock { s -> [ProgramCall] in
            defer {
                s.calls = [:]
                s.order = []
                s.parked = [:]
            }
            return Array(s.calls.values) + Array(s.parked.values)
        }
        for pc in calls {
            _ = pc.attempt.withLock({ $0 })?.finish(with: .internalError("the program ended: \(why)"))
        }
    }

    /// Graceful end: the program's stdin closes, then SIGTERM, then SIGKILL.
    public func destroy(healthWait: Duration) {
        state.withLock { $0.closing = true }
        program.terminate(grace: .seconds(2))
    }

    public var isClosing: Bool { state.withLock { $0.closing } }

    func log(_ line: String) { logSink(line) }
}

extension BridgedServer: NonPluginServer {
    var catalog: Catalog { catalogBox.withLock { $0 } }

    func makeCall(
        kind: CallKind, arguments: [String: JSONValue], observer: any CallObserver, maxOutputBytes: Int,
        input: RetryInput
    ) -> PluginCall {
        PluginCall(
            id: UInt(program.reserveID()), kind: kind, arguments: arguments, observer: observer,
            maxOutputBytes: maxOutputBytes, priorAnswers: input.answers, priorState: input.pluginState)
    }

    /// Starting a call only writes a line to the program's pipe: always on the calling thread.
    func mayRunInline(_ tool: Catalog.Tool) -> Bool { true }
    func runInline(_ call: PluginCall) { start(call) }
    func submit(_ call: PluginCall) { start(call) }
    func cancel(_ call: PluginCall) { call.markCancelled() }
    func checkOverrun(_ call: PluginCall) {}

    func onChange(_ handler: @escaping @Sendable (UInt32, String?) -> Void) {
        changeHandlers.withLock { $0.append(handler) }
    }

    var slotsBusy: Int { state.withLock { $0.calls.count } }

    /// The detailed probe: a `ping` that reaches the program, answered within `pingTimeout`.
    func checkHealth(diagnose: Bool, _ done: @escaping @Sendable (PluginInstance.HealthCheck) -> Void) {
        let start = monotonicSeconds()
        if let since = healthBusy.withLock({ b -> Double? in
            if let b { return b }
            b = start
            return nil
        }) {
            return done(.busy(seconds: start - since))
        }
        let timeout = pingTimeout
        let pid = program.pid
        let protocolVersion = programProtocol
        program.request("ping", [:], timeout: timeout) { [weak self] result in
            self?.healthBusy.withLock { $0 = nil }
            let seconds = monotonicSeconds() - start
            let report =
                diagnose
                ? "program pid \(pid), MCP \(protocolVersion), \(self?.slotsBusy ?? 0) request(s) in flight" : nil
            switch result {
            case .success:
                done(.answered(ok: true, detail: "the program answered ping", report: report, seconds: seconds))
            case .failure(let e):
                done(
                    .answered(
                        ok: false, detail: "the program did not answer ping: \(e.message)", report: report,
                        seconds: seconds))
            }
        }
    }
}

extension BridgedServer.ProgramCall {
    func inputMethod(_ key: String) -> String { inputs.withLock { $0.waiting[key]?.method ?? "input requests" } }
}

extension BridgedServer: ChangeSource {
    func refreshLists() -> Bool {
        do throws(ListError) {
            let catalog = try readCatalog(timeout: .seconds(30))
            catalogBox.withLock { $0 = catalog }
            return true
        } catch {
            log("the program's new lists cannot be read, keeping the previous ones: \(error.message)")
            return false
        }
    }

    func deliverChange(lists: UInt32, uri: String?) {
        for handler in changeHandlers.withLock({ $0 }) { handler(lists, uri) }
    }

    func runDetached(_ work: @escaping @Sendable () -> Void) { DispatchQueue.global().async(execute: work) }
}
