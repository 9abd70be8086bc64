/// Start and stop order from `depends_on`: a server starts after everything it depends on, and stops before it.
public enum DependencyOrder {
    /// Servers in start order (dependencies first; ties by name). Assumes no cycle (the loader rejects cycles).
    public static func startOrder(_ servers: [ServerConfig]) -> [String] {
        let byName = Dictionary(uniqueKeysWithValues: servers.map { ($0.name, $0) })
        var done = Set<String>()
        var order: [String] = []
        func visit(_ n: String) {
            guard !done.contains(n), let s = byName[n] else { return }
            done.insert(n)
            for d in s.dependsOn.sorted() { visit(d) }
            order.append(n)
        }
        for s in servers.map(\.name).sorted() { visit(s) }
        return order
    }

    /// Servers in stop order: the reverse of the start order.
    public static func stopOrder(_ servers: [ServerConfig]) -> [String] { startOrder(servers).reversed() }

    /// A dependency cycle as a path that returns to its first element (`a -> b -> a`), or nil.
    public static func findCycle(_ servers: [ServerConfig]) -> [String]? {
        let byName = Dictionary(uniqueKeysWithValues: servers.map { ($0.name, $0) })
        var state: [String: Int] = [:]  // 1 visiting, 2 done
        var stack: [String] = []
        func visit(_ n: String) -> [String]? {
            if state[n] == 2 { return nil }
            if state[n] == 1 {
                let start = stack.firstIndex(of: n)!
                return Array(stack[start...]) + [n]
            }
            state[n] = 1
            stack.append(n)
            for d in byName[n]?.dependsOn.sorted() ?? [] {
                if let c = visit(d) { return c }
            }
            stack.removeLast()
            state[n] = 2
            return nil
        }
        for n in servers.map(\.name).sorted() {
            if let c = visit(n) { return c }
        }
        return nil
    }
}

/// What a reload changes.
public struct ConfigDiff: Sendable, Equatable {
    public var added: [String] = []
    public var removed: [String] = []
    public var changed: [String] = []
    public var unchanged: [String] = []

    public init(old: SupervisorConfig, new: SupervisorConfig) {
        let oldByName = Dictionary(uniqueKeysWithValues: old.servers.map { ($0.name, $0) })
        let newByName = Dictionary(uniqueKeysWithValues: new.servers.map { ($0.name, $0) })
        let globalChanged = old.hostExecutable != new.hostExecutable || old.listenAddress != new.listenAddress
        for s in new.servers {
            guard let o = oldByName[s.name] else {
                added.append(s.name)
                continue
            }
            if o != s || globalChanged { changed.append(s.name) } else { unchanged.append(s.name) }
        }
        removed = old.servers.map(\.name).filter { newByName[$0] == nil }
    }
}
