import MCPProtocol

/// A composite tool of the gateway (docs/gateway.md, "Composite tools"): one tool on the endpoint that runs
/// several of its tools by a policy. Defined in `[gateway.composites.<name>]`; the supervisor checks the
/// definition at load (naming file, line and key) and hands it to the gateway as JSON, which reads it back with
/// the same code.
public struct CompositeTool: Sendable, Equatable {
    public enum Policy: String, Sendable, Equatable, CaseIterable {
        /// Every step at once (up to `maxConcurrency`), each with its own deadline; partial results say which
        /// steps failed.
        case parallel
        /// One step after another; a step's arguments may use the earlier steps' results; a failed run returns a
        /// checkpoint, and a call with it resumes after the last good step.
        case sequential
        /// The steps in order until one succeeds (each tried `retries` times).
        case failover
        /// The composite's own arguments to every step at once; the results merged.
        case aggregate
    }

    public struct Step: Sendable, Equatable {
        /// The tool's name on the gateway (`server__tool`).
        public var tool: String
        /// Its arguments; strings may hold templates (`{{input.x}}`, `{{steps.0.text}}`, `{{previous.text}}`,
        /// `{{steps.0.structured.key}}`). nil: the composite's own arguments.
        public var arguments: JSONValue?
        /// Attempts of this step (failover), at least 1.
        public var retries: Int

        public init(tool: String, arguments: JSONValue?, retries: Int = 1) {
            self.tool = tool
            self.arguments = arguments
            self.retries = retries
        }
    }

    public var name: String
    public var policy: Policy
    public var description: String
    public var steps: [Step]
    /// Seconds each step may take (nil: the call's own deadline).
    public var stepTimeout: Double?
    /// Steps running at once (parallel, aggregate).
    public var maxConcurrency: Int

    public init(
        name: String, policy: Policy, description: String, steps: [Step], stepTimeout: Double?, maxConcurrency: Int
    ) {
        self.name = name
        self.policy = policy
        self.description = description
        self.steps = steps
        self.stepTimeout = stepTimeout
        self.maxConcurrency = maxConcurrency
    }

    /// Why a definition is wrong: the key (relative to the composite's table) and what is wrong with it.
    public struct Problem: Error, Sendable, Equatable {
        public var key: String
        public var message: String
    }

    /// The input names its templates use (`{{input.x}}`), in order of first use.
    public var inputNames: [String] {
        var names: [String] = []
        func walk(_ v: JSONValue) {
            switch v {
            case .string(let s):
                for t in Self.templates(in: s) where t.first == "input" && t.count == 2 && !names.contains(t[1]) {
                    names.append(t[1])
                }
            case .array(let a): a.forEach(walk)
            case .object(let o): o.keys.sorted().forEach { walk(o[$0]!) }
            default: break
            }
        }
        for step in steps { if let a = step.arguments { walk(a) } }
        return names
    }

    /// The composite's input schema: each input name any value (what the steps' own schemas check), plus
    /// `checkpoint` for a sequential composite's resumption.
    public var inputSchema: JSONValue {
        var properties: [String: JSONValue] = [:]
        for n in inputNames { properties[n] = ["description": .string("passed to the steps that use {{input.\(n)}}")] }
        if policy == .sequential {
            properties["checkpoint"] = [
                "type": "string", "description": "from a failed run's result: resume after its last good step",
            ]
        }
        if policy == .aggregate, steps.contains(where: { $0.arguments == nil }) {
            return ["type": "object", "additionalProperties": true, "properties": .object(properties)]
        }
        return ["type": "object", "properties": .object(properties)]
    }

    /// The server prefix of a name on the gateway: what comes before its first `__`.
    public static func prefix(of name: String) -> String {
        let b = Array(name.utf8)
        var i = 0
        while i + 1 < b.count {
            if b[i] == 0x5F, b[i + 1] == 0x5F { return String(decoding: b[..<i], as: UTF8.self) }
            i += 1
        }
        return name
    }

    /// The templates in a string, each as its dotted path (`{{steps.0.text}}` → ["steps", "0", "text"]).
    public static func templates(in s: String) -> [[String]] {
        pieces(s).compactMap { if case .template(let path) = $0 { path } else { nil } }
    }

    /// A string split into its literal text and its templates.
    public enum Piece: Sendable, Equatable {
        case text(String)
        case template([String])
    }

    public static func pieces(_ s: String) -> [Piece] {
        let b = Array(s.utf8)
        var out: [Piece] = []
        var literal: [UInt8] = []
        var i = 0
        while i < b.count {
            if i + 1 < b.count, b[i] == 0x7B, b[i + 1] == 0x7B,
                let close = (i + 2..<max(i + 2, b.count - 1)).first(where: { b[$0] == 0x7D && b[$0 + 1] == 0x7D })
            {
                if !literal.isEmpty { out.append(.text(String(decoding: literal, as: UTF8.self))) }
                literal = []
                let inner = String(decoding: b[(i + 2)..<close].filter { $0 != 0x20 }, as: UTF8.self)
                out.append(.template(inner.split(separator: ".", omittingEmptySubsequences: false).map(String.init)))
                i = close + 2
            } else {
                literal.append(b[i])
                i += 1
            }
        }
        if !literal.isEmpty { out.append(.text(String(decoding: literal, as: UTF8.self))) }
        return out
    }

    /// Reads a definition from its JSON form (the TOML table as JSON), or says what is wrong.
    public static func parse(name: String, _ v: JSONValue) throws(Problem) -> CompositeTool {
        guard !name.isEmpty, name.utf8.count <= 64, !name.contains("__"),
            name.utf8.allSatisfy({
                ($0 | 0x20 >= 97 && $0 | 0x20 <= 122) || (48...57).contains($0) || $0 == 95 || $0 == 45
            })
        else {
            throw Problem(
                key: "", message: "'\(name)' is not a composite name (1-64 of letters, digits, '_', '-', without '__')")
        }
        guard case .object(let o) = v else { throw Problem(key: "", message: "must be a table") }
        for key in o.keys where !["policy", "description", "steps", "step_timeout", "max_concurrency"].contains(key) {
            throw Problem(
                key: key,
                message: "is not a composite setting (policy, description, steps, step_timeout, max_concurrency)")
        }
        guard let p = o["policy"]?.stringValue, let policy = Policy(rawValue: p) else {
            throw Problem(key: "policy", message: "must be parallel, sequential, failover or aggregate")
        }
        guard case .array(let items)? = o["steps"], !items.isEmpty, items.count <= 32 else {
            throw Problem(key: "steps", message: "must be 1-32 steps ([[...steps]] with tool = \"server__tool\")")
        }
        var steps: [Step] = []
        for (i, item) in items.enumerated() {
            guard case .object(let s) = item else { throw Problem(key: "steps[\(i)]", message: "must be a table") }
            for key in s.keys where !["tool", "arguments", "retries"].contains(key) {
                throw Problem(key: "steps[\(i)].\(key)", message: "is not a step setting (tool, arguments, retries)")
            }
            guard let tool = s["tool"]?.stringValue, tool.contains("__") else {
                throw Problem(key: "steps[\(i)].tool", message: "must be a tool's name on the gateway (server__tool)")
            }
            if let a = s["arguments"], a.objectValue == nil {
                throw Problem(key: "steps[\(i)].arguments", message: "must be a table")
            }
            let retries = s["retries"].flatMap(intValue) ?? 1
            guard (1...10).contains(retries) else {
                throw Problem(key: "steps[\(i)].retries", message: "must be 1-10")
            }
            let step = Step(tool: tool, arguments: s["arguments"], retries: retries)
            try check(step.arguments, step: i, policy: policy)
            steps.append(step)
        }
        var timeout: Double?
        if let t = o["step_timeout"], t != .null {
            guard let seconds = t.numberValue, seconds > 0, seconds <= 3600 else {
                throw Problem(key: "step_timeout", message: "must be more than 0 and at most 3600 seconds")
            }
            timeout = seconds
        }
        let concurrency = o["max_concurrency"].flatMap(intValue) ?? steps.count
        guard concurrency >= 1 else { throw Problem(key: "max_concurrency", message: "must be at least 1") }
        return CompositeTool(
            name: name, policy: policy, description: o["description"]?.stringValue ?? "", steps: steps,
            stepTimeout: timeout, maxConcurrency: concurrency)
    }

    /// Every template names something there is: an input, an earlier step (sequential only), `previous` (not in
    /// the first step).
    private static func check(_ v: JSONValue?, step: Int, policy: Policy) throws(Problem) {
        guard let v else { return }
        switch v {
        case .string(let s):
            for t in templates(in: s) {
                let where_ = "steps[\(step)].arguments"
                switch t.first {
                case "input" where t.count == 2 && !t[1].isEmpty:
                    continue
                case "steps" where t.count >= 3:
                    guard policy == .sequential, let n = Int(t[1]), n >= 0, n < step else {
                        throw Problem(
                            key: where_,
                            message:
                                "{{\(t.joined(separator: "."))}} must name an earlier step of a sequential composite")
                    }
                    guard t[2] == "text" || (t[2] == "structured" && t.count >= 4) else {
                        throw Problem(
                            key: where_, message: "{{\(t.joined(separator: "."))}}: use .text or .structured.KEY")
                    }
                case "previous" where t.count >= 2:
                    guard policy == .sequential, step > 0 else {
                        throw Problem(
                            key: where_, message: "{{previous...}} needs an earlier step of a sequential composite")
                    }
                default:
                    throw Problem(
                        key: where_,
                        message:
                            "{{\(t.joined(separator: "."))}} is not a template ({{input.NAME}}, {{steps.N.text}}, {{steps.N.structured.KEY}}, {{previous.text}})"
                    )
                }
            }
        case .array(let a):
            for x in a { try check(x, step: step, policy: policy) }
        case .object(let o):
            for key in o.keys.sorted() { try check(o[key], step: step, policy: policy) }
        default:
            break
        }
    }

    /// The definition as JSON (what the supervisor passes the gateway).
    public var json: JSONValue {
        var o: [String: JSONValue] = [
            "policy": .string(policy.rawValue), "description": .string(description),
            "max_concurrency": .int(Int64(maxConcurrency)),
            "steps": .array(
                steps.map { s in
                    var step: [String: JSONValue] = ["tool": .string(s.tool), "retries": .int(Int64(s.retries))]
                    if let a = s.arguments { step["arguments"] = a }
                    return .object(step)
                }),
        ]
        if let stepTimeout { o["step_timeout"] = .double(stepTimeout) }
        return .object(o)
    }
}
