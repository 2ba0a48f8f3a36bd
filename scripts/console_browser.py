"""Walks moonhook's web console in headless Chromium (selenium, /usr/bin/chromium and
/usr/bin/chromedriver) against a running server: sign-in (a wrong token refused, the session
cookie HttpOnly and SameSite=Strict), the deliveries list, a delivery page (a hostile body shown
as text, never run; the handler's attempts; Replay adding one), the Sources and Refusals pages,
and the Live page (an event stream showing deliveries and handler log lines, Pause holding them).

    python3 scripts/console_browser.py --url http://127.0.0.1:PORT --token ADMIN_TOKEN \
        --screenshots DIR --source SOURCE

SOURCE is a source folder served with scheme none and `id: /id`, whose `ping.lua` runs
`log.info("ping seen", {id = e.id})`. Each step that passes prints `ok: <what>`; the first that
fails prints `FAILED: <reason>`, saves DIR/failure.png and exits 1. After the last step it prints
`ok: all` and exits 0. The browser talks only to --url, and deliveries are posted to it directly.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings

os.environ["SE_OFFLINE"] = "true"

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import TimeoutException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.expected_conditions import staleness_of  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

WAIT = 15
HOSTILE = "<script>window.__pwned=1</script><img src=x onerror=window.__pwned=2>"
SCRIPT_TEXT = "<script>window.__pwned=1</script>"
# urllib without any proxy from the environment: requests go to --url and nowhere else.
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Failure(Exception):
    pass


def check(condition, reason):
    if not condition:
        raise Failure(reason)


def ok(what):
    print(f"ok: {what}", flush=True)


class Walk:
    def __init__(self, args):
        self.url = args.url.rstrip("/")
        self.token = args.token
        self.source = args.source
        self.shots = args.screenshots
        self.driver = None
        self.profile = None

    # MARK: Helpers

    def post(self, path, payload):
        """POSTs JSON to the server; returns (status, body text)."""
        request = urllib.request.Request(
            self.url + path, data=json.dumps(payload).encode(), method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with HTTP.open(request, timeout=10) as response:
                return response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")

    def deliver(self, delivery_id, **extra):
        status, body = self.post(f"/hooks/{urllib.parse.quote(self.source)}", {"type": "ping", "id": delivery_id, **extra})
        check(status == 202, f"POST /hooks/{self.source} with id {delivery_id} answered {status}, not 202: {body[:200]}")

    def open(self, path):
        self.driver.get(self.url + path)

    def submit(self, button):
        """Clicks the form button with id `button` and waits until the page it led to is loaded."""
        page = self.driver.find_element(By.TAG_NAME, "html")
        self.driver.find_element(By.ID, button).click()
        try:
            WebDriverWait(self.driver, WAIT, poll_frequency=0.2).until(staleness_of(page))
        except TimeoutException:
            raise Failure(f"clicking #{button} led to no new page within {WAIT} s") from None

    def path(self):
        return urllib.parse.urlsplit(self.driver.current_url).path

    def wait(self, condition, what, timeout=WAIT):
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.2).until(lambda _: condition())
        except TimeoutException:
            raise Failure(f"timed out after {timeout} s waiting for {what}") from None

    def reload_until(self, condition, what, timeout=WAIT):
        """Reloads the (server-rendered) page until `condition()` is true."""
        deadline = time.monotonic() + timeout
        while True:
            result = condition()
            if result:
                return result
            if time.monotonic() >= deadline:
                raise Failure(f"timed out after {timeout} s (reloading) waiting for {what}")
            time.sleep(0.3)
            self.driver.refresh()

    def find(self, selector):
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def text(self, selector):
        found = self.find(selector)
        return found[0].text if found else None

    def h1(self):
        return self.text("h1") or ""

    def screenshot(self, name):
        os.makedirs(self.shots, exist_ok=True)
        path = os.path.join(self.shots, name)
        check(self.driver.save_screenshot(path), f"could not save the screenshot {path}")

    def attempts(self):
        """The delivery page's attempt rows, as (attempt, outcome) texts."""
        rows = []
        for row in self.find("tr.attempt"):
            cells = row.find_elements(By.TAG_NAME, "td")
            rows.append((cells[0].text if cells else "", cells[1].text if len(cells) > 1 else ""))
        return rows

    def live_rows(self):
        return self.driver.execute_script("return Array.from(document.querySelectorAll('#live-rows tr')).map(function (r) { return r.innerText; });")

    # MARK: Browser

    def launch(self):
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        options.add_argument("--headless=new")
        if os.geteuid() == 0:
            options.add_argument("--no-sandbox")
        for argument in [
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
            "--no-proxy-server",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-extensions",
            "--disable-domain-reliability",
            "--disable-client-side-phishing-detection",
            "--disable-breakpad",
            "--no-pings",
            "--password-store=basic",
            "--use-mock-keychain",
        ]:
            options.add_argument(argument)
        # A profile of its own: another Chromium using the default one (its lock) cannot stop it.
        self.profile = tempfile.mkdtemp(prefix="moonhook-chromium-")
        options.add_argument(f"--user-data-dir={self.profile}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            options.ignore_local_proxy_environment_variables()
        # A loaded machine can make the first start miss chromedriver's deadline: one more try.
        try:
            self.driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
        except WebDriverException as error:
            print(f"note: the browser did not start ({one_line(error)}); trying once more", flush=True)
            time.sleep(2)
            self.driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
        self.driver.set_page_load_timeout(WAIT)

    # MARK: Steps

    def run(self):
        # 1. A delivery with a hostile field.
        self.deliver("browser-1", note=HOSTILE)
        ok("delivery browser-1 posted with a hostile note (202)")

        self.launch()

        # 2. Sign-in.
        self.open("/console")
        check(self.path() == "/console/login", f"/console led to {self.driver.current_url}, not /console/login")
        self.driver.find_element(By.ID, "token").send_keys("not-" + self.token)
        self.submit("signin")
        self.wait(lambda: self.find("#error"), "#error after a wrong token")
        check(self.driver.get_cookie("moonhook_session") is None, "a wrong token left a moonhook_session cookie")
        field = self.driver.find_element(By.ID, "token")
        field.clear()
        field.send_keys(self.token)
        self.submit("signin")
        self.wait(lambda: self.h1() == "Overview" or self.find("#error"), "the Overview page after signing in")
        check(not self.find("#error"), f"signing in with --token was refused: {self.text('#error')!r}")
        check(self.path() == "/console", f"signing in led to {self.driver.current_url}, not /console")
        self.screenshot("overview.png")
        cookie = self.driver.get_cookie("moonhook_session")
        check(cookie is not None, "no moonhook_session cookie after signing in")
        check(cookie.get("httpOnly") is True, f"the session cookie is not HttpOnly: {cookie}")
        check(cookie.get("sameSite") == "Strict", f"the session cookie is not SameSite=Strict: {cookie}")
        ok("sign-in: wrong token refused without a cookie; right token lands on Overview; cookie HttpOnly, SameSite=Strict")

        # 3. The deliveries list and the delivery page.
        self.open("/console/deliveries")
        check(self.h1() == "Deliveries", f"/console/deliveries shows {self.h1()!r}, not Deliveries")
        self.reload_until(lambda: self.find("#deliveries") and self.driver.find_element(By.ID, "deliveries").find_elements(By.LINK_TEXT, "browser-1"),
                          "a browser-1 link in #deliveries")
        self.screenshot("deliveries.png")
        self.driver.find_element(By.ID, "deliveries").find_element(By.LINK_TEXT, "browser-1").click()
        self.wait(lambda: self.h1().startswith("Delivery "), "the delivery page of browser-1")
        delivery_path = self.path()
        body = self.text("#body")
        check(body is not None, "the delivery page has no #body")
        check(SCRIPT_TEXT in body, f"#body does not show {SCRIPT_TEXT} as text: {body[:300]!r}")
        check(not self.find("#body script, #body img"), "the hostile note became elements inside #body")
        pwned = self.driver.execute_script("return window.__pwned")
        check(pwned is None, f"the hostile note ran: window.__pwned is {pwned!r}")
        rows = self.reload_until(lambda: [row for row in self.attempts() if row[1] == "done"] and self.attempts(),
                                 "an attempt row with outcome done on the delivery page")
        self.screenshot("delivery.png")
        before = len(rows)
        ok(f"deliveries list links browser-1; its page ({delivery_path}) shows the hostile note as text, unrun; {before} attempt(s), done")

        # 4. Replay.
        self.submit("replay")
        self.wait(lambda: self.find("#notice") and self.path() == delivery_path, f"#notice back on {delivery_path} after Replay")
        self.reload_until(lambda: len(self.attempts()) >= before + 1, f"a new attempt row after Replay (had {before})")
        after = len(self.attempts())
        check(after == before + 1, f"Replay added {after - before} attempt rows, not 1")
        ok(f"replay: notice shown, attempts {before} -> {after}")

        # 5. Sources and refusals.
        self.open("/console/sources")
        check(self.h1() == "Sources", f"/console/sources shows {self.h1()!r}, not Sources")
        handler = f"{self.source}/ping.lua"
        check(handler in self.driver.find_element(By.TAG_NAME, "main").text, f"the Sources page does not mention {handler}")
        self.screenshot("sources.png")
        ok(f"sources page lists {handler}")

        status, answer = self.post("/hooks/no-such-source", {"type": "ping", "id": "browser-refused"})
        check(status == 404, f"POST /hooks/no-such-source answered {status}, not 404: {answer[:200]}")
        self.open("/console/refusals")
        check(self.h1() == "Refusals", f"/console/refusals shows {self.h1()!r}, not Refusals")

        def refusal_rows():
            rows = []
            for row in self.find("#refusals tr"):
                cells = [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
                if len(cells) >= 5 and "no-such-source" in cells[4]:
                    rows.append(cells)
            return rows

        # The columns: time, source, status, reason, message, from, body. A source that is not
        # served is listed as `_unknown`, refused with the reason `source` (RefusalReason.source).
        cells = self.reload_until(refusal_rows, "a refusal row for no-such-source in #refusals")[0]
        check(cells[2] == "404", f"the no-such-source refusal row does not say 404: {cells}")
        check(cells[3] == "source" and cells[1] == "_unknown", f"the no-such-source refusal is not source/_unknown: {cells}")
        self.screenshot("refusals.png")
        ok("refusals page shows the 404 refusal of no-such-source (source _unknown, reason source)")

        # 6. Live.
        self.open("/console/live")
        self.wait(lambda: self.text("#live-state") == "live", "#live-state to read live (EventSource connected)")
        self.deliver("browser-2")
        self.wait(lambda: any("ping seen" in row and "browser-2" in row for row in self.live_rows())
                  and any("browser-2" in row and "ping seen" not in row for row in self.live_rows()),
                  "live rows for browser-2: its delivery and its handler's 'ping seen' line")
        pause = self.driver.find_element(By.ID, "live-pause")
        pause.click()
        self.wait(lambda: pause.text == "Resume", "the pause button to read Resume")
        self.deliver("browser-3")
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            check(not any("browser-3" in row for row in self.live_rows()), "a browser-3 row appeared while paused")
            time.sleep(0.2)

        def held():
            check(not any("browser-3" in row for row in self.live_rows()), "a browser-3 row appeared while paused")
            return "waiting" in (self.text("#live-state") or "")

        self.wait(held, "#live-state to mention events waiting while paused")
        waiting = self.text("#live-state")
        pause.click()
        self.wait(lambda: pause.text == "Pause", "the pause button to read Pause again")
        self.wait(lambda: any("browser-3" in row for row in self.live_rows()), "the browser-3 row after resuming")
        self.screenshot("live.png")
        ok(f"live page: connected, showed browser-2 and its 'ping seen' line; paused ({waiting!r}) then showed browser-3")


def one_line(error):
    if isinstance(error, Failure):
        text = str(error)
    elif isinstance(error, WebDriverException):
        text = f"{type(error).__name__}: {error.msg or error}"
    else:
        text = f"{type(error).__name__}: {error}"
    return " ".join(text.split())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the server's base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--token", required=True, help="the admin token")
    parser.add_argument("--screenshots", required=True, help="folder for the PNG screenshots (created)")
    parser.add_argument("--source", required=True, help="a served source folder with a ping.lua handler")
    args = parser.parse_args()
    os.makedirs(args.screenshots, exist_ok=True)

    walk = Walk(args)
    try:
        walk.run()
        print("ok: all", flush=True)
        return 0
    except Exception as error:  # noqa: BLE001 - every failure ends the walk the same way
        print(f"FAILED: {one_line(error)}", flush=True)
        if walk.driver is not None:
            try:
                walk.driver.save_screenshot(os.path.join(args.screenshots, "failure.png"))
            except Exception:  # noqa: BLE001
                pass
        return 1
    finally:
        if walk.driver is not None:
            try:
                walk.driver.quit()
            except Exception:  # noqa: BLE001
                pass
        if getattr(walk, "profile", None):
            shutil.rmtree(walk.profile, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
