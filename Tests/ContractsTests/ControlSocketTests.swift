import Contracts
import MCPProtocol
import Testing

struct ControlErrorCodeTests {
    @Test func codesAreTheDocumentedOnesAndDistinct() {
        let codes = [
            ControlErrorCode.permissionDenied, ControlErrorCode.unknownServer, ControlErrorCode.reloadRejected,
            ControlErrorCode.shuttingDown, ControlErrorCode.tooManyClients, ControlErrorCode.lineTooLong,
        ]
        #expect(codes == [-32001, -32002, -32003, -32004, -32005, -32006])
        // None collides with JSON-RPC's own.
        let standard = [
            JSONRPC.parseError, JSONRPC.invalidRequest, JSONRPC.methodNotFound, JSONRPC.invalidParams,
            JSONRPC.internalError,
        ]
        #expect(Set(codes).isDisjoint(with: standard))
    }
}

struct ControlMethodTests {
    @Test func onlyStartStopRestartReloadChangeThings() {
        #expect(Set(ControlMethod.allCases.filter(\.isChanging)) == [.start, .stop, .restart, .reload])
        #expect(ControlMethod(rawValue: "health") == .health)
        #expect(ControlMethod(rawValue: "shutdown") == nil)
    }
}

struct ControlParamsTests {
    @Test func statusRoundTrips() throws {
        for p in [StatusParams(), StatusParams(server: "echo")] {
            #expect(try StatusParams.decode(p.encode()) == p)
        }
        #expect(throws: ControlParamsError("params.server must be a string")) {
            try StatusParams.decode(["server": 3])
        }
    }

    @Test func healthRoundTripsAndNamesTheLevels() throws {
        for p in [HealthParams(server: "a"), HealthParams(server: "a", level: .diagnostic)] {
            #expect(try HealthParams.decode(p.encode()) == p)
        }
        #expect(throws: ControlParamsError("params.level must be basic, detailed or diagnostic")) {
            try HealthParams.decode(["server": "a", "level": "deep"])
        }
        #expect(throws: ControlParamsError("params.server (a string) is required")) { try HealthParams.decode([:]) }
    }

    @Test func logsRoundTripsAndChecksTypes() throws {
        for p in [LogsParams(server: "a"), LogsParams(server: "a", lines: 5, follow: true)] {
            #expect(try LogsParams.decode(p.encode()) == p)
        }
        #expect(try LogsParams.decode(["server": "a"]).lines == LogsParams.defaultLines)
        #expect(throws: ControlParamsError("params.lines must be a non-negative integer")) {
            try LogsParams.decode(["server": "a", "lines": -1])
        }
        #expect(throws: ControlParamsError("params.follow must be a boolean")) {
            try LogsParams.decode(["server": "a", "follow": "yes"])
        }
    }

    @Test func serverActionsTakeOneOrMany() throws {
        for p in [ServerActionParams(servers: ["a"]), ServerActionParams(servers: ["a", "b"])] {
            #expect(try ServerActionParams.decode(p.encode()) == p)
        }
        #expect(throws: ControlParamsError("params.servers must be a non-empty array of strings")) {
            try ServerActionParams.decode(["servers": ["a", 1]])
        }
        #expect(throws: ControlParamsError("params.server (a string) or params.servers (an array) is required")) {
            try ServerActionParams.decode([:])
        }
    }
}

struct ControlResultTests {
    @Test func resultsRoundTrip() throws {
        func wire(_ v: JSONValue) throws -> JSONValue { try JSONParser.parse(JSONWriter.serialize(v)) }
        let version = VersionResult()
        #expect(VersionResult.decode(try wire(version.encode())) == version)
        #expect(version.encode() == ["version": .string(ControlProtocol.serverVersion), "protocol": 2])
        let logs = LogLines(server: "a", lines: ["x", "y"])
        #expect(LogLines.decode(try wire(logs.encode())) == logs)
        let action = ServerActionResult(outcomes: ["a": "started", "b": "already running"])
        #expect(ServerActionResult.decode(try wire(action.encode())) == action)
        let reload = ReloadResult(added: ["n"], removed: [], changed: ["c"], unchanged: ["u", "v"])
        #expect(ReloadResult.decode(try wire(reload.encode())) == reload)
        for entry in [PortEntry(port: 39000, kind: .dynamic), PortEntry(port: nil, kind: .static)] {
            #expect(PortEntry.decode(try wire(entry.encode())) == entry)
        }
    }

    @Test func aFollowedLineIsServerAndLine() {
        let params = JSONValue.object(LogLines.notificationParams(server: "a", line: "hello"))
        #expect(params == ["server": "a", "line": "hello"])
        #expect(LogLines.line(ofNotification: params) == "hello")
    }
}

struct UnixSocketAddressTests {
    @Test func aPathThatFitsIsCopiedWithItsNUL() {
        let path = "/run/mcp-supervisor/control.sock"
        let addr = UnixSocketAddress.make(path)
        #expect(addr != nil)
        let copied = addr.map { a in
            withUnsafeBytes(of: a.sun_path) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        #expect(copied == path)
    }

    @Test func aPathTooLongIsRefusedNotTruncated() {
        #expect(UnixSocketAddress.make(String(repeating: "a", count: UnixSocketAddress.maxPathBytes)) != nil)
        #expect(UnixSocketAddress.make(String(repeating: "a", count: UnixSocketAddress.maxPathBytes + 1)) == nil)
    }
}
