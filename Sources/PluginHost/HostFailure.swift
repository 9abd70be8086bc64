/// A failure that ends the host: one line for stderr and the documented exit status (docs/plugin-host.md).
public struct HostFailure: Error, Sendable, CustomStringConvertible {
    public var status: Int32
    public var message: String

    public init(_ status: ExitStatus, _ message: String) {
        self.status = status.rawValue
        self.message = message
    }

    public var description: String { message }

    /// Documented exit statuses. 10–19: the plugin or its configuration is wrong; restarting will not help.
    public struct ExitStatus: Sendable, Equatable {
        public let rawValue: Int32
        public static let clean = ExitStatus(rawValue: 0)
        public static let cannotOpen = ExitStatus(rawValue: 10)
        public static let notLoadable = ExitStatus(rawValue: 11)
        public static let loaderRefused = ExitStatus(rawValue: 12)
        public static let noEntrySymbol = ExitStatus(rawValue: 13)
        public static let abiMajor = ExitStatus(rawValue: 14)
        public static let abiMinor = ExitStatus(rawValue: 15)
        public static let createFailed = ExitStatus(rawValue: 16)
        public static let invalidDeclarations = ExitStatus(rawValue: 17)
        public static let invalidConfig = ExitStatus(rawValue: 18)
        public static let listenFailed = ExitStatus(rawValue: 20)
        public static let usage = ExitStatus(rawValue: 64)
        public static let crashed = ExitStatus(rawValue: 70)
        public static let hung = ExitStatus(rawValue: 71)
    }
}
