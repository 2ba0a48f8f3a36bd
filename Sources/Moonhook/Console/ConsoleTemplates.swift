import Mustache

/// The console's pages as Mustache templates, compiled into the binary so that the console needs
/// no files beside it and no asset from the internet. `{{name}}` escapes HTML; nothing a sender or
/// a handler wrote is ever put in a `{{{triple}}}`.
enum ConsoleTemplates {
    static func library() throws -> MustacheLibrary {
        var library = MustacheLibrary()
        for (name, text) in templates { try library.register(text, named: name) }
        return library
    }

    static let templates: [(String, String)] = [
        ("head", head), ("foot", foot), ("login", login), ("overview", overview), ("deliveries", deliveries), ("delivery", delivery),
        ("confirm", confirm), ("sources", sources), ("refusals", refusals), ("live", live), ("problem", problem),
    ]

    static let head = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{{title}} · moonhook</title>
        <link rel="stylesheet" href="/console/assets/console.css">
        <script src="/console/assets/console.js" defer></script>
        </head>
        <body>
        <header>
        <a class="brand" href="/console">moonhook</a>
        {{#csrf}}
        <nav>
        <a href="/console"{{#nav_overview}} class="here"{{/nav_overview}}>Overview</a>
        <a href="/console/deliveries"{{#nav_deliveries}} class="here"{{/nav_deliveries}}>Deliveries</a>
        <a href="/console/sources"{{#nav_sources}} class="here"{{/nav_sources}}>Sources</a>
        <a href="/console/refusals"{{#nav_refusals}} class="here"{{/nav_refusals}}>Refusals</a>
        <a href="/console/live"{{#nav_live}} class="here"{{/nav_live}}>Live</a>
        </nav>
        <form method="post" action="/console/logout" class="logout"><input type="hidden" name="csrf" value="{{csrf}}"><button>Sign out</button></form>
        {{/csrf}}
        </header>
        <main>
        {{#notice}}<p class="notice" id="notice">{{notice}}</p>{{/notice}}
        """

    static let foot = """
        </main>
        <footer>moonhook {{version}} · this instance: {{instance}}</footer>
        </body>
        </html>
        """

    static let login = """
        {{> head}}
        <h1>Sign in</h1>
        {{#error}}<p class="error" id="error">{{error}}</p>{{/error}}
        <form method="post" action="/console/login" class="signin">
        <label>Admin token <input type="password" name="token" id="token" autocomplete="current-password" autofocus required></label>
        <button id="signin">Sign in</button>
        </form>
        <p class="hint">The token is the server's <code>admin_token</code>. A session lasts {{ttl}}.</p>
        {{> foot}}
        """

    static let overview = """
        {{> head}}
        <h1>Overview</h1>
        <section class="cards">
        {{#states}}<div class="card state-{{name}}"><span class="count">{{count}}</span> <span>{{name}}</span></div>{{/states}}
        </section>
        <h2>Last hour, per minute</h2>
        <p class="hint">Deliveries received, and those of them with a handler failing (retry or dead){{#capped}}, of the latest {{capped}} deliveries{{/capped}}: {{hour_total}} received, {{hour_failing}} failing.</p>
        <svg class="chart" viewBox="0 0 600 120" role="img" aria-label="deliveries and failures per minute">
        {{#bars}}<rect class="received" x="{{x}}" y="{{y}}" width="8" height="{{height}}"><title>{{label}}: {{count}} received</title></rect>{{#failing_height}}<rect class="failing" x="{{x}}" y="{{failing_y}}" width="8" height="{{failing_height}}"><title>{{label}}: {{failing}} failing</title></rect>{{/failing_height}}{{/bars}}
        <text x="0" y="119">60 min ago</text><text x="580" y="119">now</text>
        </svg>
        <h2>Oldest pending, per source</h2>
        {{#has_oldest}}
        <table><tr><th>Source</th><th>Oldest waiting since</th><th>Age</th></tr>
        {{#oldest}}<tr><td>{{source}}</td><td>{{since}}</td><td>{{age}}</td></tr>{{/oldest}}
        </table>
        {{/has_oldest}}
        {{^has_oldest}}<p>Nothing is waiting.</p>{{/has_oldest}}
        {{> foot}}
        """

    static let filterForm = """
        <form method="get" action="/console/deliveries" class="filter">
        <label>Source <input name="source" value="{{filter.source}}"></label>
        <label>Type <input name="type" value="{{filter.type}}"></label>
        <label>Status <select name="status"><option value="">any</option>{{#statuses}}<option{{#selected}} selected{{/selected}}>{{name}}</option>{{/statuses}}</select></label>
        <label>Since <input name="since" value="{{filter.since}}" placeholder="2h or ISO 8601"></label>
        <label>Until <input name="until" value="{{filter.until}}" placeholder="30m or ISO 8601"></label>
        <label>Id <input name="id" value="{{filter.id}}"></label>
        <button>Filter</button>
        </form>
        """

    static let deliveries = """
        {{> head}}
        <h1>Deliveries</h1>
        \(filterForm)
        {{#error}}<p class="error">{{error}}</p>{{/error}}
        <table id="deliveries">
        <tr><th>#</th><th>Received</th><th>Source</th><th>Type</th><th>Id</th><th>Handlers</th></tr>
        {{#rows}}<tr><td><a href="/console/deliveries/{{seq}}">{{seq}}</a></td><td>{{received}}</td><td>{{source}}</td><td>{{type}}</td><td><a href="/console/deliveries/{{seq}}">{{id}}</a></td><td>{{#states}}<span class="status {{name}}">{{count}} {{name}}</span> {{/states}}{{^states}}<span class="status">none</span>{{/states}}</td></tr>{{/rows}}
        </table>
        {{^rows}}<p>No delivery matches.</p>{{/rows}}
        <p class="paging">{{#next}}<a id="older" href="/console/deliveries?{{next}}">Older →</a>{{/next}}</p>
        <div class="actions">
        <a class="button" id="replay-all" href="/console/deliveries/confirm?action=replay&amp;{{query}}">Replay all that match…</a>
        <a class="button danger" id="purge-all" href="/console/deliveries/confirm?action=purge&amp;{{query}}">Purge all that match…</a>
        </div>
        {{> foot}}
        """

    static let delivery = """
        {{> head}}
        <h1>Delivery {{seq}}</h1>
        <dl class="facts">
        <dt>Source</dt><dd>{{source}}</dd><dt>Type</dt><dd>{{type}}</dd><dt>Id</dt><dd>{{id}}</dd><dt>Received</dt><dd>{{received}}</dd>
        </dl>
        <form method="post" action="/console/deliveries/{{seq}}/replay"><input type="hidden" name="csrf" value="{{csrf}}"><button id="replay">Replay</button></form>
        <h2>Handlers</h2>
        {{#pairs}}
        <section class="pair">
        <h3>{{handler}} <span class="status {{status}}">{{status}}</span></h3>
        {{#serial_key}}<p class="hint">serial key <code>{{serial_key}}</code>{{#waiting_on}}: waits behind <a href="/console/deliveries/{{waiting_on}}">delivery {{waiting_on}}</a>{{/waiting_on}}</p>{{/serial_key}}
        <p>{{attempts}} attempt(s){{#due}}, next due {{due}}{{/due}}{{#last_error}}; last error: <code class="error">{{last_error}}</code>{{/last_error}}</p>
        <table class="attempts">
        <tr><th>Attempt</th><th>Outcome</th><th>Started</th><th>Duration</th><th>Error</th></tr>
        {{#runs}}<tr class="attempt"><td>{{attempt}}</td><td><span class="status {{outcome}}">{{outcome}}</span></td><td>{{started}}</td><td>{{duration}}</td><td>{{#error}}<code class="error">{{error}}</code>{{/error}}{{#excerpt}}<pre class="excerpt">{{excerpt}}</pre>{{/excerpt}}</td></tr>
        {{#has_logs}}<tr><td></td><td colspan="4"><pre class="logs">{{#logs}}{{level}} {{message}}{{#fields}} {{.}}{{/fields}}
        {{/logs}}</pre></td></tr>{{/has_logs}}{{/runs}}
        </table>
        </section>
        {{/pairs}}
        {{^pairs}}<p>No handler was resolved for its type.</p>{{/pairs}}
        <h2>Headers</h2>
        <table class="headers">{{#headers}}<tr><th>{{name}}</th><td><code>{{value}}</code></td></tr>{{/headers}}</table>
        <h2>Body</h2>
        <pre class="body" id="body">{{body}}</pre>
        {{> foot}}
        """

    static let confirm = """
        {{> head}}
        <h1>{{verb}} deliveries</h1>
        <p id="count">{{count_text}}</p>
        {{#message}}<p class="error" id="refused">{{message}}</p>{{/message}}
        <p class="hint">Filter: {{summary}}</p>
        {{#has_matches}}
        <form method="post" action="/console/deliveries/{{action}}">
        <input type="hidden" name="csrf" value="{{csrf}}">
        {{#fields}}<input type="hidden" name="{{name}}" value="{{value}}">{{/fields}}
        <button id="confirm" class="{{#danger}}danger{{/danger}}">{{verb}} {{count_text}}</button>
        <a href="/console/deliveries?{{query}}">Cancel</a>
        </form>
        {{/has_matches}}
        {{> foot}}
        """

    static let sources = """
        {{> head}}
        <h1>Sources</h1>
        {{#sources}}
        <section class="source" id="source-{{name}}">
        <h2>{{name}} {{#serving}}<span class="status done">serving</span>{{/serving}}{{^serving}}<span class="status dead">not served</span>{{/serving}}</h2>
        <p>Scheme <code>{{scheme}}</code> · version {{version}} · loaded {{loaded}}</p>
        {{#has_problems}}<ul class="problems">{{#problems}}<li><code class="error">{{.}}</code></li>{{/problems}}</ul>{{/has_problems}}
        <table><tr><th>Handler</th><th>Runs on</th></tr>
        {{#handlers}}<tr><td><code>{{path}}</code></td><td>{{#on}}<code>{{.}}</code> {{/on}}{{^on}}its file name{{/on}}</td></tr>{{/handlers}}
        </table>
        </section>
        {{/sources}}
        {{^sources}}<p>No source folder in the handlers folder.</p>{{/sources}}
        {{> foot}}
        """

    static let refusals = """
        {{> head}}
        <h1>Refusals</h1>
        <p class="hint">Requests this instance refused, newest first: the latest {{keep}} per source, kept in memory (a restart empties the list).</p>
        <form method="get" action="/console/refusals" class="filter"><label>Source <input name="source" value="{{source}}"></label><button>Filter</button></form>
        {{#has_reasons}}<p>By reason: {{#reasons}}<span class="status dead">{{name}}: {{count}}</span> {{/reasons}}</p>{{/has_reasons}}
        <table id="refusals"><tr><th>Time</th><th>Source</th><th>Status</th><th>Reason</th><th>Message</th><th>From</th><th>Body</th></tr>
        {{#rows}}<tr><td>{{time}}</td><td>{{source}}</td><td>{{status}}</td><td>{{reason}}</td><td>{{message}}</td><td>{{from}}</td><td><code>{{body}}</code></td></tr>{{/rows}}
        </table>
        {{^rows}}<p>Nothing refused.</p>{{/rows}}
        {{> foot}}
        """

    static let live = """
        {{> head}}
        <h1>Live</h1>
        <p class="hint">What this instance receives and runs, as it happens. Behind a load balancer each instance streams its own.</p>
        <form class="filter" id="live-filter">
        <label>Source <input name="source" id="live-source"></label>
        <label>Handler <input name="handler" id="live-handler" placeholder="source/type.lua"></label>
        <label>Level <select name="level" id="live-level"><option value="">any</option><option>debug</option><option>info</option><option>warn</option><option>error</option></select></label>
        <button type="submit">Apply</button>
        <button type="button" id="live-pause">Pause</button>
        <span id="live-state">connecting…</span>
        </form>
        <table id="live"><thead><tr><th>Time</th><th>Kind</th><th>Source</th><th>Handler</th><th>Level</th><th>Message</th></tr></thead><tbody id="live-rows"></tbody></table>
        {{> foot}}
        """

    static let problem = """
        {{> head}}
        <h1>{{heading}}</h1>
        <p class="error">{{message}}</p>
        {{> foot}}
        """
}
