import Locking
import MCPProtocol
import PluginABI
import Synchronization

/// Input requests carried between a client and a server (docs/gateway.md, "Input requests"): a server behind the
/// gateway answers a call with `input_required` (2026-07-28, the gateway's era with every server); the gateway
/// hands each of its `inputRequests` to the call's client through the engine, as a plugin's input request goes:
/// a 2025-era client gets `elicitation/create`, `sampling/createMessage` or `roots/list` on its stream and the
/// gateway sends the server the retry with the answers itself; a 2026-07-28 client gets `input_required` with the
/// gateway's own sealed `requestState`, which names the server that asked and carries that server's
/// `requestState`, so the client's retry goes to the same server with its `inputResponses`.
struct BackendInput: Sendable, Equatable {
    /// The server that asked (the retry goes to it, not to an equivalent one: its requestState is its own).
    var backend: String
    var requestState: String?
    var responses: [String: JSONValue]
    /// Which round of this call's input requests `responses` answer (0 first).
    var round: Int

    /// The key a round's request has for the engine and the client: the server's own in the first round, then
    /// suffixed by the round, so a key a server uses again in a later round is not taken for the earlier answer.
    static func engineKey(_ key: String, round: Int) -> String { round == 0 ? key : "\(key)~\(round)" }

    /// The methods a server may ask a client for (2026-07-28 mrtr.mdx).
    static let methods: Set<String> = ["elicitation/create", "sampling/createMessage", "roots/list"]

    /// The bytes the gateway seals into its requestState for a 2026-07-28 client (the engine encrypts and
    /// authenticates them, so a client can neither read nor forge them).
    static func seal(backend: String, requestState: String?, keys: [String], round: Int) -> [UInt8] {
        var o: [String: JSONValue] = [
            "b": .string(backend), "k": .array(keys.map { .string($0) }), "r": .int(Int64(round)),
        ]
        if let requestState { o["s"] = .string(requestState) }
        return JSONWriter.serialize(.object(o))
    }

    /// A retry's input for its server: the answers to the keys that server asked, with its requestState; nil
    /// when the bytes are not the gateway's.
    static func open(_ sealed: [UInt8], answers: [String: JSONValue]) -> BackendInput? {
        guard let v = try? JSONParser.parse(sealed), let backend = v["b"]?.stringValue,
            case .array(let keys)? = v["k"], let round = v["r"]?.intValue, round >= 0
        else { return nil }
        var responses: [String: JSONValue] = [:]
        for k in keys {
            if let key = k.stringValue, let answer = answers[engineKey(key, round: Int(round))] {
                responses[key] = answer
            }
        }
        return BackendInput(
            backend: backend, requestState: v["s"]?.stringValue, responses: responses, round: Int(round))
    }
}

/// One round of a server's input requests: what the client did with each, complete once every key is in.
final class InputRound: Sendable {
    enum Outcome: Sendable {
        case answered(JSONValue)
        case refused(JSONValue?)
        case unsupported
        case suspended
        case cancelled
    }

    private let state: Locked<(left: Int, outcomes: [String: Outcome])>

    init(count: Int) { state = Locked((count, [:])) }

    /// Records `key`'s outcome; every outcome once the last one is in, else nil.
    func record(_ key: String, _ status: Int32, _ answer: JSONValue?) -> [String: Outcome]? {
        let outcome: Outcome
        switch status {
        case MCPP_INPUT_ANSWERED: outcome = .answered(answer ?? [:])
        case MCPP_INPUT_REFUSED: outcome = .refused(answer)
        case MCPP_INPUT_UNSUPPORTED: outcome = .unsupported
        case MCPP_INPUT_SUSPENDED: outcome = .suspended
        default: outcome = .cancelled
        }
        return state.withLock { s in
            guard s.outcomes[key] == nil else { return nil }
            s.outcomes[key] = outcome
            s.left -= 1
            return s.left == 0 ? s.outcomes : nil
        }
    }
}

extension GatewayServer {
    /// A server answered a call with input_required: its requests go to the call's client (see BackendInput).
    /// `round` counts the rounds of this call's input requests (0 first; see `BackendInput.engineKey`).
    func relayInput(
        _ call: PluginCall, from backend: String, _ value: JSONValue, round: Int, number: Int,
        started: ContinuousClock.Instant, deadline: ContinuousClock.Instant
    ) {
        guard case .object(let requests)? = value["inputRequests"], !requests.isEmpty else {
            _ = call.finish(with: .internalError("server '\(backend)' answered input_required without inputRequests"))
            return
        }
        let keys = requests.keys.sorted()
        for key in keys {
            guard let method = requests[key]?["method"]?.stringValue, BackendInput.methods.contains(method) else {
                _ = call.finish(
                    with: .internalError("server '\(backend)' asked for input '\(key)' with an unknown method"))
                return
            }
        }
        let requestState = value["requestState"]?.stringValue
        let asked = InputRound(count: keys.count)
        for key in keys {
            let method = requests[key]?["method"]?.stringValue ?? ""
            let engineKey = BackendInput.engineKey(key, round: round)
            let once = Atomic<Bool>(false)
            let request = InputRequest(
                key: engineKey, method: method, params: requests[key]?["params"] ?? [:],
                resolve: { [weak self] status, answer in
                    guard !once.exchange(true, ordering: .acquiringAndReleasing),
                        let all = asked.record(key, status, answer)
                    else { return }
                    self?.inputRoundEnded(
                        call, backend: backend, requests: requests, requestState: requestState, all, round: round,
                        number: number, started: started, deadline: deadline)
                })
            guard call.claimInputKey(engineKey) else {
                request.resolve(MCPP_INPUT_CANCELLED, nil)
                continue
            }
            if call.observer.callRequestsInput(call, request) != MCPP_OK {
                request.resolve(MCPP_INPUT_UNSUPPORTED, nil)
            }
        }
    }

    private func inputRoundEnded(
        _ call: PluginCall, backend: String, requests: [String: JSONValue], requestState: String?,
        _ outcomes: [String: InputRound.Outcome], round: Int, number: Int, started: ContinuousClock.Instant,
        deadline: ContinuousClock.Instant
    ) {
        func method(_ key: String) -> String { requests[key]?["method"]?.stringValue ?? "input" }
        var responses: [String: JSONValue] = [:]
        var suspended = false
        for key in outcomes.keys.sorted() {
            switch outcomes[key]! {
            case .cancelled:
                _ = call.finish(with: .internalError("cancelled while server '\(backend)' waited for the client"))
                return
            case .unsupported:
                _ = call.finish(
                    outcome: MCPP_OUTCOME_NEEDS_CAPABILITY,
                    message:
                        "server '\(backend)' asks the client for \(method(key)), which this client did not declare or cannot receive on this request"
                )
                return
            case .refused(let error):
                _ = call.finish(
                    with: .internalError(
                        "the client refused \(method(key)) for server '\(backend)': \(error?["message"]?.stringValue ?? "no reason given")"
                    ))
                return
            case .suspended:
                suspended = true
            case .answered(let answer):
                responses[key] = answer
            }
        }
        if suspended {
            // 2026-07-28: the engine ends the attempt with input_required; the retry comes back to `start`.
            try? call.update { s in
                s.pluginState = BackendInput.seal(
                    backend: backend, requestState: requestState, keys: requests.keys.sorted(), round: round)
            }
            _ = call.finish(outcome: MCPP_OUTCOME_OK, message: "")
            return
        }
        // A 2025-era client answered on its stream: the gateway retries the server with the answers.
        attempt(
            call, number: number, started: started, deadline: deadline,
            input: BackendInput(backend: backend, requestState: requestState, responses: responses, round: round))
    }
}
