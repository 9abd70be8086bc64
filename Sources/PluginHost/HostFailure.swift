import Contracts

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
