/// The child's box as configured (docs/security.md, "The box"): the `[sandbox]` settings of a server file, with
/// defaults from `[defaults]`. The supervisor turns it into a `BoxSpec` per replica (Sources/Supervisor/Box/).
/// Owned by the box work (issue 13); the loader reads it in ConfigLoader+Box.swift.
public struct BoxConfig: Sendable, Equatable {
    /// `sandbox = false`: the box switched off explicitly.
    public var enabled = true

    public init() {}
}
