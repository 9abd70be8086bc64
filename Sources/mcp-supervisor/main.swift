import ArgumentParser
import Contracts
import Dispatch
import Supervisor
import SupervisorCore

#if canImport(Glibc)
    import Glibc
#endif

/// Keeps every configured MCP server running on a stable port.
struct SupervisorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mcp-supervisor",
        abstract: "Run MCP servers (plugins) on stable ports, restarting what crashes or hangs.",
        discussion:
            "Signals: SIGTERM/SIGINT stop every server in reverse dependency order; SIGHUP reloads the configuration.\n\n"
            + "Metrics: with metrics_listen = \"127.0.0.1:9464\" in the main file, the supervisor serves Prometheus "
            + "metrics for itself and every server at /metrics, /status.json, /healthz, /readyz and a status page at / "
            + "(docs/metrics.md; a dashboard and alert rules in /usr/share/mcp-supervisor/monitoring/).")

    @Option(name: .shortAndLong, help: "The main configuration file.")
    var config: String = "/etc/mcp-supervisor/supervisor.toml"

    @Option(help: "The mcp-plugin-host executable (default: the configuration's `host`, else next to mcp-supervisor).")
    var host: String?

    @Flag(help: "Check the configuration and exit: 0 when valid, 78 with the errors when not.")
    var checkConfig = false

    @Option(help: "Log lines as text (readable) or json (one object per line, docs/supervisor.md \"Logs\").")
    var logFormat: String = LogFormat.text.rawValue

    func validate() throws {
        guard LogFormat(rawValue: logFormat) != nil else {
            throw ValidationError("--log-format must be text or json, not '\(logFormat)'")
        }
    }

    func run() throws {
        // Under systemd with stderr connected to the journal: lines with fields (docs/systemd.md, "Journal").
        let log =
            JournalStream.isStderr()
            ? SupervisorLog.journal() : SupervisorLog(format: LogFormat(rawValue: logFormat) ?? .text)
        let files = LocalFiles()
        let cfg: SupervisorConfig
        do { cfg = try ConfigLoader(source: files).load(mainFile: config) } catch {
            log.event(.error, LogEventName.configError, message: "configuration error: \(error)")
            throw ExitCode(78)  // EX_CONFIG
        }
        if checkConfig {
            log.event(
                .info, LogEventName.configOK,
                message:
                    "configuration OK: \(cfg.servers.count) server(s): \(cfg.servers.map(\.name).joined(separator: ", "))"
            )
            // The supervisor raises its soft limit to the hard one at start: the hard one is what it gets.
            if let limit = DescriptorLimit.current().hard,
                let warning = Supervisor.descriptorWarning(
                    needed: DescriptorLimit.needed(replicas: cfg.servers.map(\.replicas)), limit: limit,
                    servers: cfg.servers.count)
            {
                log.event(.warning, LogEventName.descriptors, message: "warning: " + warning)
            }
            return
        }
        let exe = host ?? cfg.hostExecutable ?? Self.siblingHost()
        guard access(exe, X_OK) == 0 else {
            log.event(
                .error, LogEventName.configError,
                message:
                    "cannot run the host \(exe): \(String(cString: strerror(errno))); set `host` in \(config) or pass --host"
            )
            throw ExitCode(78)
        }
        let supervisor = Supervisor(config: cfg, hostExecutable: exe, files: files, log: log)
        let done = DispatchSemaphore(value: 0)
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGTERM, SIGINT, SIGHUP] {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: supervisor.queue)
            s.setEventHandler {
                if sig == SIGHUP {
                    supervisor.reload()
                } else {
                    supervisor.shutdown { done.signal() }
                }
            }
            s.resume()
            sources.append(s)
        }
        signal(SIGPIPE, SIG_IGN)
        let control = ControlServer(supervisor: supervisor)
        supervisor.queue.async {
            guard supervisor.start() else {
                Glibc.exit(74)  // EX_IOERR: the port registry is there and cannot be read; the reason is logged
            }
            control.open()
            supervisor.controlOpened(path: control.isListening ? control.path : nil)
            supervisor.openMetricsListener()
        }
        done.wait()
        supervisor.stopWatchdog()
        supervisor.queue.sync {
            control.close()
            supervisor.closeMetricsListener()
        }
        supervisor.shutdownMetricsLoop()
        for s in sources { s.cancel() }
    }

    /// `mcp-plugin-host` in the folder of this executable.
    static func siblingHost() -> String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { return "mcp-plugin-host" }
        let me = buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return Path.join(Path.directory(of: me), "mcp-plugin-host")
    }
}

SupervisorCommand.main()
