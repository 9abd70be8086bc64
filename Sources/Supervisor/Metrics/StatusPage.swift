/// The status page for a person (`/` on `metrics_listen`): one HTML5 document with its CSS, its sparklines (inline
/// SVG) and a small script inline, no external asset, readable with JavaScript off.
///
/// - `<main id="status">` holds everything that changes: the header (version, time, counts) and one
///   `<section class="group" data-group="G">` per group (named groups by name, then the servers without one), each
///   a table with one `<tr id="server-NAME" class="server" data-state="S" data-health="H">` per server.
/// - State and health are shown as a word in a coloured badge (`<span class="badge state" data-v="running">`), so
///   they read without colour; health also gets a symbol.
/// - Each server has three `<svg class="spark" data-metric="rate|errors|p95">` sparklines of its history (the last
///   sample at the right edge, one step per sample interval; a p95 gap where an interval had no request), with the
///   current value as text beside it.
/// - With JavaScript on, the script fetches the page again every 5 s and swaps `<main>` (no full reload); it marks
///   `<html data-js="on" data-refreshes="N">`. With it off, `<noscript>` holds a `<meta http-equiv="refresh">`
///   (5 s) and a note saying so.
///
/// Every dynamic string goes through `escape(_:)`.
enum StatusPage {
    /// Seconds between refreshes (the script's and the no-script meta refresh).
    static let refreshSeconds = 5

    /// The sparkline's size in CSS pixels: `capacity` points 2 px apart with 2 px of padding on each side.
    static let sparkPadding = 2.0
    static let sparkStep = 2.0
    static let sparkHeight = 28.0
    static var sparkWidth: Double { 2 * sparkPadding + Double(PageHistory.capacity - 1) * sparkStep }

    static func render(_ model: StatusPageModel) -> String {
        var html = ""
        html.reserveCapacity(4096 + model.servers.count * 3072)
        let counts = Counts(model.servers)
        html += """
            <!doctype html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>mcp-supervisor: \(counts.servers) servers, \(counts.healthy) healthy</title>
            <noscript><meta http-equiv="refresh" content="\(refreshSeconds)"></noscript>
            <style>\(css)</style>
            </head>
            <body>

            """
        html += "<main id=\"status\" data-generated=\"\(number(model.generatedAt, digits: 3))\">\n"
        html += "<header>\n<h1>mcp-supervisor <span class=\"version\">\(escape(model.version))</span></h1>\n"
        html += "<p class=\"time\">Status at <time datetime=\"\(isoTime(model.generatedAt))\">"
        html += "\(isoTime(model.generatedAt, readable: true))</time></p>\n"
        html += "<ul class=\"counts\">"
        for (id, label, value) in [
            ("servers", "servers", counts.servers), ("healthy", "healthy", counts.healthy),
            ("degraded", "degraded", counts.degraded), ("down", "down", counts.down),
        ] {
            html += "<li id=\"count-\(id)\" data-count=\"\(value)\"><b>\(value)</b> \(label)</li>"
        }
        html += "</ul>\n"
        let window = Double(PageHistory.capacity) * model.sampleInterval
        html += "<p class=\"legend\">Sparklines: the last \(duration(window)), one point every "
        html += "\(duration(model.sampleInterval)).</p>\n</header>\n"
        if model.servers.isEmpty {
            html += "<p class=\"empty\">No server is configured.</p>\n"
        }
        for (group, servers) in groups(model.servers) {
            html += "<section class=\"group\" data-group=\"\(escape(group))\">\n"
            html += group.isEmpty ? "<h2>No group</h2>\n" : "<h2>Group <q>\(escape(group))</q></h2>\n"
            html += """
                <table>
                <colgroup><col class="c-name"><col class="c-state"><col class="c-health"><col class="c-score">\
                <col class="c-port"><col class="c-replicas"><col class="c-restarts"><col class="c-exit">\
                <col class="c-metric"><col class="c-metric"><col class="c-metric"></colgroup>
                <thead><tr><th>Server</th><th>State</th><th>Health</th><th>Score</th><th>Port</th><th>Replicas</th>\
                <th>Restarts</th><th>Last exit</th><th>Requests</th><th>Errors</th><th>p95</th></tr></thead>
                <tbody>

                """
            for server in servers { row(server, into: &html) }
            html += "</tbody>\n</table>\n</section>\n"
        }
        html += "</main>\n"
        html += """
            <footer>
            <noscript><p class="note" id="noscript-note">JavaScript is off: this page reloads itself every \
            \(refreshSeconds) s (or use your browser's reload).</p></noscript>
            <p class="note" id="refresh-note">This page shows the state when it was served; reload it to refresh.</p>
            <p class="note">Machine-readable: <a href="status.json">status.json</a>, <a href="metrics">metrics</a>.</p>
            </footer>
            <script>\(script)</script>
            </body>
            </html>

            """
        return html
    }

    private static func row(_ server: StatusPageModel.Server, into html: inout String) {
        let name = escape(server.name)
        html +=
            "<tr id=\"server-\(name)\" class=\"server\" data-server=\"\(name)\" data-group=\"\(escape(server.group))\""
        html += " data-state=\"\(escape(server.state))\" data-health=\"\(escape(server.health))\">"
        html += "<th scope=\"row\" class=\"name\">\(name)"
        if let failure = server.failure { html += "<div class=\"failure\">\(escape(failure))</div>" }
        html += "</th>"
        html += "<td><span class=\"badge state\" data-v=\"\(escape(server.state))\">\(escape(server.state))</span></td>"
        html += "<td><span class=\"badge health\" data-v=\"\(escape(server.health))\">"
        html += "<span aria-hidden=\"true\">\(healthSymbol(server.health))</span> \(escape(server.health))</span></td>"
        html += "<td class=\"score num\">\(fixed(server.score, digits: 2))</td>"
        html += "<td class=\"port num\">\(server.port.map(String.init) ?? "—")</td>"
        html += "<td class=\"replicas\">"
        if server.replicas.isEmpty {
            html += "—"
        } else {
            html += "<ul>"
            for replica in server.replicas {
                html +=
                    "<li id=\"replica-\(name)-\(replica.index)\" class=\"replica\""
                    + " data-state=\"\(escape(replica.state))\">"
                html += "#\(replica.index) <span class=\"rstate\" data-v=\"\(escape(replica.state))\">"
                html += "\(escape(replica.state))</span>"
                if let health = replica.health { html += " <span class=\"rhealth\">\(escape(health))</span>" }
                html += replica.pid.map { " <span class=\"pid\">pid \($0)</span>" } ?? ""
                html += replica.uptime.map { " <span class=\"uptime\">up \(duration($0))</span>" } ?? ""
                html += "</li>"
            }
            html += "</ul>"
        }
        html += "</td>"
        html += "<td class=\"restarts num\">\(server.restarts)</td>"
        html += "<td class=\"last-exit\">\(server.lastExit.map(escape) ?? "—")</td>"
        let last = server.history.last
        spark(
            server.history.map { $0.requestRate }, metric: "rate", label: "request rate",
            current: last.map { rate($0.requestRate) } ?? "—", into: &html)
        spark(
            server.history.map { $0.errorRatio }, metric: "errors", label: "error ratio",
            current: last.map { percent($0.errorRatio) } ?? "—", into: &html)
        spark(
            server.history.map { $0.p95 }, metric: "p95", label: "p95 latency",
            current: last.map { $0.p95.map(seconds) ?? "no requests" } ?? "—", into: &html)
        html += "</tr>\n"
    }

    /// One table cell: the sparkline and the current value.
    private static func spark(
        _ values: [Double?], metric: String, label: String, current: String, into html: inout String
    ) {
        let w = number(sparkWidth, digits: 1)
        let h = number(sparkHeight, digits: 1)
        let peak = values.compactMap { $0 }.filter { $0.isFinite }.max() ?? 0
        html += "<td class=\"metric \(metric)\"><svg class=\"spark\" data-metric=\"\(metric)\""
        html +=
            " data-samples=\"\(values.count)\" data-max=\"\(number(peak, digits: 6))\" width=\"\(w)\" height=\"\(h)\""
        html +=
            " viewBox=\"0 0 \(w) \(h)\" preserveAspectRatio=\"none\" role=\"img\""
            + " aria-label=\"\(label), peak \(number(peak, digits: 6))\">"
        html += "<title>\(label)</title><line class=\"base\" x1=\"0\" y1=\"\(h)\" x2=\"\(w)\" y2=\"\(h)\"/>"
        for segment in sparkSegments(values) {
            let points = segment.map { "\(number($0.x, digits: 1)),\(number($0.y, digits: 1))" }.joined(separator: " ")
            html +=
                segment.count == 1
                ? "<circle cx=\"\(number(segment[0].x, digits: 1))\" cy=\"\(number(segment[0].y, digits: 1))\""
                    + " r=\"1.5\"/>"
                : "<polyline points=\"\(points)\"/>"
        }
        html += "</svg> <span class=\"value\">\(escape(current))</span></td>"
    }

    /// The sparkline's points, split where a value is missing: the last value at the right edge, `sparkStep` apart,
    /// y from the bottom (0) to the top (the series' peak).
    static func sparkSegments(_ values: [Double?]) -> [[(x: Double, y: Double)]] {
        let peak = values.compactMap { $0 }.filter { $0.isFinite }.max() ?? 0
        let right = sparkWidth - sparkPadding
        let bottom = sparkHeight - sparkPadding
        let span = sparkHeight - 2 * sparkPadding
        var segments: [[(x: Double, y: Double)]] = []
        var current: [(x: Double, y: Double)] = []
        for (i, value) in values.enumerated() {
            guard let value, value.isFinite else {
                if !current.isEmpty { segments.append(current) }
                current = []
                continue
            }
            let x = right - Double(values.count - 1 - i) * sparkStep
            let y = peak > 0 ? bottom - max(0, value) / peak * span : bottom
            current.append((x, y))
        }
        if !current.isEmpty { segments.append(current) }
        return segments
    }

    struct Counts: Equatable {
        var servers = 0
        var healthy = 0
        var degraded = 0
        /// Neither healthy, degraded nor still initializing: unhealthy, offline (stopped, down, failed, waiting).
        var down = 0

        init(_ servers: [StatusPageModel.Server]) {
            self.servers = servers.count
            for server in servers {
                switch server.health {
                case "healthy": healthy += 1
                case "degraded": degraded += 1
                case "initializing": break
                default: down += 1
                }
            }
        }
    }

    /// Named groups sorted, then the servers without a group; servers by name inside each.
    static func groups(_ servers: [StatusPageModel.Server]) -> [(String, [StatusPageModel.Server])] {
        var byGroup: [String: [StatusPageModel.Server]] = [:]
        for server in servers { byGroup[server.group, default: []].append(server) }
        let names = byGroup.keys.sorted { a, b in a.isEmpty != b.isEmpty ? !a.isEmpty : a < b }
        return names.map { ($0, byGroup[$0]!.sorted { $0.name < $1.name }) }
    }

    /// Text safe in element content and in a quoted attribute value.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for c in text.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    static func healthSymbol(_ health: String) -> String {
        switch health {
        case "healthy": "●"
        case "degraded": "▲"
        case "unhealthy": "✖"
        case "initializing": "◌"
        default: "○"
        }
    }

    // MARK: numbers and times, without Foundation

    /// `value` with at most `digits` decimals, trailing zeros dropped ("1.5", "2", "-0.25"); "—" when not finite.
    static func number(_ value: Double, digits: Int) -> String {
        guard value.isFinite else { return "—" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        guard scaled < 9e15 else { return String(value) }
        let units = Int64(scaled)
        let whole = units / Int64(scale)
        var fraction = String(units % Int64(scale))
        fraction = String(repeating: "0", count: max(0, digits - fraction.count)) + fraction
        while fraction.last == "0" { fraction.removeLast() }
        let sign = value < 0 && units != 0 ? "-" : ""
        return fraction.isEmpty ? "\(sign)\(whole)" : "\(sign)\(whole).\(fraction)"
    }

    /// Fixed decimals ("0.50"), for values shown side by side.
    static func fixed(_ value: Double, digits: Int) -> String {
        guard value.isFinite else { return "—" }
        var text = number(value, digits: digits)
        guard digits > 0 else { return text }
        if !text.contains(".") { text += "." }
        let have = text.count - 1 - text.distance(from: text.startIndex, to: text.firstIndex(of: ".")!)
        return text + String(repeating: "0", count: max(0, digits - have))
    }

    static func rate(_ perSecond: Double) -> String {
        perSecond < 10 ? "\(fixed(perSecond, digits: 2))/s" : "\(fixed(perSecond, digits: perSecond < 100 ? 1 : 0))/s"
    }

    static func percent(_ ratio: Double) -> String { "\(fixed(ratio * 100, digits: ratio < 0.1 ? 2 : 1)) %" }

    /// A latency: "0.80 ms", "45.0 ms", "1.25 s".
    static func seconds(_ value: Double) -> String {
        if value < 0.01 { return "\(fixed(value * 1000, digits: 2)) ms" }
        if value < 1 { return "\(fixed(value * 1000, digits: 1)) ms" }
        return "\(fixed(value, digits: 2)) s"
    }

    /// A duration for a person: "12 s", "4 min 10 s", "2 h 5 min", "3 d 4 h".
    static func duration(_ value: Double) -> String {
        guard value.isFinite, value >= 0 else { return "—" }
        let s = Int(value.rounded(.down))
        if s < 60 { return value < 10 && value != value.rounded() ? "\(number(value, digits: 1)) s" : "\(s) s" }
        if s < 3600 { return s % 60 == 0 ? "\(s / 60) min" : "\(s / 60) min \(s % 60) s" }
        if s < 86400 { return "\(s / 3600) h \(s % 3600 / 60) min" }
        return "\(s / 86400) d \(s % 86400 / 3600) h"
    }

    /// "2026-12-02T07:40:36Z", or "2026-12-02 07:40:36 UTC" for a person.
    static func isoTime(_ epoch: Double, readable: Bool = false) -> String {
        guard epoch.isFinite else { return "—" }
        let total = Int64(epoch.rounded(.down))
        var days = total / 86400
        var rest = total % 86400
        if rest < 0 {
            rest += 86400
            days -= 1
        }
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let date = "\(year)-\(two(month))-\(two(day))"
        let time = "\(two(rest / 3600)):\(two(rest % 3600 / 60)):\(two(rest % 60))"
        return readable ? "\(date) \(time) UTC" : "\(date)T\(time)Z"
    }

    // MARK: the page's CSS and script

    static let css = """
        :root{color-scheme:light;--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e;--info:#0969da;--off:#57606a}
        body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;padding:16px 24px;\
        color:#1f2328;background:#fff}
        h1{font-size:20px;margin:0 0 4px}h1 .version{font-weight:normal;color:var(--off);font-size:14px}
        h2{font-size:16px;margin:20px 0 6px}.time,.legend,.note{color:var(--off);margin:2px 0}
        .counts{list-style:none;display:flex;gap:16px;padding:0;margin:8px 0}
        .counts li{padding:4px 10px;border:1px solid #d0d7de;border-radius:6px}
        #count-healthy b{color:var(--ok)}#count-degraded b{color:var(--warn)}#count-down b{color:var(--bad)}
        table{border-collapse:collapse;width:100%;table-layout:fixed}
        .c-name{width:15%}.c-state{width:7%}.c-health{width:9.5%}.c-score{width:4.5%}.c-port{width:5%}\
        .c-replicas{width:17%}.c-restarts{width:5.5%}.c-exit{width:8%}.c-metric{width:9.5%}
        th,td{text-align:left;padding:6px 5px;border-bottom:1px solid #d0d7de;vertical-align:top;\
        overflow-wrap:anywhere}
        thead th{font-size:12px;color:var(--off);font-weight:600}
        tr.server>th{border-left:5px solid var(--off)}
        tr.server[data-health=healthy]>th{border-left-color:var(--ok)}
        tr.server[data-health=degraded]>th{border-left-color:var(--warn)}
        tr.server[data-health=unhealthy]>th,tr.server[data-state=down]>th,tr.server[data-state=failed]>th{\
        border-left-color:var(--bad)}
        tr.server[data-health=initializing]>th{border-left-color:var(--info)}
        .badge{display:inline-block;white-space:nowrap;padding:1px 8px;border-radius:10px;color:#fff;\
        background:var(--off);\
        font-weight:600;font-size:12px}
        .badge[data-v=running],.badge[data-v=healthy]{background:var(--ok)}
        .badge[data-v=degraded]{background:var(--warn)}
        .badge[data-v=down],.badge[data-v=failed],.badge[data-v=unhealthy]{background:var(--bad)}
        .badge[data-v=starting],.badge[data-v=waiting],.badge[data-v=initializing]{background:var(--info)}
        .failure{font-weight:normal;color:var(--bad);font-size:12px}
        .num{font-variant-numeric:tabular-nums}
        .replicas ul{list-style:none;margin:0;padding:0}.replicas li{font-size:12px}
        .rstate[data-v=ready],.rstate[data-v=running]{color:var(--ok)}\
        .pid,.uptime,.rhealth{color:var(--off);white-space:nowrap}
        .metric .value{display:block;font-variant-numeric:tabular-nums;font-size:12px}
        svg.spark{display:block;width:100%;max-width:\(number(sparkWidth, digits: 1))px;color:var(--info)}
        svg.spark polyline{fill:none;stroke:currentColor;stroke-width:1.5;stroke-linejoin:round;\
        vector-effect:non-scaling-stroke}
        svg.spark circle{fill:currentColor}svg.spark .base{stroke:#d0d7de;stroke-width:1}
        td.errors svg.spark{color:var(--bad)}td.p95 svg.spark{color:var(--warn)}
        """

    /// Refreshes `<main>` every `refreshSeconds` without a full reload; says when a refresh failed.
    static let script = """
        (function(){var h=document.documentElement,n=0,note=document.getElementById('refresh-note');\
        h.setAttribute('data-js','on');note.textContent='Refreshes every \(refreshSeconds) s.';\
        function tick(){fetch(location.href,{cache:'no-store',headers:{Accept:'text/html'}})\
        .then(function(r){if(!r.ok)throw new Error('HTTP '+r.status);return r.text();})\
        .then(function(t){var m=new DOMParser().parseFromString(t,'text/html').querySelector('main'),\
        o=document.querySelector('main');if(!m||!o)throw new Error('no main element');o.replaceWith(m);\
        h.setAttribute('data-refreshes',String(++n));note.textContent='Refreshes every \(refreshSeconds) s; last at '+\
        new Date().toLocaleTimeString()+'.';})\
        .catch(function(e){note.textContent='Refresh failed ('+e.message+'); trying again in \(refreshSeconds) s.';})\
        .then(function(){setTimeout(tick,\(refreshSeconds * 1000));});}\
        setTimeout(tick,\(refreshSeconds * 1000));})();
        """
}
