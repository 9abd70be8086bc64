import ArgumentParser
import Contracts
import EndpointOptions
import Logging
import MCPProtocol
import NIOCore
import NIOPosix
import NIOSSL
import PluginHost
import StructuredLog

#if canImport(Glibc)
    import Glibc
#endif

/// One MCP endpoint in front of every server the supervisor runs (docs/gateway.md).
struct GatewayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mcp-gateway",
        abstract:
            "Serve the tools, resources and prompts of every server behind one Streamable HTTP endpoint at /mcp.",
        discussion:
            "Under mcp-supervisor ([gateway] in the main file) it learns the servers from the supervisor; standalone, give them with --backend NAME=PORT. Names are NAME__ITEM (docs/gateway.md)."
    )

    @OptionGroup var endpoint: EndpointOptions

    @Option(help: "Standalone: a server behind the gateway, as NAME=PORT (repeatable).")
    var backend: [String] = []

    @Option(
        help:
            "A group's allowlist, as GROUP=NAME (repeatable; GROUP= alone: a group with no tools): /mcp/GROUP serves only these tools of its servers."
    )
    var allow: [String] = []

    @Option(
        help:
            "Keep a read-only tool's answers, as NAME=SECONDS (repeatable; NAME as served, server__tool): the same call within that time is answered from the cache."
    )
    var cacheTtl: [String] = []

    @Option(help: "Let browsers from this origin call the gateway (CORS; repeatable; off by default).")
    var corsOrigin: [String] = []

    @Flag(inversion: .prefixedNo, help: "Compress JSON answers for clients that accept gzip.")
    var gzip = true

    @Option(help: "Require Authorization: Bearer <the first line of this file> on every request.")
    var bearerTokenFile: String?

    @Option(
        help:
            "Serve TLS with this certificate chain (PEM; with --tls-key). Plain HTTP then stays open to loopback clients only."
    )
    var tlsCertificate: String?

    @Option(help: "The private key (PEM) of --tls-certificate.")
    var tlsKey: String?

    @Option(help: "Requests per second each client address may make (HTTP 429 beyond; off by default).")
    var rateLimit: Double?

    @Option(help: "A tool's calls per second across every client, as NAME=RATE (repeatable; -32010 beyond).")
    var toolRateLimit: [String] = []

    @Option(help: "With --rate-limit: the bucket's size (default: twice the rate).")
    var rateBurst: Int?

    @Option(
        help:
            "A composite tool, as NAME=JSON (repeatable; the [gateway.composites.NAME] table as JSON, docs/gateway.md)."
    )
    var composite: [String] = []

    @Option(help: "Seconds a backend has to answer each list request.")
    var listTimeout: Double = 10

    @Option(
        help:
            "How many times a call is sent at most: again only when it provably did not reach the server, or was lost with its connection and the tool is read-only or idempotent (1: never again)."
    )
    var retryAttempts: Int = 10

    @Option(help: "Cap on calls in flight.")
    var maxConcurrency: Int = 256

    func validate() throws {
        guard (rateLimit ?? 1) > 0, (rateBurst ?? 1) > 0, rateBurst == nil || rateLimit != nil, listTimeout > 0,
            maxConcurrency > 0, retryAttempts > 0
        else {
            throw ValidationError("sizes, timeouts and counts must be positive (--rate-burst goes with --rate-limit)")
        }
        guard (tlsCertificate == nil) == (tlsKey == nil) else {
            throw ValidationError("--tls-certificate and --tls-key go together")
        }
        _ = try backends()
        _ = try allowlists()
        _ = try cacheTTLs()
        _ = try compositeTools()
        _ = try toolRates()
    }

    /// `--tool-rate-limit NAME=RATE`.
    func toolRates() throws -> [String: Double] {
        var out: [String: Double] = [:]
        for text in toolRateLimit {
            guard let eq = text.firstIndex(of: "="), eq != text.startIndex,
                let rate = Double(text[text.index(after: eq)...]), rate > 0
            else { throw ValidationError("--tool-rate-limit must be NAME=RATE (calls per second > 0), not '\(text)'") }
            out[String(text[..<eq])] = rate
        }
        return out
    }

    /// `--composite NAME=JSON`, checked as config load checks them.
    func compositeTools() throws -> [CompositeTool] {
        try composite.map { text in
            guard let eq = text.firstIndex(of: "=") else {
                throw ValidationError("--composite must be NAME=JSON, not '\(text.prefix(60))'")
            }
            let name = String(text[..<eq])
            guard let json = try? JSONParser.parse(Array(text[text.index(after: eq)...].utf8)) else {
                throw ValidationError("--composite \(name): the definition is not JSON")
            }
            do throws(CompositeTool.Problem) { return try CompositeTool.parse(name: name, json) } catch {
                throw ValidationError(
                    "--composite \(name): \(error.key.isEmpty ? "" : error.key + ": ")\(error.message)")
            }
        }
    }

    /// `--cache-ttl NAME=SECONDS`.
    func cacheTTLs() throws -> [String: Duration] {
        var out: [String: Duration] = [:]
        for text in cacheTtl {
            guard let eq = text.firstIndex(of: "="), eq != text.startIndex,
                let seconds = Double(text[text.index(after: eq)...]), seconds > 0, seconds <= 86400
            else { throw ValidationError("--cache-ttl must be NAME=SECONDS (0 < SECONDS <= 86400), not '\(text)'") }
            out[String(text[..<eq])] = .nanoseconds(Int64(seconds * 1e9))
        }
        return out
    }

    /// `--allow GROUP=NAME`, by group.
    func allowlists() throws -> [String: [String]] {
        var out: [String: [String]] = [:]
        for text in allow {
            guard let eq = text.firstIndex(of: "="), eq != text.startIndex else {
                throw ValidationError("--allow must be GROUP=NAME, not '\(text)'")
            }
            let tool = String(text[text.index(after: eq)...])
            out[String(text[..<eq]), default: []] += tool.isEmpty ? [] : [tool]
        }
        return out
    }

    /// `--backend NAME=PORT`, checked.
    func backends() throws -> [(name: String, port: Int)] {
        try backend.map { text in
            guard let eq = text.firstIndex(of: "="), let port = Int(text[text.index(after: eq)...]),
                (1...65535).contains(port), eq != text.startIndex
            else { throw ValidationError("--backend must be NAME=PORT, not '\(text)'") }
            let name = String(text[..<eq])
            guard !name.contains("__") else {
                throw ValidationError(
                    "--backend \(text): a name may not contain '__' (it separates a server from its tools)")
            }
            return (name, port)
        }
    }

    var format: LogFormat { endpoint.format }

    func run() throws {
        // The supervisor's own soft descriptor limit was raised; this child keeps the one it was started with.
        DescriptorLimit.applyInherited()
        let log = HostLog(format: format, plugin: "gateway", source: LogSource.gateway)
        func fail(_ f: HostFailure) -> Int32 {
            log.stderr.error(
                "\(f.message)",
                metadata: [LogKey.event: .string(LogEventName.hostFailure), "status": LogValue.of(f.status)])
            return f.status
        }
        let target: ListenTarget
        do { target = try endpoint.listenTarget() } catch { throw ExitCode(fail(error)) }
        var hc = HostConfig()
        endpoint.apply(to: &hc)
        if let hex = getenv(ChildEnvironment.requestStateKey).map({ String(cString: $0) }) {
            hc.requestStateKey = RequestStateKey.parse(hex: hex)
        }
        hc.edge.corsOrigins = corsOrigin
        hc.edge.gzip = gzip
        if let rateLimit {
            hc.edge.ratePerSecond = rateLimit
            hc.edge.rateBurst = rateBurst ?? max(1, Int((rateLimit * 2).rounded(.up)))
        }
        if let bearerTokenFile {
            guard let f = fopen(bearerTokenFile, "r") else {
                throw ExitCode(
                    fail(
                        HostFailure(
                            .usage,
                            "cannot read --bearer-token-file \(bearerTokenFile): \(String(cString: strerror(errno)))")))
            }
            var bytes = [UInt8](repeating: 0, count: 4096)
            let n = fread(&bytes, 1, bytes.count, f)
            fclose(f)
            // The first line, without the spaces and tabs around it.
            let line = bytes[0..<n].prefix { $0 != 0x0A && $0 != 0x0D }
            let token = String(decoding: line, as: UTF8.self).filter { $0 != " " && $0 != "\t" }
            guard token.utf8.count >= 16 else {
                throw ExitCode(
                    fail(
                        HostFailure(
                            .usage, "--bearer-token-file \(bearerTokenFile): the token must be 16 characters or more")))
            }
            hc.edge.bearerToken = Array(token.utf8)
        }
        var tls: (@Sendable () throws -> ChannelHandler)?
        if let tlsCertificate, let tlsKey {
            do throws(HostFailure) {
                let context = try Self.tlsContext(certificate: tlsCertificate, key: tlsKey)
                tls = { NIOSSLServerHandler(context: context) }
            } catch { throw ExitCode(fail(error)) }
        }
        // One set of event loops for the clients' connections and the backends': a call and its request to the
        // server run on the same thread (HTTPProgramClient prefers the current loop).
        let clients = MultiThreadedEventLoopGroup(numberOfThreads: endpoint.threads)
        let gateway = GatewayServer(
            group: clients, maxConcurrency: maxConcurrency, listTimeout: .nanoseconds(Int64(listTimeout * 1e9)),
            callTimeout: .nanoseconds(Int64(endpoint.callTimeout * 1e9)), retryAttempts: retryAttempts,
            allow: try allowlists(),
            cacheTTL: try cacheTTLs(), composites: try compositeTools(), toolRates: try toolRates()
        ) { line in log.stderr.info("\(line)", metadata: [LogKey.event: .string(LogEventName.gatewayLog)]) }
        let fixed = try backends()
        if !fixed.isEmpty { gateway.serve(fixed: fixed) }
        let engine = MCPEngine(gateway: gateway, config: hc)
        HostRunner.serve(
            engine, name: "mcp-gateway", version: GatewayServer.version,
            from: fixed.isEmpty ? "the supervisor's servers" : "\(fixed.count) backend(s) given with --backend",
            target: target, threads: endpoint.threads, drainTimeout: endpoint.drainTimeout,
            signals: TerminationSignals(), log: log, group: clients, tls: tls, fail: fail)
    }

    /// The server side of TLS 1.2 and 1.3 (swift-nio-ssl, BoringSSL) for HTTP/1.1, from PEM files; a file that
    /// cannot be read, a key that does not match the certificate: an error naming the file (status 18, not
    /// restarted: the files need fixing).
    static func tlsContext(certificate: String, key: String) throws(HostFailure) -> NIOSSLContext {
        let chain: [NIOSSLCertificate]
        do { chain = try NIOSSLCertificate.fromPEMFile(certificate) } catch {
            throw HostFailure(
                .invalidConfig, "--tls-certificate \(certificate): not a readable PEM certificate (\(error))")
        }
        guard !chain.isEmpty else {
            throw HostFailure(.invalidConfig, "--tls-certificate \(certificate): no certificate in the file")
        }
        let privateKey: NIOSSLPrivateKey
        do { privateKey = try NIOSSLPrivateKey(file: key, format: .pem) } catch {
            throw HostFailure(.invalidConfig, "--tls-key \(key): not a readable PEM private key (\(error))")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(privateKey))
        configuration.minimumTLSVersion = .tlsv12
        configuration.applicationProtocols = ["http/1.1"]
        do { return try NIOSSLContext(configuration: configuration) } catch {
            throw HostFailure(
                .invalidConfig,
                "--tls-certificate \(certificate) with --tls-key \(key): unusable (\(error); does the key match the certificate?)"
            )
        }
    }
}

GatewayCommand.main()
