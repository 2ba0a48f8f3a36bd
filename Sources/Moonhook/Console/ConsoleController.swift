import Foundation
import HTTPTypes
import Hummingbird
import Logging
import MoonhookStore
import Mustache
import WebhookVerification

/// `/console`: the operators' web pages, server-rendered, on when `admin_token` is set. Sign-in
/// with the admin token gives a signed session cookie (`ConsoleSession`); every page asks for it,
/// and every form that changes something carries the session's CSRF token. The pages are sent
/// with a Content-Security-Policy that allows only the console's own script and stylesheet.
struct ConsoleController: Sendable {
    let session: ConsoleSession?
    let library: MustacheLibrary
    let sources: SourceDirectory
    let inbox: any Store
    let dispatcher: HandlerDispatcher
    let refusals: RefusalLog
    let refusalsKept: Int
    /// Where the handlers are: a failed attempt's error is shown with the line it points at.
    let handlersFolder: URL
    /// Names this instance in the footer: the Live page shows this instance only.
    let instance: String
    let logger: Logger

    /// The most deliveries a bulk action counts, and replays one by one (dead pairs are replayed
    /// in one statement, without that limit).
    static let bulkLimit = 10_000
    /// The most deliveries one page lists.
    static let pageLimit = 500

    func addRoutes(to router: Router<MoonhookRequestContext>) {
        router.get("/console/assets/console.css") { _, _ in asset(ConsoleAssets.css, type: "text/css; charset=utf-8") }
        router.get("/console/assets/console.js") { _, _ in asset(ConsoleAssets.js, type: "text/javascript; charset=utf-8") }
        router.get("/console/login") { request, _ in
            let session = try enabled()
            if session.session(of: request) != nil { return redirect("/console") }
            return page("login", ["title": "Sign in", "ttl": DurationText.format(session.ttl)], csrf: nil)
        }
        router.post("/console/login") { request, context in
            let session = try enabled()
            let form = try await FormValues.posted(request)
            guard let token = form["token"], session.admits(token) else {
                logger.warning("console sign-in refused: wrong admin token", metadata: ["remote.address": "\(context.peer ?? "-")"])
                return page(
                    "login", ["title": "Sign in", "ttl": DurationText.format(session.ttl), "error": "That is not the admin token."], csrf: nil,
                    status: .unauthorized)
            }
            var response = redirect("/console")
            response.setCookie(session.cookie(session.issue(), for: request))
            return response
        }
        router.post("/console/logout") { request, _ in
            let (session, _) = try await changing(request)
            var response = redirect("/console/login")
            response.setCookie(session.endingCookie(for: request))
            return response
        }
        router.get("/console") { request, _ in
            let csrf = try reading(request)
            return page("overview", try await overview(), csrf: csrf)
        }
        router.get("/console/deliveries") { request, _ in
            let csrf = try reading(request)
            return page("deliveries", try await deliveries(FormValues(query: request)), csrf: csrf)
        }
        router.get("/console/deliveries/confirm") { request, _ in
            let csrf = try reading(request)
            return page("confirm", try await confirmation(FormValues(query: request)), csrf: csrf)
        }
        router.post("/console/deliveries/replay") { request, _ in
            let (_, form) = try await changing(request)
            let filter = try Self.filter(form)
            let count = try await AdminCall.store { try await replay(filter) }
            dispatcher.wake()
            return redirect("/console/deliveries?" + Self.query(form, done: "replayed \(count)"))
        }
        router.post("/console/deliveries/purge") { request, _ in
            let (_, form) = try await changing(request)
            guard Self.filterFields.contains(where: { form.value($0) != nil }) else {
                throw HTTPFailure(.badRequest, "a purge needs a filter: set at least one of \(Self.filterFields.joined(separator: ", "))")
            }
            let filter = try Self.filter(form)
            let count = try await AdminCall.store { try await inbox.purge(filter, onlyFinished: false) }
            logger.notice("deliveries purged from the console", metadata: ["count": "\(count)"])
            return redirect("/console/deliveries?" + Self.query(form, done: "purged \(count)"))
        }
        router.get("/console/deliveries/:seq") { request, context in
            let csrf = try reading(request)
            let seq = try AdminCall.seq(context)
            guard let detail = try await AdminCall.store({ try await inbox.show(seq) }) else {
                return page("problem", ["title": "Not found", "heading": "Not found", "message": "There is no delivery \(seq)."], csrf: csrf, status: .notFound)
            }
            var view = ConsoleViews.delivery(detail, handlersFolder: handlersFolder)
            if FormValues(query: request).get("done") == "replayed" { view["notice"] = "Replayed: its handlers run again on their current version." }
            return page("delivery", view, csrf: csrf)
        }
        router.post("/console/deliveries/:seq/replay") { request, context in
            _ = try await changing(request)
            let seq = try AdminCall.seq(context)
            let count = try await AdminCall.store { try await inbox.replay(.delivery(seq)) }
            guard count > 0 else { throw HTTPFailure(.notFound, "no delivery \(seq)") }
            dispatcher.wake()
            return redirect("/console/deliveries/\(seq)?done=replayed")
        }
        router.get("/console/sources") { request, _ in
            let csrf = try reading(request)
            return page("sources", ["title": "Sources", "nav_sources": true, "sources": SourceReport.all(sources).map(ConsoleViews.source)], csrf: csrf)
        }
        router.get("/console/refusals") { request, _ in
            let csrf = try reading(request)
            let source = FormValues(query: request).value("source")
            let list = refusals.list(source: source)
            let reasons = Dictionary(grouping: list, by: \.reason.rawValue).map { ["name": $0.key, "count": $0.value.count] as [String: Any] }
                .sorted { ($0["name"] as? String ?? "") < ($1["name"] as? String ?? "") }
            return page(
                "refusals",
                [
                    "title": "Refusals", "nav_refusals": true, "keep": refusalsKept, "source": source ?? "", "rows": list.map(ConsoleViews.refusal),
                    "reasons": reasons, "has_reasons": !reasons.isEmpty,
                ], csrf: csrf)
        }
        router.get("/console/live") { request, _ in
            let csrf = try reading(request)
            return page("live", ["title": "Live", "nav_live": true], csrf: csrf)
        }
    }

    // MARK: Sessions

    /// The console's session keeper; the console is off (404) without an admin token.
    private func enabled() throws -> ConsoleSession {
        guard let session else { throw HTTPFailure(.notFound, "the console is off (set admin_token)") }
        return session
    }

    /// A page read: with a session, its CSRF token for the page's forms; without, to the sign-in.
    private func reading(_ request: Request) throws -> String {
        let keeper = try enabled()
        guard let session = keeper.session(of: request) else { throw ConsoleRedirect(location: "/console/login") }
        return keeper.csrfToken(for: session)
    }

    /// A change: needs a session and the form's CSRF token of that session.
    private func changing(_ request: Request) async throws -> (ConsoleSession, FormValues) {
        let keeper = try enabled()
        guard let session = keeper.session(of: request) else { throw HTTPFailure(.forbidden, "the console needs a session: sign in at /console/login") }
        let form = try await FormValues.posted(request)
        guard keeper.checksCSRF(form["csrf"], session: session) else {
            throw HTTPFailure(.forbidden, "the form's CSRF token is missing or not this session's: reload the page and try again")
        }
        return (keeper, form)
    }

    // MARK: Pages

    private func overview() async throws -> [String: Any] {
        let now = Date()
        let counts = try await AdminCall.store { try await inbox.pairCounts() }
        let hour = try await AdminCall.store { try await inbox.deliveries(DeliveryFilter(since: now.addingTimeInterval(-3600), limit: Self.bulkLimit)) }
        let chart = ConsoleViews.hour(hour.deliveries, now: now)
        let oldest = counts.oldestWaiting.sorted { $0.value < $1.value }.map { source, since -> [String: Any] in
            ["source": source, "since": ConsoleViews.time(since), "age": ConsoleViews.age(now.timeIntervalSince(since))]
        }
        var view: [String: Any] = [
            "title": "Overview", "nav_overview": true,
            "states": PairStatus.allCases.map { ["name": $0.rawValue, "count": counts.byStatus[$0] ?? 0] as [String: Any] },
            "bars": chart.bars, "hour_total": chart.received, "hour_failing": chart.failing, "oldest": oldest, "has_oldest": !oldest.isEmpty,
        ]
        if hour.next != nil { view["capped"] = Self.bulkLimit }
        return view
    }

    private func deliveries(_ query: FormValues) async throws -> [String: Any] {
        var view: [String: Any] = ["title": "Deliveries", "nav_deliveries": true, "query": Self.query(query)]
        view["filter"] = Dictionary(uniqueKeysWithValues: Self.filterFields.map { ($0, query.get($0) ?? "") })
        view["statuses"] = PairStatus.allCases.map { ["name": $0.rawValue, "selected": query.get("status") == $0.rawValue] as [String: Any] }
        // `done=replayed N` or `done=purged N`, after a bulk action.
        let done = query.get("done")?.split(separator: " ") ?? []
        if done.count == 2, ["replayed", "purged"].contains(done[0]), let count = Int(done[1]) {
            view["notice"] = "\(done[0] == "replayed" ? "Replayed" : "Purged") \(count) \(count == 1 ? "delivery" : "deliveries")."
        }
        var filter: DeliveryFilter
        do {
            filter = try Self.filter(query, limit: query.get("limit") ?? "50", cursor: query.get("cursor"))
            filter.limit = min(filter.limit, Self.pageLimit)
        } catch {
            view["error"] = "\(error)"
            return view
        }
        let page = try await AdminCall.store { try await inbox.deliveries(filter) }
        view["rows"] = page.deliveries.map(ConsoleViews.row)
        if let next = page.next { view["next"] = Self.query(query) + "&limit=\(filter.limit)&cursor=\(next)" }
        return view
    }

    private func confirmation(_ query: FormValues) async throws -> [String: Any] {
        guard let action = query.get("action"), ["replay", "purge"].contains(action) else { throw HTTPFailure(.badRequest, "action must be replay or purge") }
        let filter = try Self.filter(query)
        // What is confirmed is what is done: the time range fixed now (a relative `since` would
        // move by the time the form is posted, and deliveries arriving meanwhile are left alone).
        var fixed = Self.filterFields.compactMap { name in query.value(name).map { (name, $0) } }
            .filter { $0.0 != "since" && $0.0 != "until" }
        if let since = filter.since { fixed.append(("since", TimeAPI.iso8601(since))) }
        fixed.append(("until", TimeAPI.iso8601(filter.until ?? Date())))
        if action == "purge", !Self.filterFields.contains(where: { query.value($0) != nil }) {
            return [
                "title": "Purge", "nav_deliveries": true, "heading": "Purge deliveries",
                "message": "A purge needs a filter: set at least one of \(Self.filterFields.joined(separator: ", ")) (deliveries waiting to run would be lost).",
                "count_text": "No purge without a filter.", "verb": "Purge", "summary": "none", "query": Self.query(query), "has_matches": false,
            ]
        }
        var counting = filter
        counting.limit = Self.bulkLimit
        let page = try await AdminCall.store { try await inbox.deliveries(counting) }
        let count = page.deliveries.count
        var countText = "\(count) \(count == 1 ? "delivery" : "deliveries")"
        if page.next != nil {
            countText = action == "purge" || filter.status == .dead ? "more than \(Self.bulkLimit) deliveries" : "the newest \(Self.bulkLimit) deliveries"
        }
        let summary = Self.filterFields.compactMap { name in query.value(name).map { "\(name)=\($0)" } }.joined(separator: ", ")
        return [
            "title": action == "replay" ? "Replay" : "Purge", "nav_deliveries": true, "action": action, "verb": action == "replay" ? "Replay" : "Purge",
            "danger": action == "purge", "has_matches": count > 0, "count_text": count == 0 ? "No delivery matches." : countText,
            "summary": summary.isEmpty ? "none: every delivery" : summary, "query": Self.query(query),
            "fields": fixed.map { ["name": $0.0, "value": $0.1] },
        ]
    }

    /// Dead pairs: all of them at once. Otherwise the newest `bulkLimit` deliveries, each on every
    /// handler it has now.
    private func replay(_ filter: DeliveryFilter) async throws -> Int {
        if filter.status == .dead { return try await inbox.replay(.dead(filter)) }
        var page = filter
        page.limit = Self.bulkLimit
        var count = 0
        for delivery in try await inbox.deliveries(page).deliveries {
            count += try await inbox.replay(.delivery(delivery.seq))
        }
        return count
    }

    // MARK: Responses

    private func page(_ template: String, _ view: [String: Any], csrf: String?, status: HTTPResponse.Status = .ok) -> Response {
        var view = view
        if let csrf { view["csrf"] = csrf }
        view["version"] = MoonhookVersion.current
        view["instance"] = instance
        let html = library.render(view, withTemplate: template) ?? "template \(template) is missing"
        return Response(status: status, headers: Self.pageHeaders, body: ResponseBody(byteBuffer: ByteBuffer(string: html)))
    }

    static let pageHeaders: HTTPFields = [
        .contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
        .contentSecurityPolicy: "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        HTTPField.Name("X-Frame-Options")!: "DENY", HTTPField.Name("X-Content-Type-Options")!: "nosniff", HTTPField.Name("Referrer-Policy")!: "no-referrer",
    ]

    private func asset(_ text: String, type: String) -> Response {
        Response(
            status: .ok, headers: [.contentType: type, .cacheControl: "max-age=300", HTTPField.Name("X-Content-Type-Options")!: "nosniff"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    private func redirect(_ location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location, .cacheControl: "no-store"])
    }

    // MARK: Forms and filters

    static let filterFields = ["source", "type", "status", "since", "until", "id"]

    static func filter(_ form: FormValues, limit: String? = nil, cursor: String? = nil) throws -> DeliveryFilter {
        do {
            return try DeliveryReport.filter(
                status: form.value("status"), source: form.value("source"), type: form.value("type"), id: form.value("id"), since: form.value("since"),
                until: form.value("until"), limit: limit, cursor: cursor)
        } catch {
            throw HTTPFailure(.badRequest, error.message)
        }
    }

    /// The filter's fields as a query string (and `done`, what was just done).
    static func query(_ form: FormValues, done: String? = nil) -> String {
        var components = URLComponents()
        components.queryItems = filterFields.compactMap { name in form.value(name).map { URLQueryItem(name: name, value: $0) } }
        if let done { components.queryItems?.append(URLQueryItem(name: "done", value: done)) }
        return components.percentEncodedQuery ?? ""
    }
}

/// A page asked for without a session: to the sign-in page.
struct ConsoleRedirect: HTTPResponseError {
    let location: String
    var status: HTTPResponse.Status { .seeOther }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        Response(status: .seeOther, headers: [.location: location, .cacheControl: "no-store"])
    }
}
