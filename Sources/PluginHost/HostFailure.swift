import Contracts
import MCPProtocol

/// A failure that ends the host: one line for stderr and the documented exit status (docs/plugin-host.md).
public struct HostFailure: Error, Sendable, CustomStringConvertible {
    public var status: Int32
    public var message: String

    public init(_ status: ExitStatus, _ message: String) {
        self.status = status.rawValue
        self.message = message
    }

    public var description: String { message }

    /// The documented exit statuses: Contracts' table, which the supervisor reads too.
    public typealias ExitStatus = HostExitStatus
}

/// Re-exported JSON parsing for the command-line front end.
public enum JSONParserFacade {
    public static func parse(_ text: String) throws -> JSONValue { try JSONParser.parse(text) }
}

public enum JSONWriterFacade {
    public static func string(_ v: JSONValue) -> String { JSONWriter.string(v) }
}
