import Contracts
import MCPProtocol
import SupervisorCore
import Testing

@testable import Supervisor

struct UnavailableResponseTests {
    private func split(_ bytes: [UInt8]) -> (head: [String], body: JSONValue?) {
        var end = 0
        while end + 3 < bytes.count, bytes[end..<end + 4] != [13, 10, 13, 10] { end += 1 }
        let head = String(decoding: bytes[..<end], as: UTF8.self).split(separator: "\r\n").map(String.init)
        return (head, try? JSONParser.parse(bytes[(end + 4)...]))
    }

    @Test func aFatalServersAnswerCarriesRetryAfterAndTheStateInTheBody() throws {
        let notice = Unavailability(state: .fatal, retryAt: 110.2, reason: "restarted too often (exited with status 3)")
        let (head, body) = split(UnavailableResponder.response(server: "git", notice, now: 100))
        #expect(head.first == "HTTP/1.1 503 Service Unavailable")
        // Whole seconds, rounded up: a client that waits that long finds the retry begun.
        #expect(head.contains("Retry-After: 11"))
        #expect(head.contains("Connection: close"))
        let error = try #require(body?["error"])
        #expect(body?["id"] == .null)
        #expect(error["code"] == .int(UnavailableAnswer.code))
        #expect(error["data"]?["state"] == .string("fatal"))
        #expect(error["data"]?["server"] == .string("git"))
        #expect(error["data"]?["retryAfterSeconds"] == .int(11))
        #expect(
            error["message"]
                == .string(
                    "server 'git' is unavailable (fatal): restarted too often (exited with status 3); "
                        + "the supervisor tries it again in 11 s"))
    }

    @Test func aStoppedServersAnswerHasNoRetryAfterAndAnOverdueRetrySaysOneSecond() {
        let stopped = Unavailability(state: .stopped, retryAt: nil, reason: "stopped by an admin")
        let (head, body) = split(UnavailableResponder.response(server: "s", stopped, now: 5))
        #expect(!head.contains { $0.hasPrefix("Retry-After") })
        #expect(body?["error"]?["data"]?["retryAfterSeconds"] == nil)
        let overdue = Unavailability(state: .fatal, retryAt: 4, reason: "x")
        #expect(split(UnavailableResponder.response(server: "s", overdue, now: 5)).head.contains("Retry-After: 1"))
    }

    @Test func theEndOfTheHeadIsFoundAcrossReads() {
        let head = Array("POST /mcp HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        #expect(UnavailableResponder.endOfHead(head, from: 0))
        #expect(!UnavailableResponder.endOfHead(Array(head.dropLast()), from: 0))
        // Searching from three bytes before the last read's end finds a terminator split between reads.
        #expect(UnavailableResponder.endOfHead(head, from: head.count - 4))
    }
}
