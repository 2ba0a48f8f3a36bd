/// The console's stylesheet and script, served from the binary (`/console/assets/…`) so that the
/// pages' Content-Security-Policy can forbid every inline script and style.
enum ConsoleAssets {
    static let css = """
        :root { --fg: #1d2330; --muted: #5b6475; --line: #d9dde5; --bg: #f6f7f9; --accent: #3b5bdb; --bad: #c92a2a; --good: #2b8a3e; --warn: #e67700; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 14px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
        header { display: flex; gap: 1.5rem; align-items: center; padding: .6rem 1.2rem; background: #fff; border-bottom: 1px solid var(--line); }
        header .brand { font-weight: 700; color: var(--fg); text-decoration: none; }
        nav a { margin-right: 1rem; color: var(--muted); text-decoration: none; }
        nav a.here { color: var(--accent); font-weight: 600; }
        .logout { margin-left: auto; }
        main { padding: 1rem 1.2rem; max-width: 1200px; }
        footer { padding: 1rem 1.2rem; color: var(--muted); font-size: 12px; }
        h1 { font-size: 1.4rem; margin: .2rem 0 1rem; }
        h2 { font-size: 1.1rem; margin: 1.4rem 0 .5rem; }
        h3 { font-size: 1rem; margin: .6rem 0 .3rem; }
        table { border-collapse: collapse; width: 100%; background: #fff; }
        th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
        th { color: var(--muted); font-weight: 600; }
        code, pre { font: 12.5px/1.4 ui-monospace, monospace; }
        pre { background: #fff; border: 1px solid var(--line); padding: .6rem; overflow: auto; white-space: pre-wrap; word-break: break-all; }
        pre.logs { margin: 0; background: var(--bg); }
        pre.excerpt { margin: .3rem 0 0; padding: .3rem .5rem; white-space: pre; word-break: normal; }
        .error { color: var(--bad); }
        .notice { background: #e7f5ff; border: 1px solid #a5d8ff; padding: .5rem .8rem; }
        .hint { color: var(--muted); }
        .status { display: inline-block; padding: 0 .4rem; border-radius: 3px; background: var(--line); font-size: 12px; }
        .status.done { background: #d3f9d8; color: var(--good); }
        .status.dead { background: #ffe3e3; color: var(--bad); }
        .status.retry { background: #fff3bf; color: var(--warn); }
        .status.running, .status.pending { background: #e7f5ff; color: var(--accent); }
        .cards { display: flex; gap: .8rem; flex-wrap: wrap; }
        .card { background: #fff; border: 1px solid var(--line); padding: .6rem 1rem; min-width: 8rem; }
        .card .count { font-size: 1.4rem; font-weight: 700; }
        .chart { width: 100%; max-width: 900px; height: 160px; background: #fff; border: 1px solid var(--line); }
        .chart .received { fill: #91a7ff; }
        .chart .failing { fill: var(--bad); }
        .chart text { font-size: 5px; fill: var(--muted); }
        form.filter { display: flex; gap: .6rem; flex-wrap: wrap; align-items: end; margin-bottom: 1rem; }
        form.filter label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); }
        input, select, button, .button { font: inherit; padding: .3rem .5rem; border: 1px solid var(--line); border-radius: 3px; background: #fff; color: var(--fg); }
        button, .button { cursor: pointer; text-decoration: none; }
        button.danger, .button.danger { border-color: var(--bad); color: var(--bad); }
        .actions { display: flex; gap: .8rem; margin-top: 1rem; }
        dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
        dl.facts dt { color: var(--muted); }
        dl.facts dd { margin: 0; }
        .pair { background: #fff; border: 1px solid var(--line); padding: .4rem .8rem .8rem; margin-bottom: .8rem; }
        .signin { display: flex; gap: .6rem; align-items: end; }
        .signin label { display: flex; flex-direction: column; }
        #live td { white-space: nowrap; }
        #live td:last-child { white-space: normal; }
        tr.level-error td { color: var(--bad); }
        tr.level-warning td { color: var(--warn); }
        """

    /// The Live page: reads `/admin/stream` with the session cookie, shows the newest 500 rows,
    /// and while paused keeps what arrives to show it on resume.
    static let js = """
        "use strict";
        document.addEventListener("DOMContentLoaded", function () {
          var rows = document.getElementById("live-rows");
          if (!rows) return;
          var state = document.getElementById("live-state");
          var pauseButton = document.getElementById("live-pause");
          var form = document.getElementById("live-filter");
          var paused = false, held = [], source = null, dropped = 0;
          function cell(text) { var td = document.createElement("td"); td.textContent = text == null ? "" : String(text); return td; }
          function show(kind, data) {
            var tr = document.createElement("tr");
            tr.className = "live-row kind-" + kind + " level-" + (data.level || "info");
            var message = data.message || "";
            if (data.fields) { for (var key in data.fields) message += " " + key + "=" + data.fields[key]; }
            if (data.duration_ms != null) message += " (" + data.duration_ms + " ms)";
            var who = data.handler || (data.type ? data.type : "");
            [data.time ? data.time.substring(11, 23) : "", kind, data.source, who, data.level || "", message + (data.delivery_id ? "  [" + data.delivery_id + "]" : "")]
              .forEach(function (text) { tr.appendChild(cell(text)); });
            rows.insertBefore(tr, rows.firstChild);
            while (rows.children.length > 500) rows.removeChild(rows.lastChild);
          }
          function receive(kind) {
            return function (event) {
              var data = JSON.parse(event.data);
              if (paused) { held.push([kind, data]); if (held.length > 5000) held.shift(); } else show(kind, data);
            };
          }
          function status() {
            state.textContent = (paused ? "paused" + (held.length ? ", " + held.length + " waiting" : "") : "live") + (dropped ? " · " + dropped + " dropped (this page fell behind)" : "");
          }
          function connect() {
            if (source) source.close();
            var query = new URLSearchParams(new FormData(form));
            source = new EventSource("/admin/stream?" + query.toString());
            source.onopen = function () { status(); };
            source.onerror = function () {
              // Closed for good (the session ended, the stream was refused): reloading signs in again.
              state.textContent = source.readyState === EventSource.CLOSED ? "disconnected: reload the page (the session may have ended)" : "reconnecting…";
            };
            ["delivery", "attempt", "log"].forEach(function (kind) { source.addEventListener(kind, function (event) { receive(kind)(event); status(); }); });
            source.addEventListener("dropped", function (event) { dropped += JSON.parse(event.data).dropped; status(); });
          }
          form.addEventListener("submit", function (event) { event.preventDefault(); rows.textContent = ""; connect(); });
          pauseButton.addEventListener("click", function () {
            paused = !paused;
            pauseButton.textContent = paused ? "Resume" : "Pause";
            if (!paused) { held.forEach(function (item) { show(item[0], item[1]); }); held = []; }
            status();
          });
          connect();
        });
        """
}
