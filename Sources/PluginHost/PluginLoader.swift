import CHostSupport
import PluginABI

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A plugin whose entry point answered: its static table and the minor it was built against.
public struct LoadedPlugin: @unchecked Sendable {
    // @unchecked: `table` points at the plugin's static table, which the plugin never changes and the host
    // never writes; `contents` is the host's own copy. Both hold pointers to code and text that live as long as
    // the process, used only under the ABI's thread rules.
    public let path: String
    public let table: UnsafePointer<mcpp_plugin>
    /// The table as read up to its `struct_size` (StructReader): fields a plugin of an older minor lacks are nil.
    public let contents: mcpp_plugin
    public let abiMinor: UInt32
}

/// Loads a plugin file the way the ABI rules say: open once, check the ELF header, dlopen that very file
/// through /proc/self/fd with RTLD_NOW | RTLD_LOCAL, never dlclose, negotiate through `mcpp_negotiate_v1`.
/// With a `VerifiedPlugin` (trust other than `any`, docs/security.md) the file is not opened again: the loader
/// maps the sealed memfd that holds exactly the verified bytes.
public enum PluginLoader {
    public static let hostABIMinor = UInt32(MCPP_ABI_MINOR)

    public static func load(path: String, verified: VerifiedPlugin? = nil) throws(HostFailure) -> LoadedPlugin {
        let fd: Int32
        if let verified {
            fd = verified.fd
        } else {
            fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                let why = String(cString: strerror(errno))
                throw HostFailure(.cannotOpen, "cannot open the plugin file: \(why)")
            }
            // The descriptor stays open for the life of the process: the loaded image is this very file.
            var fileStatus = stat()
            if fstat(fd, &fileStatus) == 0, (fileStatus.st_mode & S_IFMT) != S_IFREG {
                throw HostFailure(.cannotOpen, "not a regular file")
            }
        }
        var reason = [CChar](repeating: 0, count: 512)
        let check = mcph_elf_check(fd, &reason, reason.count)
        guard check == MCPH_ELF_OK else {
            let text = reason.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw HostFailure(check == MCPH_ELF_READ_ERROR ? .cannotOpen : .notLoadable, text)
        }
        let procPath = "/proc/self/fd/\(fd)"
        guard let handle = dlopen(procPath, RTLD_NOW | RTLD_LOCAL) else {
            var why = dlerror().map { String(cString: $0) } ?? "unknown dynamic loader error"
            // The loader names the /proc path; name the plugin instead.
            why = why.replacingAll(procPath + ": ", with: "")
            throw HostFailure(.loaderRefused, "the dynamic loader refused the plugin: \(why)")
        }
        guard let sym = dlsym(handle, "mcpp_negotiate_v1") else {
            for major in 2...9 where dlsym(handle, "mcpp_negotiate_v\(major)") != nil {
                throw HostFailure(
                    .abiMajor,
                    "the plugin is built for plugin ABI major \(major) (exports mcpp_negotiate_v\(major)); "
                        + "this host implements major \(MCPP_ABI_MAJOR) only")
            }
            throw HostFailure(
                .noEntrySymbol,
                "no entry symbol mcpp_negotiate_v1: not an MCP plugin, or the symbol is not exported "
                    + "(build with -fvisibility=default or MCPP_EXPORT)")
        }
        typealias Negotiate = @convention(c) (UnsafeMutablePointer<mcpp_negotiation>?) -> mcpp_status
        let negotiate = unsafeBitCast(sym, to: Negotiate.self)
        var negotiation = mcpp_negotiation()
        negotiation.struct_size = UInt32(MemoryLayout<mcpp_negotiation>.size)
        negotiation.host_abi_major = UInt32(MCPP_ABI_MAJOR)
        negotiation.host_abi_minor = hostABIMinor
        let status = withActivity("mcpp_negotiate_v1") { negotiate(&negotiation) }
        if status == MCPP_E_VERSION || (status == MCPP_OK && negotiation.plugin_abi_minor > hostABIMinor) {
            throw HostFailure(
                .abiMinor,
                "the plugin needs plugin ABI 1.\(negotiation.plugin_abi_minor); this host implements 1.\(hostABIMinor): "
                    + "upgrade mcp-plugin-host")
        }
        guard status == MCPP_OK else {
            throw HostFailure(.noEntrySymbol, "mcpp_negotiate_v1 failed with status \(status)")
        }
        guard let table = negotiation.plugin else {
            throw HostFailure(.noEntrySymbol, "mcpp_negotiate_v1 returned no plugin table")
        }
        let contents: mcpp_plugin
        do {
            contents = try StructReader.read(at: table, kind: "the plugin table", nameField: \.name)
        } catch {
            throw HostFailure(.noEntrySymbol, error.description)
        }
        guard contents.create != nil, contents.describe != nil else {
            throw HostFailure(.noEntrySymbol, "the plugin table has no create or describe function")
        }
        return LoadedPlugin(path: path, table: table, contents: contents, abiMinor: negotiation.plugin_abi_minor)
    }
}

/// Runs `body` with the thread's crash activity set, so a crash inside names what the plugin was doing.
@inline(__always)
func withActivity<T>(_ activity: String, _ body: () throws -> T) rethrows -> T {
    var name = activity
    name.withUTF8 { mcph_set_activity(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), $0.count) }
    defer { mcph_set_activity(nil, 0) }
    return try body()
}

extension String {
    func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var result = ""
        var rest = self[...]
        while let match = rest.range(of: target) {
            result += rest[rest.startIndex..<match.lowerBound]
            result += replacement
            rest = rest[match.upperBound...]
        }
        return result + rest
    }
}

extension Substring {
    func range(of target: String) -> Range<Index>? {
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix(target) { return i..<index(i, offsetBy: target.count) }
            i = index(after: i)
        }
        return nil
    }
}
