import Contracts
import Testing

struct HostExitStatusTests {
    @Test func rangesDoNotOverlapAndAreInOrder() {
        let ranges = HostExitStatus.ranges
        for (a, b) in zip(ranges, ranges.dropFirst()) {
            #expect(a.statuses.upperBound < b.statuses.lowerBound, "\(a.name) and \(b.name)")
        }
        #expect(Set(ranges.map(\.name)).count == ranges.count)
    }

    @Test func everyLoadErrorIsPermanent() {
        let load: [HostExitStatus] = [
            .cannotOpen, .notLoadable, .loaderRefused, .noEntrySymbol, .abiMajor, .abiMinor, .createFailed,
            .invalidDeclarations, .invalidConfig,
        ]
        #expect(load.map(\.rawValue) == Array(10...18))
        for status in load { #expect(status.isPermanent, "status \(status)") }
        #expect(HostExitStatus.range(of: 18)?.name == "load")
    }

    @Test func runtimeFailuresAreRestarted() {
        for status: HostExitStatus in [.clean, .checkFailed, .listenFailed, .usage, .crashed, .hung] {
            #expect(!status.isPermanent, "status \(status)")
        }
        #expect(HostExitStatus.range(of: 20)?.name == "environment")
    }

    @Test func reservedRangesArePermanentAlready() {
        for name in ["trust", "sandbox", "command"] {
            let range = HostExitStatus.ranges.first { $0.name == name }
            #expect(range?.permanent == true, "\(name)")
            #expect(range.map { $0.statuses.count >= 10 } == true, "\(name) has room")
        }
        #expect(HostExitStatus.isPermanent(30) && HostExitStatus.isPermanent(59))
        #expect(!HostExitStatus.isPermanent(60) && !HostExitStatus.isPermanent(9))
    }
}

struct HealthLevelTests {
    @Test func levelsAreOrderedAndNamed() {
        #expect(HealthLevel.basic < .detailed && HealthLevel.detailed < .diagnostic)
        #expect(HealthLevel.choices == "basic, detailed or diagnostic")
        #expect(
            HealthState.allCases.map(\.rawValue) == ["initializing", "healthy", "degraded", "unhealthy", "offline"])
    }
}

struct ServerStateTests {
    @Test func statesAreTheDocumentedNames() {
        #expect(
            ServerStatus.allCases.map(\.rawValue) == [
                "running", "starting", "stopping", "stopped", "waiting", "failed", "down",
            ])
        #expect(StatusKey.portKind == "port_kind" && ProbeKey.serverDiscover == "server_discover")
    }
}
