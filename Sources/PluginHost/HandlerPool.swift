import Dispatch
import Locking

#if canImport(Glibc)
    import Glibc
#endif

/// The threads plugin handlers run on. Handlers may block, so they never run on an event loop.
///
/// Threads start lazily, up to `maxThreads`, only when no thread is idle. Idle threads wait on their own
/// semaphore in a LIFO stack, so the most recently used (cache-hot) thread takes the next job and, under a
/// load of fast handlers, only as many threads run as there are cores to run them; the rest stay asleep until
/// handlers block. A thread that finishes a job takes the next queued one without sleeping.
final class HandlerPool: Sendable {
    typealias Job = @Sendable () -> Void

    private final class Worker: Sendable {
        let wake = DispatchSemaphore(value: 0)
    }

    private struct State {
        var queue: [Job] = []
        var head = 0
        var idle: [Worker] = []
        var threads = 0
    }

    private let state = Locked(State())
    let maxThreads: Int

    init(maxThreads: Int) {
        self.maxThreads = max(1, maxThreads)
    }

    func submit(_ job: @escaping Job) {
        enum Next {
            case wake(Worker)
            case spawn
            case none
        }
        let next: Next = state.withLock { s in
            s.queue.append(job)
            if let w = s.idle.popLast() { return .wake(w) }
            if s.threads < maxThreads {
                s.threads += 1
                return .spawn
            }
            return .none
        }
        switch next {
        case .wake(let w): w.wake.signal()
        case .spawn: spawn()
        case .none: break
        }
    }

    private func take(_ s: inout State) -> Job? {
        guard s.head < s.queue.count else { return nil }
        let job = s.queue[s.head]
        s.head += 1
        if s.head > 64, s.head * 2 > s.queue.count {
            s.queue.removeFirst(s.head)
            s.head = 0
        }
        return job
    }

    private func workerLoop() {
        let me = Worker()
        while true {
            let job: Job? = state.withLock { s in
                if let j = take(&s) { return j }
                s.idle.append(me)
                return nil
            }
            if let job {
                job()
            } else {
                me.wake.wait()
            }
        }
    }

    private func spawn() {
        final class Box: Sendable {
            let pool: HandlerPool
            init(_ p: HandlerPool) { pool = p }
        }
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        var tid = pthread_t()
        let arg = Unmanaged.passRetained(Box(self)).toOpaque()
        let rc = pthread_create(
            &tid, &attr,
            { raw in
                let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
                box.pool.workerLoop()
                return nil
            }, arg)
        pthread_attr_destroy(&attr)
        if rc != 0 {
            Unmanaged<Box>.fromOpaque(arg).release()
            state.withLock { $0.threads -= 1 }
        }
    }
}
