#!/usr/bin/env python3
"""The dashboard in a real browser (run by tests/dashboard.rs).

    check_dashboard.py URL ADMIN_KEY VIEW_KEY SCREENSHOT_DIR

Seeds the running server through its HTTP/JSON API with ADMIN_KEY (one
Bernoulli experiment with a control arm and rewards, one Gaussian
experiment, filler experiments so the list has two pages, and a study with
a constraint driven through 30 Suggest/Observe rounds), then opens every
page of the dashboard in headless Chromium (Debian's chromium and
chromium-driver, through selenium) with VIEW_KEY, a key with the `decide`
scope only, typed into session storage as a user would.

Fails (exit 1, saying what) on any console error, any failed or non-2xx/3xx
request, any chart that did not draw (a uPlot or hand-drawn canvas without
coloured pixels, an SVG figure without data elements) and any expected chart
that is missing. Writes a full-page PNG per page to SCREENSHOT_DIR.
"""

import base64
import http.client
import json
import math
import os
import random
import sys
import urllib.parse

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

# Debian's packages (scripts/test installs them when missing).
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Waits for a page to render: generous, since the machine may be loaded;
# nothing is timed, a page that renders at all renders well within it.
PAGE_TIMEOUT_S = 60
# A chart drew its data when at least this many pixels are saturated
# colours: axes, grid and text are grey or black, every data series is
# drawn in a saturated palette colour. A single drawn line over a 300 px
# wide plot colours hundreds of pixels; an empty plot colours none.
MIN_DATA_PIXELS = 100


# The page re-renders every 5 s (it swaps in a fresh body), so an element
# found a moment ago can be gone: look again rather than fail.
RETRY = (NoSuchElementException, StaleElementReferenceException)


def wait(driver, condition):
    return WebDriverWait(driver, PAGE_TIMEOUT_S, ignored_exceptions=RETRY).until(condition)


def click(driver, xpath):
    def clicked(d):
        d.find_element(By.XPATH, xpath).click()
        return True
    wait(driver, clicked)


class Api:
    """Keep-alive HTTP/1.1 JSON client of the server under test."""

    def __init__(self, url, key):
        u = urllib.parse.urlparse(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        self.key = key

    def exists(self, path):
        self.conn.request("GET", path, headers={"x-api-key": self.key})
        res = self.conn.getresponse()
        res.read()
        return res.status == 200

    def call(self, method, path, body=None):
        headers = {"x-api-key": self.key}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        self.conn.request(method, path, body=data, headers=headers)
        res = self.conn.getresponse()
        text = res.read().decode()
        if res.status >= 300:
            raise SystemExit(f"seeding: {method} {path} -> {res.status} {text}")
        return json.loads(text) if text else None


def seed(api):
    rng = random.Random(7)
    # A Bernoulli experiment with a control arm (lift), rewards by arm with
    # different rates, and a few Choose/Reward round trips by decision id.
    # tests/dashboard.rs may have created it already, in the store file
    # with a day of history, before starting the server.
    if not api.exists("/v1/experiments/checkout-button"):
        api.call("POST", "/v1/experiments", {
            "name": "checkout-button", "arms": ["control", "blue", "green"],
            "controlArm": "control", "description": "Which checkout button converts best",
        })
    rates = {"control": 0.10, "blue": 0.13, "green": 0.08}
    for arm, rate in rates.items():
        for _ in range(300):
            api.call("POST", "/v1/experiments/checkout-button:reward",
                     {"arm": arm, "value": 1.0 if rng.random() < rate else 0.0})
    for _ in range(20):
        d = api.call("POST", "/v1/experiments/checkout-button:choose", {})
        api.call("POST", "/v1/experiments/checkout-button:reward",
                 {"decisionId": d["decisionId"], "value": 1.0})
    # A Gaussian experiment: Student-t densities of the means.
    api.call("POST", "/v1/experiments", {
        "name": "latency-ms", "arms": ["v1", "v2"], "model": "GAUSSIAN",
        "goal": "MINIMIZE_REWARD",
    })
    for arm, mu in {"v1": 120.0, "v2": 110.0}.items():
        for _ in range(100):
            api.call("POST", "/v1/experiments/latency-ms:reward",
                     {"arm": arm, "value": rng.gauss(mu, 15.0)})
    # Fillers: with them the list has more than one page (20 a page).
    for i in range(20):
        api.call("POST", "/v1/experiments", {"name": f"filler-{i:02}", "arms": ["a", "b"]})

    # A study with a constraint, through 30 Suggest/Observe rounds; every
    # 10th run fails, and the constraint cuts off part of the space.
    api.call("POST", "/v1/studies", {
        "name": "tune-cache",
        "parameters": [
            {"name": "cache_mb", "float": {"low": 16, "high": 1024, "log": True}},
            {"name": "threads", "int": {"low": 1, "high": 32}},
            {"name": "policy", "categorical": {"values": ["lru", "lfu", "fifo"]}},
        ],
        "objective": {"name": "latency_ms", "goal": "MINIMIZE"},
        "constraints": [{"metric": "error_rate", "upperBound": 0.02}],
        "metrics": ["error_rate"],
        "seed": "11",
    })
    for i in range(30):
        trial = api.call("POST", "/v1/studies/tune-cache:suggest", {"count": 1})["trials"][0]
        p = trial["params"]
        mb, threads, policy = p["cache_mb"]["number"], p["threads"]["number"], p["policy"]["category"]
        latency = (50 + 30 * (math.log(mb) - math.log(256)) ** 2 + 0.05 * (threads - 12) ** 2
                   + {"lru": 0, "lfu": -4, "fifo": 6}[policy] + rng.gauss(0, 1))
        error_rate = 0.004 * threads / 4 + 0.001
        body = {"trialId": trial["trialId"], "value": latency, "metrics": {"error_rate": error_rate}}
        if i % 10 == 9:
            body = {"trialId": trial["trialId"], "failed": True}
        api.call("POST", "/v1/studies/tune-cache:observe", body)

    # A study with two objectives (ZDT1 in 2-D, the second maximized as its
    # negative): its pages must render with `objectives` instead of
    # `objective`.
    api.call("POST", "/v1/studies", {
        "name": "two-goals",
        "parameters": [{"name": "x1", "float": {"low": 0, "high": 1}},
                       {"name": "x2", "float": {"low": 0, "high": 1}}],
        "objectives": [{"name": "f1", "goal": "MINIMIZE"}, {"name": "neg_f2", "goal": "MAXIMIZE"}],
        "seed": "5",
    })
    for _ in range(12):
        trial = api.call("POST", "/v1/studies/two-goals:suggest", {"count": 1})["trials"][0]
        x1, x2 = trial["params"]["x1"]["number"], trial["params"]["x2"]["number"]
        g = 1 + 9 * x2
        api.call("POST", "/v1/studies/two-goals:observe", {
            "trialId": trial["trialId"],
            "metrics": {"f1": x1, "neg_f2": -g * (1 - math.sqrt(x1 / g))},
        })


def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1400,1000", "--force-device-scale-factor=1", "--hide-scrollbars"]:
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)


class Problems:
    def __init__(self):
        self.items = []

    def add(self, page, what):
        self.items.append(f"{page}: {what}")


def drain_logs(driver, page, problems):
    """Console errors and failed requests since the last call."""
    for e in driver.get_log("browser"):
        if e.get("level") in ("SEVERE", "ERROR"):
            problems.add(page, f"console error: {e.get('message')}")
    for e in driver.get_log("performance"):
        msg = json.loads(e["message"])["message"]
        params = msg.get("params", {})
        if msg.get("method") == "Network.responseReceived":
            res = params.get("response", {})
            if res.get("status", 0) >= 400:
                problems.add(page, f"request failed: {res.get('status')} {res.get('url')}")
        elif msg.get("method") == "Network.loadingFailed" and not params.get("canceled"):
            problems.add(page, f"request failed: {params.get('errorText')} ({params.get('type')})")


CHART_PIXELS_JS = """
return [...document.querySelectorAll('.chart')].map((el) => {
  const svg = el.querySelector('svg');
  if (svg) return { name: el.dataset.chart, kind: 'svg', data: svg.querySelectorAll('.data').length,
                    title: !!el.querySelector('.chart-title') };
  let coloured = 0;
  for (const c of el.querySelectorAll('canvas')) {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3] > 0 && Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) > 60) coloured++;
    }
  }
  const title = !!el.querySelector('.u-title, .chart-title');
  const axes = [...el.querySelectorAll('.u-label')].map((l) => l.textContent).filter((t) => t);
  return { name: el.dataset.chart, kind: 'canvas', data: coloured, title, axes };
});
"""


def wait_rendered(driver, page):
    """Until the page's body has rendered (the status says "updated")."""
    def ready(d):
        status = d.find_element(By.ID, "status").text
        if status == "error":
            raise SystemExit(f"{page}: the page shows an error: " +
                             d.find_element(By.ID, "main").text[:500])
        loading = d.find_elements(By.XPATH, "//*[contains(@class,'empty') and text()='loading…']")
        return status.startswith("updated") and not loading
    wait(driver, ready)


def check_page(driver, page, expected, problems, shots):
    wait_rendered(driver, page)
    # Charts can be re-drawn by the 5 s refresh while we look: wait until
    # every expected chart is there.
    def present(d):
        names = {c["name"] for c in d.execute_script(CHART_PIXELS_JS)}
        return expected <= names
    try:
        wait(driver, present)
    except Exception:
        pass
    charts = driver.execute_script(CHART_PIXELS_JS)
    names = {c["name"] for c in charts}
    for missing in sorted(expected - names):
        problems.add(page, f"chart {missing!r} missing")
    for c in charts:
        if c["kind"] == "svg" and c["data"] == 0:
            problems.add(page, f"chart {c['name']!r}: SVG without data elements")
        if c["kind"] == "canvas" and c["data"] < MIN_DATA_PIXELS:
            problems.add(page, f"chart {c['name']!r}: canvas blank ({c['data']} coloured pixels)")
        if not c["title"]:
            problems.add(page, f"chart {c['name']!r} has no title")
        # uPlot charts carry both axis labels.
        if c["kind"] == "canvas" and c["name"] != "parallel-coordinates" and len(c.get("axes", [])) < 2:
            problems.add(page, f"chart {c['name']!r} lacks axis labels ({c.get('axes')})")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    path = os.path.join(shots, page + ".png")
    with open(path, "wb") as f:
        f.write(base64.b64decode(shot["data"]))
    drain_logs(driver, page, problems)
    print(f"{page}: {len(charts)} charts " +
          ", ".join(f"{c['name']}={c['data']}" for c in charts) + f"; screenshot {path}")
    return charts


def main():
    url, admin_key, view_key, shots = sys.argv[1:5]
    os.makedirs(shots, exist_ok=True)
    seed(Api(url, admin_key))
    routes = json.loads(http_get(url, "/v1/openapi.json"))["paths"]
    has_history = any(p.endswith("/history") for p in routes)
    has_slices = any(p.endswith("/slices") for p in routes)

    problems = Problems()
    if not (has_history and has_slices):
        problems.add("server", "no history or slices route in /v1/openapi.json: the over-time and slice charts cannot be checked")
    driver = browser()
    try:
        # The key goes into session storage as the page's key box does; set
        # it on a page of the same origin first so that no request of the
        # dashboard goes out without it (a 401 would be a failed request).
        driver.get(url + "/ui/vendor/uplot/LICENSE")
        driver.execute_script("sessionStorage.setItem('posterior.apiKey', arguments[0])", view_key)
        driver.get(url + "/")
        if not driver.current_url.endswith("/ui/#/experiments"):
            problems.add("root", f"/ did not land on /ui/#/experiments but {driver.current_url}")

        check_page(driver, "experiments", set(), problems, shots)
        rows = len(driver.find_elements(By.CSS_SELECTOR, "table.list tbody tr"))
        if rows != 20:
            problems.add("experiments", f"{rows} rows on the first page, expected 20")
        # Sort by rewards, descending: checkout-button (920 rewards) first.
        click(driver, "//th[text()='rewards']")
        wait_rendered(driver, "experiments")
        click(driver, "//th[text()='rewards']")
        wait(driver,
            lambda d: d.find_element(By.CSS_SELECTOR, "table.list tbody tr td a").text == "checkout-button")
        # The second page: the two experiments left after 20 in name order.
        click(driver, "//button[contains(text(),'next')]")
        wait(driver,
            lambda d: "page 2" in d.find_element(By.CSS_SELECTOR, ".pager span").text)
        wait_rendered(driver, "experiments page 2")
        wait(driver,
            lambda d: len(d.find_elements(By.CSS_SELECTOR, "table.list tbody tr")) == 2)
        drain_logs(driver, "experiments page 2", problems)

        history = {"history-prob-best", "history-mean", "history-traffic", "history-rewards"} if has_history else set()
        driver.get(url + "/ui/#/experiments/checkout-button")
        check_page(driver, "experiment", {"density"} | history, problems, shots)
        # The threshold box: P(mean > 0.1) per arm appears in the table.
        box = driver.find_element(By.ID, "threshold")
        box.send_keys("0.1")
        driver.execute_script("arguments[0].dispatchEvent(new Event('change'))", box)
        wait(driver,
            lambda d: d.find_elements(By.XPATH, "//th[text()='P(mean > 0.1)']"))
        wait_rendered(driver, "experiment threshold")
        lift = driver.find_elements(By.XPATH, "//th[starts-with(text(),'lift vs control')]")
        if not lift:
            problems.add("experiment", "no lift column though the experiment has a control arm")
        check_page(driver, "experiment-threshold", {"density"} | history, problems, shots)

        driver.get(url + "/ui/#/experiments/latency-ms")
        # Its history is what the server recorded since it started: at most
        # a point or two, not yet charts.
        check_page(driver, "experiment-gaussian", {"density"}, problems, shots)

        driver.get(url + "/ui/#/studies")
        check_page(driver, "studies", set(), problems, shots)
        text = driver.find_element(By.ID, "main").text
        if "tune-cache" not in text or "30 (27 done, 3 failed, 0 pending)" not in text:
            problems.add("studies", "the study row does not show 30 trials (27 done, 3 failed)")

        driver.get(url + "/ui/#/studies/tune-cache")
        slices = {"slice-cache_mb", "slice-threads", "slice-policy"} if has_slices else set()
        calibration = {"calibration"} if has_slices else set()
        check_page(driver, "study", {"objective", "parallel-coordinates"} | slices | calibration,
                            problems, shots)

        driver.get(url + "/ui/#/studies/two-goals")
        check_page(driver, "study-two-objectives", {"objective", "parallel-coordinates"},
                   problems, shots)
        text = driver.find_element(By.ID, "main").text
        if "MINIMIZE f1, MAXIMIZE neg_f2" not in text:
            problems.add("study-two-objectives", "the objectives are not shown")
        driver.get(url + "/ui/#/studies/tune-cache")
        wait_rendered(driver, "study again")

        # Refreshes by itself: the status time changes without navigation.
        before = driver.find_element(By.ID, "status").text
        wait(driver,
            lambda d: d.find_element(By.ID, "status").text not in (before, "") and
            d.find_element(By.ID, "status").text.startswith("updated"))
        drain_logs(driver, "study refresh", problems)

        # Without a key: the API answers 401 and the page asks for one; the
        # key typed into the box is kept and the page renders. The 401s are
        # the expected failures here, and the only ones allowed.
        driver.execute_script("sessionStorage.clear()")
        # A hash change alone keeps the document: reload it.
        driver.get(url + "/ui/#/studies")
        driver.refresh()
        wait(driver, lambda d: "decide" in d.find_element(By.ID, "main").text)
        unexpected = Problems()
        drain_logs(driver, "no key", unexpected)
        for item in unexpected.items:
            if not ("401" in item and "/v1/" in item):
                problems.items.append(item)
        if not unexpected.items:
            problems.add("no key", "no 401 seen although the page had no key")
        box = driver.find_element(By.ID, "api-key")
        box.clear()
        box.send_keys(view_key)
        driver.execute_script("arguments[0].dispatchEvent(new Event('change'))", box)
        wait_rendered(driver, "key typed")
        if "tune-cache" not in driver.find_element(By.ID, "main").text:
            problems.add("key typed", "the studies did not show after typing the key")
        if driver.execute_script("return sessionStorage.getItem('posterior.apiKey')") != view_key:
            problems.add("key typed", "the key was not kept in session storage")
        drain_logs(driver, "key typed", problems)
    finally:
        driver.quit()
    if problems.items:
        print("dashboard problems:\n  " + "\n  ".join(problems.items), file=sys.stderr)
        sys.exit(1)
    print("dashboard: every page rendered, every chart drew, no console errors or failed requests")


def http_get(url, path):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request("GET", path)
    res = conn.getresponse()
    return res.read().decode()


if __name__ == "__main__":
    main()
