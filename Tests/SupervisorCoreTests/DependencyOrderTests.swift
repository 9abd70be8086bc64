import Testing

@testable import SupervisorCore

func makeServer(_ name: String, dependsOn: [String] = []) -> ServerConfig {
    var s = ServerConfig(name: name, file: "/etc/mcp/servers.d/\(name).toml", plugin: "/plugins/\(name).so")
    s.dependsOn = dependsOn
    return s
}

/// All orderings of a small array (for "the result does not depend on the input order").
func permutations<T>(_ a: [T]) -> [[T]] {
    guard a.count > 1 else { return [a] }
    var out: [[T]] = []
    for i in a.indices {
        var rest = a
        let x = rest.remove(at: i)
        for p in permutations(rest) { out.append([x] + p) }
    }
    return out
}

struct DependencyOrderTests {
    /// Every server appears once, and after everything it depends on.
    func expectValidStartOrder(
        _ order: [String], _ servers: [ServerConfig], sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(order.sorted() == servers.map(\.name).sorted(), sourceLocation: sourceLocation)
        for s in servers {
            guard let i = order.firstIndex(of: s.name) else { continue }
            for d in s.dependsOn {
                let j = order.firstIndex(of: d)
                #expect(
                    j != nil && j! < i, "\(d) must start before \(s.name) in \(order)", sourceLocation: sourceLocation)
            }
        }
    }

    @Test func chainStartsDependenciesFirst() {
        let servers = [makeServer("c", dependsOn: ["b"]), makeServer("a"), makeServer("b", dependsOn: ["a"])]
        #expect(DependencyOrder.startOrder(servers) == ["a", "b", "c"])
        #expect(DependencyOrder.stopOrder(servers) == ["c", "b", "a"])
    }

    @Test func dependencyNamedLaterAlphabeticallyStillStartsFirst() {
        let servers = [makeServer("app", dependsOn: ["zdb"]), makeServer("zdb")]
        #expect(DependencyOrder.startOrder(servers) == ["zdb", "app"])
        #expect(DependencyOrder.stopOrder(servers) == ["app", "zdb"])
    }

    @Test func independentServersStartInNameOrder() {
        let servers = [makeServer("delta"), makeServer("alpha"), makeServer("charlie"), makeServer("bravo")]
        #expect(DependencyOrder.startOrder(servers) == ["alpha", "bravo", "charlie", "delta"])
        #expect(DependencyOrder.stopOrder(servers) == ["delta", "charlie", "bravo", "alpha"])
    }

    @Test func diamond() {
        let servers = [
            makeServer("web", dependsOn: ["cache", "db"]),
            makeServer("cache", dependsOn: ["config"]),
            makeServer("db", dependsOn: ["config"]),
            makeServer("config"),
        ]
        let order = DependencyOrder.startOrder(servers)
        expectValidStartOrder(order, servers)
        #expect(order.first == "config")
        #expect(order.last == "web")
    }

    @Test func orderIsDeterministicWhateverTheInputOrder() {
        let servers = [
            makeServer("e", dependsOn: ["b", "d"]),
            makeServer("d", dependsOn: ["a"]),
            makeServer("c"),
            makeServer("b", dependsOn: ["a"]),
            makeServer("a"),
        ]
        let reference = DependencyOrder.startOrder(servers)
        expectValidStartOrder(reference, servers)
        for p in permutations(servers) {
            #expect(DependencyOrder.startOrder(p) == reference)
            #expect(DependencyOrder.stopOrder(p) == Array(reference.reversed()))
        }
        // depends_on order inside one server does not matter either.
        var swapped = servers
        swapped[0].dependsOn = ["d", "b"]
        #expect(DependencyOrder.startOrder(swapped) == reference)
    }

    @Test func stopOrderIsTheReverseOfStartOrder() {
        let servers = [
            makeServer("x", dependsOn: ["y", "z"]), makeServer("y", dependsOn: ["z"]), makeServer("z"), makeServer("w"),
        ]
        let start = DependencyOrder.startOrder(servers)
        expectValidStartOrder(start, servers)
        #expect(DependencyOrder.stopOrder(servers) == Array(start.reversed()))
        // In stop order every server stops before what it depends on.
        let stop = DependencyOrder.stopOrder(servers)
        #expect(stop.firstIndex(of: "x")! < stop.firstIndex(of: "y")!)
        #expect(stop.firstIndex(of: "y")! < stop.firstIndex(of: "z")!)
    }

    @Test func emptyAndSingle() {
        #expect(DependencyOrder.startOrder([]) == [])
        #expect(DependencyOrder.stopOrder([]) == [])
        #expect(DependencyOrder.startOrder([makeServer("solo")]) == ["solo"])
        #expect(DependencyOrder.findCycle([]) == nil)
    }

    @Test func findCycleSelfLoop() {
        #expect(DependencyOrder.findCycle([makeServer("a", dependsOn: ["a"]), makeServer("b")]) == ["a", "a"])
    }

    @Test func findCycleTwo() {
        let servers = [makeServer("b", dependsOn: ["a"]), makeServer("a", dependsOn: ["b"])]
        #expect(DependencyOrder.findCycle(servers) == ["a", "b", "a"])
    }

    @Test func findCycleThree() {
        let servers = [
            makeServer("c", dependsOn: ["a"]), makeServer("a", dependsOn: ["b"]), makeServer("b", dependsOn: ["c"]),
        ]
        #expect(DependencyOrder.findCycle(servers) == ["a", "b", "c", "a"])
    }

    @Test func findCycleReturnsOnlyTheCycle() throws {
        // "root" leads into the cycle but is not part of it.
        let servers = [
            makeServer("a-root", dependsOn: ["m"]),
            makeServer("m", dependsOn: ["n"]),
            makeServer("n", dependsOn: ["o"]),
            makeServer("o", dependsOn: ["m"]),
        ]
        let cycle = try #require(DependencyOrder.findCycle(servers))
        #expect(cycle.first == cycle.last)
        #expect(Set(cycle) == ["m", "n", "o"])
        #expect(cycle.count == 4)
        // Each step is a real dependency edge.
        let byName = Dictionary(uniqueKeysWithValues: servers.map { ($0.name, $0) })
        for (x, y) in zip(cycle, cycle.dropFirst()) {
            #expect(byName[x]?.dependsOn.contains(y) == true, "\(x) -> \(y) is not an edge")
        }
    }

    @Test func findCycleNone() {
        let servers = [
            makeServer("web", dependsOn: ["cache", "db"]),
            makeServer("cache", dependsOn: ["config"]),
            makeServer("db", dependsOn: ["config"]),
            makeServer("config"),
            makeServer("lonely"),
        ]
        #expect(DependencyOrder.findCycle(servers) == nil)
    }

    @Test func findCycleIgnoresUnknownNames() {
        #expect(DependencyOrder.findCycle([makeServer("a", dependsOn: ["ghost"])]) == nil)
    }
}
