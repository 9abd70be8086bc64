/// Start and stop order from `depends_on`: a server starts after everything it depends on, and stops before it.
public enum DependencyOrder {
    /// Servers in start order (dependencies first; ties by name). Assumes no cycle (the loader rejects cycles).
    public static func startOrder(_ servers: [ServerConfig]) -> [String] {
        let byName = Dictionary(uniqueKeysWithValues: servers.map { ($0.name, $0) })
        var done = Set<String>()
        var order: [String] = []
        func visit(_ name: String) {
            guard !done.contains(name), let server = byName[name] else { return }
            done.insert(name)
            for dependency in server.dependsOn.sorted() { visit(dependency) }
            order.append(name)
        }
        for name in servers.map(\.name).sorted() { visit(name) }
        return order
    }

    /// Servers in stop order: the reverse of the start order.
    public static func stopOrder(_ servers: [ServerConfig]) -> [String] { startOrder(servers).reversed() }

    /// A dependency cycle as a path that returns to its first element (`a -> b -> a`), or nil.
    public static func findCycle(_ servers: [ServerConfig]) -> [String]? {
        let byName = Dictionary(uniqueKeysWithValues: servers.map { ($0.name, $0) })
        var state: [String: Int] = [:]  // 1 visiting, 2 done
        var stack: [String] = []
        func visit(_ name: String) -> [String]? {
            if state[name] == 2 { return nil }
            if state[name] == 1 {
                let start = stack.firstIndex(of: name)!
                return Array(stack[start...]) + [name]
            }
            state[name] = 1
            stack.append(name)
            for dependency in byName[name]?.dependsOn.sorted() ?? [] {
                if let cycle = visit(dependency) { return cycle }
            }
            stack.removeLast()
            state[name] = 2
            return nil
        }
        for name in servers.map(\.name).sorted() {
            if let cycle = visit(name) { return cycle }
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
        for server in new.servers {
            guard let previous = oldByName[server.name] else {
                added.append(server.name)
                continue
            }
            if previous != server || globalChanged {
                changed.append(server.name)
            } else {
                unchanged.append(server.name)
            }
        }
        removed = old.servers.map(\.name).filter { newByName[$0] == nil }
    }
}
