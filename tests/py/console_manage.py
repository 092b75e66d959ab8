"""The guide's console steps in real Chromium through WebDriver (selenium + Debian's
chromium-driver), driven by tests/tests/management_console.rs, which starts chromedriver, the
gateway and server-everything, and checks with the official TypeScript SDK client between phases.

Usage: python console_manage.py <chromedriver-url> <admin-url> <token> <upstream-url> <phase> <shots-dir>

Phases:
  create   sign in, open "Manage APIs", create the API "everything" for the upstream (a taken
           path first: the loader's message must show inline under the field), load the live
           tools, add the rule "Tools: tools/list only", deploy, land on the traffic view.
  literal  sign in, open the API, change the rule to one LITERAL tool (echo) with list and call
           (an invalid EXPRESSION first: the inline error), check the live preview, deploy, land.

Prints one JSON object of observations on stdout; exits non-zero (with the reason) on failure.
"""

import json
import traceback
import sys
import tempfile

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

WAIT_S = 30


def main():
    driver_url, admin, token, upstream, phase, shots = sys.argv[1:7]
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking", "--window-size=1500,2200",
                "--user-data-dir=" + tempfile.mkdtemp(prefix="mcpgate-webdriver-")):
        options.add_argument(arg)
    driver = webdriver.Remote(command_executor=driver_url, options=options)
    out = {"phase": phase, "shots": shots}
    try:
        # The pages re-render parts of themselves (and deploying navigates to the traffic
        # console): an element found a moment ago may be gone, or the page between two
        # documents; a condition that raised is re-checked until the deadline.
        wait = WebDriverWait(driver, WAIT_S, ignored_exceptions=(WebDriverException,))
        # Sign in through the login page (the token never reaches the server in the URL: it
        # is in the fragment, and the page posts it as a bearer header).
        driver.get(admin + "/login#token=" + token)
        wait.until(lambda d: d.current_url.rstrip("/") == admin and d.find_elements(By.ID, "manage-link"))
        driver.find_element(By.ID, "manage-link").click()
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
        if phase == "create":
            create(driver, wait, upstream, out)
        elif phase == "literal":
            literal(driver, wait, out)
        else:
            raise SystemExit("unknown phase " + phase)
        driver.save_screenshot(shots + "/manage-" + phase + "-landed.png")
    except Exception as error:  # the Rust side prints this with the driver's output
        try:
            driver.save_screenshot(shots + "/manage-" + phase + "-failed.png")
            out["page"] = driver.find_element(By.TAG_NAME, "body").text[:4000]
        except Exception:
            pass
        out["error"] = "%s: %s" % (type(error).__name__, error)
        out["at"] = traceback.format_exc(limit=-3)
    finally:
        driver.quit()
    print(json.dumps(out))
    sys.exit(1 if "error" in out else 0)


def typed(driver, element_id, text):
    field = driver.find_element(By.ID, element_id)
    replace_text(field, text)
    return field


def replace_text(field, text):
    # Select what is there and type over it, as a person would (clear() fires no input event).
    field.click()
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.DELETE)
    field.send_keys(text)
    if field.get_attribute("value") != text:
        raise AssertionError("typed %r, the field holds %r" % (text, field.get_attribute("value")))


def rule_card(driver, index):
    return driver.find_elements(By.CSS_SELECTOR, "#rules .rule")[index]


def live_rows(driver):
    rows = {}
    for tr in driver.find_elements(By.CSS_SELECTOR, "#live-table tbody tr[data-kind=tools]"):
        rows[tr.get_attribute("data-name")] = (tr.get_attribute("data-listed"), tr.get_attribute("data-callable"))
    return rows


def deploy_and_land(driver, wait, out, name):
    driver.save_screenshot(out["shots"] + "/manage-" + out["phase"] + "-form.png")
    driver.find_element(By.ID, "deploy").click()
    wait.until(lambda d: d.current_url.endswith("/#api=" + name)
               or d.find_element(By.ID, "status").text == "Not deployed.")
    if not driver.current_url.endswith("/#api=" + name):
        raise AssertionError("not deployed: " + driver.find_element(By.ID, "messages").text)
    # The traffic console, on this API.
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-api") == name)
    out["landed"] = driver.current_url
    out["traffic_view"] = wait.until(
        lambda d: d.find_element(By.ID, "empty-title").text or d.find_element(By.ID, "api-tabs").text)


def create(driver, wait, upstream, out):
    driver.find_element(By.ID, "new-api").click()
    typed(driver, "f-name", "everything")
    # Client-side inline validation: a path without its slash.
    typed(driver, "f-path", "everything")
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".field-error[data-for=path]").text)
    out["inline_client"] = driver.find_element(By.CSS_SELECTOR, ".field-error[data-for=path]").text
    # Server-side inline validation: the path another API has (the loader's message).
    typed(driver, "f-path", "/placeholder")
    typed(driver, "f-upstream", upstream)
    Select(driver.find_element(By.ID, "f-plan")).select_by_value("keyless")
    driver.find_element(By.ID, "validate").click()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".field-error[data-for=path]").text)
    out["inline_server"] = driver.find_element(By.CSS_SELECTOR, ".field-error[data-for=path]").text
    typed(driver, "f-path", "/everything")
    # The live tools, then the rule "Tools: tools/list only".
    driver.find_element(By.ID, "live-load").click()
    wait.until(lambda d: len(live_rows(d)) > 0)
    out["live_tools"] = sorted(live_rows(driver))
    driver.find_element(By.ID, "acl-enabled").click()
    driver.find_element(By.ID, "add-rule").click()
    card = rule_card(driver, 0)
    Select(card.find_element(By.CSS_SELECTOR, ".r-type")).select_by_value("TOOLS")
    if not card.find_element(By.CSS_SELECTOR, ".r-list").is_selected():
        card.find_element(By.CSS_SELECTOR, ".r-list").click()
    if card.find_element(By.CSS_SELECTOR, ".r-call").is_selected():
        card.find_element(By.CSS_SELECTOR, ".r-call").click()
    Select(card.find_element(By.CSS_SELECTOR, ".r-ptype")).select_by_value("ANY")
    out["preview"] = card.find_element(By.CSS_SELECTOR, ".r-preview").text
    out["preview_rows"] = live_rows(driver)
    driver.find_element(By.ID, "validate").click()
    wait.until(lambda d: d.find_element(By.ID, "status").text in ("Valid.", "Not valid."))
    out["validated"] = driver.find_element(By.ID, "status").text
    out["diff"] = driver.find_element(By.ID, "diff").text
    deploy_and_land(driver, wait, out, "everything")


def literal(driver, wait, out):
    driver.find_element(By.CSS_SELECTOR, "#api-list button[data-api=everything]").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#rules .rule"))
    driver.find_element(By.ID, "live-load").click()
    wait.until(lambda d: len(live_rows(d)) > 0)
    card = rule_card(driver, 0)
    # An invalid regular expression is refused inline before anything is sent.
    Select(card.find_element(By.CSS_SELECTOR, ".r-ptype")).select_by_value("EXPRESSION")
    pattern = card.find_element(By.CSS_SELECTOR, ".r-pattern")
    replace_text(pattern, "(echo")
    wait.until(lambda d: rule_card(d, 0).find_element(By.CSS_SELECTOR, ".r-error").text)
    out["inline_rule"] = card.find_element(By.CSS_SELECTOR, ".r-error").text
    # The guide's "one literal tool": echo, listed and callable.
    Select(card.find_element(By.CSS_SELECTOR, ".r-ptype")).select_by_value("LITERAL")
    replace_text(pattern, "echo")
    if not card.find_element(By.CSS_SELECTOR, ".r-call").is_selected():
        card.find_element(By.CSS_SELECTOR, ".r-call").click()
    wait.until(lambda d: "1 of" in rule_card(d, 0).find_element(By.CSS_SELECTOR, ".r-preview").text)
    out["preview"] = card.find_element(By.CSS_SELECTOR, ".r-preview").text
    out["preview_rows"] = live_rows(driver)
    deploy_and_land(driver, wait, out, "everything")


if __name__ == "__main__":
    main()
