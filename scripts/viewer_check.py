#!/usr/bin/env python3
"""Drives inferd's trace viewer (GET /debug) in headless Chromium and checks each view.

Run by tests/viewer.rs against a live `inferd serve` that has just served the requests named
on the command line. Uses Debian's /usr/bin/chromium and /usr/bin/chromedriver (named
explicitly, so Selenium Manager downloads nothing). Saves a screenshot of each view in --out
and prints its path. Exits non-zero, saying what was wrong, when a check fails.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

# Selenium Manager must not go looking for drivers or browsers on the network.
os.environ["SE_OFFLINE"] = "true"

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

MODEL = "smollm2-135m"


class CheckFailed(Exception):
    pass


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base", required=True, help="the server, e.g. http://127.0.0.1:8080")
    p.add_argument("--out", required=True, help="folder for the screenshots")
    p.add_argument("--chats", required=True, help="comma-separated trace ids of chat requests sent")
    p.add_argument("--not-found", required=True, help="trace id of a request for an unknown model (404)")
    p.add_argument("--batch", required=True, help="trace id of a model.batch linked to two requests")
    p.add_argument("--member", required=True, help="trace id of one of the batch's members")
    p.add_argument("--member-span", required=True, help="span id of that member's generation span")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    return p.parse_args()


def browser(args):
    options = webdriver.ChromeOptions()
    options.binary_location = args.chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=args.chromedriver))


def wait_for(driver, what, condition, seconds=20):
    try:
        # The page redraws a list whole: an element read while it did so is asked again.
        return WebDriverWait(driver, seconds, poll_frequency=0.2,
                             ignored_exceptions=[StaleElementReferenceException]).until(condition)
    except TimeoutException:
        raise CheckFailed(f"timed out waiting for {what}") from None


def listed_ids(driver):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#traces tbody tr'), r => r.dataset.traceId)")


def apply_filters(driver, **values):
    for field in ("route", "model", "status", "min"):
        box = driver.find_element(By.ID, "f-" + field)
        box.clear()
        if values.get(field):
            box.send_keys(values[field])
    errors = driver.find_element(By.ID, "f-error")
    if errors.is_selected() != bool(values.get("errors")):
        errors.click()
    driver.find_element(By.ID, "apply").click()


def shot(driver, out, name, printed):
    path = out / f"{name}.png"
    driver.save_screenshot(str(path))
    printed.append(str(path))


def rows(driver):
    return driver.find_elements(By.CSS_SELECTOR, "#waterfall .row")


def check(driver, args, out, printed):
    base = args.base.rstrip("/")
    chats = [c for c in args.chats.split(",") if c]

    # (1) The list shows the requests just sent, with the generation at a glance.
    driver.get(base + "/debug")
    wait_for(driver, "the sent requests in the list",
             lambda d: all(c in listed_ids(d) for c in chats + [args.not_found]))
    row = driver.find_element(By.CSS_SELECTOR, f'#traces tr[data-trace-id="{chats[0]}"]')
    cells = {c.get_attribute("data-label"): c.text for c in row.find_elements(By.TAG_NAME, "td")}
    if cells.get("name") != "POST /v1/chat/completions" or cells.get("status") != "200":
        raise CheckFailed(f"chat row shows {cells}")
    if cells.get("model") != MODEL or not cells.get("TTFT") or "/" not in cells.get("tokens", ""):
        raise CheckFailed(f"chat row lacks model, TTFT or tokens: {cells}")
    shot(driver, out, "1-list", printed)

    # A filter narrows the list: route and status, then errors only, then sorting.
    apply_filters(driver, route="/v1/chat/completions", status="404")
    wait_for(driver, "the 404 filter", lambda d: listed_ids(d) == [args.not_found])
    shot(driver, out, "2-list-filtered-404", printed)
    apply_filters(driver, route="/v1/chat/completions", model=MODEL, status="2xx")
    wait_for(driver, "the model filter",
             lambda d: set(chats) <= set(listed_ids(d)) and args.not_found not in listed_ids(d))
    apply_filters(driver, errors=True)
    wait_for(driver, "the errors-only filter", lambda d: args.not_found in listed_ids(d)
             and not set(chats) & set(listed_ids(d)))
    apply_filters(driver)
    sort = driver.find_element(By.ID, "f-sort")
    sort.find_element(By.CSS_SELECTOR, 'option[value="duration"]').click()

    def longest_first(d):
        durations = [int(r.get_attribute("data-duration"))
                     for r in d.find_elements(By.CSS_SELECTOR, "#traces tbody tr")]
        return len(durations) > 3 and durations == sorted(durations, reverse=True)
    wait_for(driver, "the list sorted by duration", longest_first)
    sort.find_element(By.CSS_SELECTOR, 'option[value="time"]').click()

    # (2) One trace as a waterfall: spans in start order, indented by parent, with attributes.
    wait_for(driver, "the list back", lambda d: chats[0] in listed_ids(d))
    driver.find_element(By.CSS_SELECTOR, f'#traces tr[data-trace-id="{chats[0]}"] a').click()
    wait_for(driver, "the waterfall", lambda d: len(rows(d)) >= 4)
    names = [r.get_attribute("data-name") for r in rows(driver)]
    depth = {r.get_attribute("data-name"): int(r.get_attribute("data-depth")) for r in rows(driver)}
    expected = ["POST /v1/chat/completions", f"chat {MODEL}", "model.queue", "model.infer"]
    if [n for n in names if n in expected] != expected:
        raise CheckFailed(f"waterfall order {names}, expected {expected} in this order")
    if (depth[expected[0]], depth[expected[1]], depth["model.queue"], depth["model.infer"]) != (0, 1, 2, 2):
        raise CheckFailed(f"waterfall depths {depth}")
    bars = [r.find_element(By.CLASS_NAME, "bar") for r in rows(driver)]
    if not bars[0].size["width"] >= max(b.size["width"] for b in bars) > 0:
        raise CheckFailed("the root span's bar is not the widest")
    glance = driver.find_element(By.ID, "glance").text
    if "TTFT" not in glance or "tokens in" not in glance:
        raise CheckFailed(f"no TTFT / tokens at a glance: {glance!r}")
    detail = driver.find_element(By.ID, "span-detail").text
    if "http.route" not in detail or "/v1/chat/completions" not in detail:
        raise CheckFailed(f"root span's attributes missing: {detail!r}")
    generation = next(r for r in rows(driver) if r.get_attribute("data-name") == f"chat {MODEL}")
    generation.click()
    wait_for(driver, "the generation span's attributes",
             lambda d: "gen_ai.usage.output_tokens" in d.find_element(By.ID, "span-detail").text)
    detail = driver.find_element(By.ID, "span-detail").text
    if "first_token" not in detail or "gen_ai.response.time_to_first_chunk" not in detail:
        raise CheckFailed(f"generation span's events or attributes missing: {detail!r}")
    shot(driver, out, "3-trace-waterfall", printed)

    # (3) The log lines that carry the trace id, the access line among them.
    log_rows = driver.find_elements(By.CSS_SELECTOR, "#logs tbody tr")
    log_text = driver.find_element(By.ID, "logs").text
    if not log_rows or "inferd::access" not in log_text or "request" not in log_text:
        raise CheckFailed(f"log lines missing: {log_text!r}")
    driver.execute_script("document.getElementById('logs').scrollIntoView()")
    shot(driver, out, "4-trace-logs", printed)

    # A model.batch span's link opens the member request's trace, its span selected.
    driver.get(f"{base}/debug#trace={args.batch}")
    wait_for(driver, "the batch trace", lambda d: any(
        r.get_attribute("data-name") == "model.batch" for r in rows(d)))
    batch = next(r for r in rows(driver) if r.get_attribute("data-name") == "model.batch"
                 and "2 links" in r.text)
    batch.click()
    links = wait_for(driver, "the batch span's links",
                     lambda d: d.find_elements(By.CSS_SELECTOR, "#links a.link"))
    if len(links) < 2:
        raise CheckFailed(f"batch span shows {len(links)} links")
    shot(driver, out, "5-batch-links", printed)
    target = next((a for a in links if args.member in a.get_attribute("href")), None)
    if target is None:
        raise CheckFailed(f"no link to {args.member}: {[a.get_attribute('href') for a in links]}")
    target.click()
    wait_for(driver, "the member's trace", lambda d: f"trace={args.member}" in d.current_url
             and any(r.get_attribute("data-name") == f"chat {MODEL}" for r in rows(d)))
    selected = wait_for(driver, "the linked span selected",
                        lambda d: d.find_elements(By.CSS_SELECTOR, "#waterfall .row.sel"))
    if selected[0].get_attribute("data-span-id") != args.member_span:
        raise CheckFailed("the linked span is not the one selected")
    shot(driver, out, "6-batch-member", printed)

    # (4) The engine panel: slots and a tokens/s figure from two readings.
    # The panel redraws its cards every few seconds: each reading finds the card afresh.
    card = f'#engine [data-model="{MODEL}"]'

    def reading(d, stat):
        return d.find_element(By.CSS_SELECTOR, f'{card} [data-stat="{stat}"]').text

    def tokens_per_second(d):
        text = reading(d, "tokens/s")
        return text if text.replace(".", "", 1).isdigit() else None
    wait_for(driver, "the engine panel", lambda d: d.find_elements(By.CSS_SELECTOR, card))
    stats = wait_for(driver, "a tokens/s reading", tokens_per_second, seconds=15)
    slots = wait_for(driver, "the slots reading", lambda d: reading(d, "slots busy"))
    if not slots.endswith("/ 2"):
        raise CheckFailed(f"slots shown as {slots!r}, expected out of 2")
    printed.append(f"engine: slots {slots}, tokens/s {stats}")
    driver.find_element(By.ID, "engine-panel").screenshot(str(out / "7-engine.png"))
    printed.append(str(out / "7-engine.png"))

    # Readable on a phone: the list becomes cards, nothing wider than the screen.
    driver.set_window_size(390, 844)
    driver.get(base + "/debug")
    wait_for(driver, "the list on a phone", lambda d: chats[0] in listed_ids(d))
    header = driver.find_element(By.CSS_SELECTOR, "#traces thead")
    if header.is_displayed():
        raise CheckFailed("the list keeps its table header on a phone")
    width = driver.execute_script("return document.documentElement.scrollWidth")
    if width > 400:
        raise CheckFailed(f"the page is {width}px wide on a 390px screen")
    shot(driver, out, "8-phone-list", printed)

    # The page ran without a script error or a blocked resource (CSP violations are logged).
    errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    if errors:
        raise CheckFailed("browser errors: " + json.dumps(errors))


def main():
    args = parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    printed = []
    driver = browser(args)
    try:
        check(driver, args, out, printed)
    except CheckFailed as failure:
        shot(driver, out, "failure", printed)
        print("\n".join(printed))
        print(f"viewer check FAILED: {failure}", file=sys.stderr)
        return 1
    finally:
        driver.quit()
    print("\n".join(printed))
    print("viewer check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
