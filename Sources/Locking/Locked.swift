// The one lock our executables use for state shared between threads.
//
// In every ordinary build it *is* Synchronization's `Mutex`. A ThreadSanitizer build (scripts/sanitize.sh thread
// compiles with `-D THREAD_SANITIZER`) swaps in a lock on NIOLock (a pthread mutex) with the same `withLock` API:
// on Linux, Mutex's contended path runs in the uninstrumented libswiftSynchronization (a spin on the futex word,
// then FUTEX_LOCK_PI in the kernel), so ThreadSanitizer sees no happens-before edge between two holders and
// reports every access inside `withLock` as a race. It intercepts pthread mutexes, so with this lock a report means
// a real race on the data, not on the lock (docs/reliability.md, "ThreadSanitizer").

#if THREAD_SANITIZER
    import NIOConcurrencyHelpers

    /// A value that only one thread at a time reads or changes: `Mutex`'s API on a pthread mutex.
    public final class Locked<Value>: @unchecked Sendable {
        private let lock = NIOLock()
        private var value: Value

        public init(_ initialValue: consuming sending Value) { value = initialValue }

        public func withLock<Result, E: Error>(
            _ body: (inout sending Value) throws(E) -> sending Result
        ) throws(E) -> sending Result {
            lock.lock()
            defer { lock.unlock() }
            return try body(&value)
        }
    }
#else
    import Synchronization

    /// A value that only one thread at a time reads or changes.
    public typealias Locked<Value: ~Copyable> = Mutex<Value>
#endif
