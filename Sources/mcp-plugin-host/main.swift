import ArgumentParser
import CHostSupport
import Contracts
import EndpointOptions
import Locking
import Logging
import MCPProtocol
import NIOCore
import NIOPosix
import PluginHost
import StructuredLog

#if canImport(Glibc)
    import Glibc
#endif

/// Loads one MCP plugin (.so) and serves it over Streamable HTTP at /mcp.
struct PluginHostCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mcp-plugin-host",
        abstract:
            "Serve one MCP plugin (.so built against mcp_plugin.h), or an existing stdio MCP program given after --, over Streamable HTTP at /mcp.",
        discussion:
            "Exit statuses are listed in docs/plugin-host.md; 10-19 and 30-59 mean the plugin or its configuration is wrong (the supervisor does not restart on them); 30-39: the plugin is not trusted (--trust, --sha256)."
    )

    @Option(help: "Path of the plugin shared object (or give a program after --).")
    var plugin: String?

    /// A command server (docs/servers.md): the stdio MCP program and its arguments, after `--`.
    @Argument(
        parsing: .postTerminator,
        help:
            "An MCP program and its arguments, instead of --plugin (after --: mcp-plugin-host -- uvx mcp-server-time).")
    var command: [String] = []

    @Option(help: "With a program: its working directory.")
    var workingDirectory: String?

    @Option(
        help:
            "With a program: how the host talks to it, stdio (its stdin and stdout) or http (Streamable HTTP on a private loopback port given by {port} in its arguments)."
    )
    var transport: String = "stdio"

    @Option(help: "With --transport http: the program's MCP endpoint path.")
    var path: String = "/mcp"

    @Option(help: "With a program: seconds it has to answer initialize and its lists.")
    var initTimeout: Double = 30

    @Option(help: "With a program: seconds a ping (the detailed health probe) may take.")
    var pingTimeout: Double = 5

    @OptionGroup var endpoint: EndpointOptions

    @Option(help: "Plugin configuration as JSON text, passed to the plugin's create().")
    var config: String?

    @Option(help: "Read the plugin configuration (JSON) from this file.")
    var configFile: String?

    @Option(help: "Seconds a call may overrun its deadline before its slot counts as hung.")
    var hangGrace: Double = 5

    @Option(help: "Cap on the number of handlers run at once (the plugin's declaration is the other cap).")
    var maxConcurrency: Int = 64

    @Option(
        help:
            "Seconds a 2026-07-28 client has to answer an input request (elicitation, sampling, roots) before its retry is refused."
    )
    var requestStateTtl: Double = 600

    @Option(
        help:
            "Bytes of SSE events kept per legacy session for Last-Event-ID resumption (0: streams are not resumable)."
    )
    var replayBufferBytes: Int = 128 << 10

    @Flag(
        help:
            "Count no traffic: the control channel's metrics op then answers only the handler slots and the calls in flight (to measure what counting costs)."
    )
    var noMetrics = false

    @Flag(
        help:
            "Check whether the plugin will load, without serving: ELF, entry symbol, libraries, ABI, declarations. Exit 0 if it loads, 1 if not."
    )
    var check = false

    @Flag(help: "With --check: print the verdict as JSON.")
    var json = false

    @Flag(help: .hidden)
    var checkLoad = false

    @Option(
        help:
            "Which plugin files load: any (no check, the default) or signed (a valid Ed25519 signature <plugin>.sig by a key in --trusted-keys-dir)."
    )
    var trust: String = "any"

    @Option(help: "With --trust signed: the folder of trusted Ed25519 public keys (*.pem).")
    var trustedKeysDir: String?

    @Option(help: "Load only a file with this SHA-256 (64 hex digits); with --trust signed, both must pass.")
    var sha256: String?

    /// bench/trust/run.sh: verify (copy into a sealed memfd, hash, check) this many times, print the times as
    /// JSON and exit, loading nothing.
    @Option(help: .hidden)
    var benchVerify: Int?

    /// --trust, --trusted-keys-dir and --sha256 (docs/security.md, "Plugin trust").
    var trustRequirement: TrustRequirement {
        TrustRequirement(signed: trust == "signed", keysDirectory: trustedKeysDir, sha256: sha256)
    }

    private static func environmentHoldsPort() -> Bool {
        var e = environ
        while let p = e.pointee {
            if String(cString: p).contains(ProgramSpec.portPlaceholder) { return true }
            e += 1
        }
        return false
    }

    func validate() throws {
        guard (plugin == nil) != command.isEmpty else {
            throw ValidationError(
                plugin == nil
                    ? "give --plugin PATH, or a program after --" : "give --plugin or a program after --, not both")
        }
        if !command.isEmpty {
            guard config == nil, configFile == nil, !check, trust == "any", sha256 == nil else {
                throw ValidationError(
                    "--config, --config-file, --check, --trust and --sha256 are for plugins, not for a program")
            }
            guard initTimeout > 0, pingTimeout > 0 else { throw ValidationError("timeouts must be positive") }
            guard transport == "stdio" || transport == "http" else {
                throw ValidationError("--transport is stdio or http, not '\(transport)'")
            }
            if transport == "http" {
                guard path.hasPrefix("/"), !path.contains(" ") else {
                    throw ValidationError("--path must start with '/' (it is '\(path)')")
                }
                guard
                    command.contains(where: { $0.contains(ProgramSpec.portPlaceholder) }) || Self.environmentHoldsPort()
                else {
                    throw ValidationError(
                        "--transport http: the program's arguments (or a variable) must hold \(ProgramSpec.portPlaceholder), the port it is to listen on"
                    )
                }
            }
        } else if workingDirectory != nil || transport != "stdio" {
            throw ValidationError("--working-directory and --transport are for a program given after --")
        }
        guard config == nil || configFile == nil else {
            throw ValidationError("give --config or --config-file, not both")
        }
        guard requestStateTtl > 0, hangGrace >= 0,
            replayBufferBytes >= 0,
            maxConcurrency > 0
        else {
            throw ValidationError("sizes, timeouts and counts must be positive")
        }
        guard trust == "any" || trust == "signed" else {
            throw ValidationError("--trust must be any or signed, not '\(trust)'")
        }
        if trust == "signed", trustedKeysDir == nil {
            throw ValidationError("--trust signed needs --trusted-keys-dir DIR (the trusted public keys)")
        }
        if trust != "signed", trustedKeysDir != nil {
            throw ValidationError("--trusted-keys-dir is used only with --trust signed")
        }
        if let sha256, !TrustRequirement.isDigest(sha256) {
            throw ValidationError("--sha256 must be 64 hexadecimal digits, not '\(sha256)'")
        }
    }

    var format: LogFormat { endpoint.format }

    func run() throws {
        // The supervisor's own soft descriptor limit was raised; this child keeps the one it was started with.
        DescriptorLimit.applyInherited()
        let path = plugin ?? ProgramSpec(argv: command).shown
        // The requestState key every replica shares; read, then removed so the plugin's getenv does not see it.
        var requestStateKey: [UInt8]? = nil
        if let hex = getenv(ChildEnvironment.requestStateKey).map({ String(cString: $0) }) {
            unsetenv(ChildEnvironment.requestStateKey)
            guard let key = RequestStateKey.parse(hex: hex) else {
                throw ValidationError("\(ChildEnvironment.requestStateKey) must be 64 hex digits")
            }
            requestStateKey = key
        }
        let log = HostLog(format: format, plugin: path)
        func fail(_ f: HostFailure) -> ExitCode {
            log.stderr.error(
                "\(path): \(f.message)",
                metadata: [LogKey.event: .string(LogEventName.hostFailure), "status": LogValue.of(f.status)])
            return ExitCode(f.status)
        }
        let configText: String
        do { configText = try loadConfig() } catch { throw fail(error) }
        if let runs = benchVerify {
            var times: [Double] = []
            var size = 0
            for _ in 0..<max(1, runs) {
                var t0 = timespec()
                var t1 = timespec()
                clock_gettime(CLOCK_MONOTONIC, &t0)
                let verified: VerifiedPlugin?
                do { verified = try PluginTrust.verify(path: path, requirement: trustRequirement) } catch {
                    throw fail(error)
                }
                clock_gettime(CLOCK_MONOTONIC, &t1)
                size = verified?.size ?? 0
                verified?.close()
                times.append(Double(t1.tv_sec - t0.tv_sec) * 1e3 + Double(t1.tv_nsec - t0.tv_nsec) / 1e6)
            }
            times.sort()
            let result: JSONValue = [
                "bytes": .int(Int64(size)), "runs": .int(Int64(times.count)),
                "p50_ms": .double(times[times.count / 2]), "min_ms": .double(times[0]),
            ]
            writeStdout(JSONWriter.string(result) + "\n")
            throw ExitCode(0)
        }
        if check {
            let report = PluginCheck.run(path: path, config: configText, trust: trustRequirement)
            writeStdout(json ? JSONWriter.string(report.json) + "\n" : report.text)
            throw ExitCode(report.loads ? 0 : 1)
        }
        if checkLoad {
            mcph_install_crash_handler(path)
            do {
                let verified = try PluginTrust.verify(path: path, requirement: trustRequirement)
                let loaded = try PluginLoader.load(path: path, verified: verified)
                let instance = try PluginInstance(loaded: loaded, config: configText, maxConcurrency: maxConcurrency) {
                    _ in
                }
                writeStdout(JSONWriter.string(instance.summary) + "\n")
                throw ExitCode(0)
            } catch let f as HostFailure { throw fail(f) }
        }
        let target: ListenTarget
        do { target = try listenTarget() } catch { throw fail(error) }

        let signals = TerminationSignals()
        mcph_install_crash_handler(path)
        if !command.isEmpty {
            throw serveProgram(target: target, signals: signals, log: log, requestStateKey: requestStateKey)
        }
        // Trust (docs/security.md): the plugin's bytes are copied into a sealed memfd and verified there, before
        // the box goes on (the keys folder is outside it); the loader then maps exactly those bytes.
        let verified: VerifiedPlugin?
        do { verified = try PluginTrust.verify(path: path, requirement: trustRequirement) } catch { throw fail(error) }
        if let verified {
            log.stderr.info(
                "\(path): verified: \(verified.summary)",
                metadata: [
                    LogKey.event: .string(LogEventName.pluginVerified), "sha256": .string(verified.sha256),
                    "key": verified.signedBy.map { .string($0.fingerprint) } ?? .string(""),
                ])
        }
        // The box (docs/security.md) goes on before a byte of the plugin runs.
        let box: Box.Report?
        do { box = try Box.applyFromEnvironment(jsonLines: format == .json) } catch { throw fail(error) }
        if let box {
            var fields: Logger.Metadata = [LogKey.event: .string(LogEventName.boxApplied)]
            for (k, v) in box.fields { fields[k] = .string(v) }
            log.stderr.info("\(box.summary)", metadata: fields)
        }
        let instance: PluginInstance
        do {
            let loaded = try PluginLoader.load(path: path, verified: verified)
            instance = try PluginInstance(loaded: loaded, config: configText, maxConcurrency: maxConcurrency) { line in
                log.stderr.info("\(line)", metadata: [LogKey.event: .string(LogEventName.pluginLog)])
            }
        } catch { throw fail(error) }

        let hc = hostConfig(requestStateKey: requestStateKey)
        instance.onHung.withLock {
            $0 = { message in
                log.stderr.critical(
                    "\(path): \(message)",
                    metadata: [
                        LogKey.event: .string(LogEventName.hostFailure),
                        "status": LogValue.of(HostExitStatus.hung.rawValue),
                    ])
                Glibc.exit(HostExitStatus.hung.rawValue)
            }
        }
        let engine = MCPEngine(plugin: instance, config: hc)
        serve(
            engine, name: instance.serverName, version: instance.serverVersion, from: path, target: target,
            signals: signals, log: log, fail: fail)
    }

    /// Serves `engine` until a termination signal or the supervisor's stop, then drains and exits.
    private func serve(
        _ engine: MCPEngine, name: String, version: String, from path: String, target: ListenTarget,
        signals: TerminationSignals, log: HostLog, fail: (HostFailure) -> ExitCode
    ) -> Never {
        HostRunner.serve(
            engine, name: name, version: version, from: path, target: target, threads: endpoint.threads,
            drainTimeout: endpoint.drainTimeout, signals: signals, log: log
        ) { f in fail(f).rawValue }
    }

    /// A command server (docs/servers.md): the box goes on, the program starts under it and answers
    /// initialize, then the host serves it like a plugin. When the program ends on its own, so does the host
    /// (status 21; the supervisor's restart policy decides), after logging how it ended.
    private func serveProgram(
        target: ListenTarget, signals: TerminationSignals, log: HostLog, requestStateKey: [UInt8]?
    )
        -> ExitCode
    {
        let spec = ProgramSpec(
            argv: command, workingDirectory: workingDirectory,
            transport: transport == "http" ? .http(path: path) : .stdio)
        func fail(_ f: HostFailure) -> ExitCode {
            log.stderr.error(
                "\(f.message)",
                metadata: [LogKey.event: .string(LogEventName.hostFailure), "status": LogValue.of(f.status)])
            return ExitCode(f.status)
        }
        let box: Box.Report?
        do { box = try Box.applyFromEnvironment(jsonLines: format == .json) } catch { return fail(error) }
        if let box {
            var fields: Logger.Metadata = [LogKey.event: .string(LogEventName.boxApplied)]
            for (k, v) in box.fields { fields[k] = .string(v) }
            log.stderr.info("\(box.summary)", metadata: fields)
        }
        let pipes = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let serverBox = Locked<BridgedServer?>(nil)
        let bridged: BridgedServer
        do {
            bridged = try BridgedServer(
                spec: spec, group: pipes, initTimeout: .nanoseconds(Int64(initTimeout * 1e9)),
                pingTimeout: .nanoseconds(Int64(pingTimeout * 1e9)),
                parkTimeout: .nanoseconds(Int64(requestStateTtl * 1e9)), maxConcurrency: maxConcurrency,
                stderr: { line in
                    log.stderr.info("\(line)", metadata: [LogKey.event: .string(LogEventName.programStderr)])
                },
                log: { line in log.stderr.info("\(line)", metadata: [LogKey.event: .string(LogEventName.pluginLog)]) },
                onExit: { exit in
                    // The drain ends the program itself (destroy); any other end is the program's own.
                    // Before the bridge is up, its start reports the exit itself (with the status for the cause).
                    guard let server = serverBox.withLock({ $0 }), !server.isClosing else { return }
                    let status = HostExitStatus.programExited.rawValue
                    var fields: Logger.Metadata = [
                        LogKey.event: .string(LogEventName.programExit), "status": LogValue.of(status),
                    ]
                    if let code = exit.status { fields["exit_status"] = LogValue.of(code) }
                    if let signal = exit.signal { fields["signal"] = LogValue.of(signal) }
                    log.stderr.error("\(spec.shown): the program \(exit)", metadata: fields)
                    Glibc.exit(status)
                })
        } catch { return fail(error) }
        serverBox.withLock { $0 = bridged }
        var startFields: Logger.Metadata = [
            LogKey.event: .string(LogEventName.programStart), "program_pid": LogValue.of(bridged.pid),
            "protocol": .string(bridged.programProtocol),
        ]
        var endpoint = ""
        if case .http(let path) = spec.transport {
            endpoint = ", at http://127.0.0.1:\(bridged.programPort)\(path)"
            startFields["program_port"] = LogValue.of(bridged.programPort)
        }
        log.stderr.info(
            "\(spec.shown): pid \(bridged.pid), MCP \(bridged.programProtocol)\(endpoint)", metadata: startFields)
        let engine = MCPEngine(program: bridged, config: hostConfig(requestStateKey: requestStateKey))
        serve(
            engine, name: bridged.serverName, version: bridged.serverVersion, from: spec.shown, target: target,
            signals: signals, log: log, fail: fail)
    }

    private func hostConfig(requestStateKey: [UInt8]?) -> HostConfig {
        var hc = HostConfig()
        endpoint.apply(to: &hc)
        hc.hangGrace = .nanoseconds(Int64(hangGrace * 1e9))
        hc.metrics = !noMetrics
        hc.requestStateKey = requestStateKey
        hc.requestStateTTL = .nanoseconds(Int64(requestStateTtl * 1e9))
        hc.replayBufferBytes = replayBufferBytes
        return hc
    }

    private func listenTarget() throws(HostFailure) -> ListenTarget { try endpoint.listenTarget() }

    private func loadConfig() throws(HostFailure) -> String {
        var text = config ?? "{}"
        if let configFile {
            guard let f = fopen(configFile, "r") else {
                throw HostFailure(
                    .invalidConfig, "cannot read --config-file \(configFile): \(String(cString: strerror(errno)))")
            }
            defer { fclose(f) }
            var bytes: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = fread(&buf, 1, buf.count, f)
                if n <= 0 { break }
                bytes += buf[0..<n]
            }
            text = String(decoding: bytes, as: UTF8.self)
        }
        do { _ = try JSONParser.parse(text) } catch {
            throw HostFailure(.invalidConfig, "the plugin configuration is not valid JSON: \(error)")
        }
        return text
    }
}

func writeStdout(_ s: String) { writeFD(1, s) }

/// Writes the whole string with write(2): unbuffered, so a line is out before the process can die.
func writeFD(_ fd: Int32, _ s: String) {
    var s = s
    s.withUTF8 { buf in
        var off = 0
        while off < buf.count {
            let n = write(fd, buf.baseAddress! + off, buf.count - off)
            if n <= 0 { break }
            off += n
        }
    }
}

PluginHostCommand.main()
