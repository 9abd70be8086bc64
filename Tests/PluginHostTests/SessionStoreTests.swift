import MCPProtocol
import Testing

@testable import PluginHost

/// Sealed legacy session ids (docs/protocol.md, "Legacy sessions across replicas"): two stores with one key stand
/// for two replicas of a server.
struct SessionStoreTests {
    private func store(key: UInt8 = 7, server: String = "ref") -> SessionStore {
        SessionStore(
            maxSessions: 16, idleTimeout: .seconds(3600), replayLimits: .init(maxBytes: 1024, maxStreams: 2),
            key: [UInt8](repeating: key, count: 32), server: server)
    }

    @Test func anotherReplicaAdoptsTheSessionWithItsVersionAndCapabilities() throws {
        let (a, b) = (store(), store())
        let caps: JSONValue = ["elicitation": [:]]
        let id = a.create(version: "2025-06-18", capabilities: caps)
        #expect(id.hasPrefix("s1.") && id.utf8.allSatisfy { (0x21...0x7E).contains($0) })
        let adopted = try #require(b.touch(id))
        #expect(adopted.version == "2025-06-18" && adopted.clientCapabilities == caps && adopted.initialized)
        // The replica that made it has it as it was (not yet initialized: the client has not said so).
        #expect(a.touch(id)?.initialized == false)
    }

    @Test func anIdFromAnotherKeyOrServerOrEditedIsUnknown() {
        let id = store().create(version: "2025-11-25")
        #expect(store(key: 8).touch(id) == nil)
        #expect(store(server: "other").touch(id) == nil)
        var edited = Array(id.utf8)
        edited[edited.count - 3] = edited[edited.count - 3] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        #expect(store().touch(String(decoding: edited, as: UTF8.self)) == nil)
        #expect(store().touch("0123456789abcdef") == nil)
    }

    @Test func aDeletedSessionIsNotAdoptedAgainWhereItWasDeleted() {
        let (a, b) = (store(), store())
        let id = a.create(version: "2025-11-25")
        #expect(b.remove(id) != nil)  // DELETE on the other replica ends it there
        #expect(b.touch(id) == nil && b.remove(id) == nil)
        #expect(a.touch(id) != nil)  // the replica that made it has not heard of it yet: the supervisor relays it
    }

    @Test func aRelayedEndRemovesTheCopyAndKeepsTheIdFromBeingAdopted() throws {
        let (a, b, c) = (store(), store(), store())
        let id = a.create(version: "2025-11-25")
        #expect(b.touch(id) != nil)  // b adopted it
        #expect(b.endedElsewhere(id) != nil)  // the relayed DELETE removes b's copy...
        #expect(b.touch(id) == nil)  // ...and b does not adopt it again
        #expect(c.endedElsewhere(id) == nil && c.touch(id) == nil)  // c never had it, and never will
        #expect(a.endedElsewhere(id) != nil && a.touch(id) == nil)  // nor the replica that made it
        // An id this server's key did not make leaves no trace.
        let foreign = store(key: 9).create(version: "2025-11-25")
        #expect(a.endedElsewhere(foreign) == nil && store(key: 9).touch(foreign) != nil)
    }
}
