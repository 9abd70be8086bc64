/// The answer on the port of a server that is down for a while (fatal, stopped by an admin, exited for good):
/// HTTP 503, `Retry-After` while a retry is due, and a JSON-RPC error body (id null) with this code and data.
/// docs/reliability.md, "Answers while a server is down"; docs/errors.md.
public enum UnavailableAnswer {
    /// Outside JSON-RPC's reserved range, as the 2026-07-28 revision asks of codes it does not define.
    public static let code: Int64 = -31000
    public static let httpStatus = 503

    /// The keys of the error's `data`.
    public enum Key {
        public static let server = "server"
        /// `fatal`, `stopped` or `exited`.
        public static let state = "state"
        public static let reason = "reason"
        /// Whole seconds until the supervisor tries the server again (as `Retry-After`); absent when it will not
        /// by itself.
        public static let retryAfter = "retryAfterSeconds"
    }
}
