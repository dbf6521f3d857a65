"""The dashboard (GET / of the admin listener) in a real browser: headless Chromium from Debian's
`chromium` and `chromium-driver` packages, driven by selenium (paths given explicitly, so
selenium-manager never downloads anything). Signs in through the form with the root keys,
waits for the healthy cluster (3 nodes up), SIGKILLs a node and waits for the page to say so.
Screenshots: dashboard-healthy.png and dashboard-node-down.png in $TESSERA_ARTIFACTS, else
$CARGO_TARGET_DIR/admin-artifacts, else /tmp.

Run: python tests/admin/test_dashboard.py [test_name ...]   (see cluster.py for the environment)
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster import ACCESS_KEY, SECRET_KEY, artifacts_dir, run_module  # noqa: E402

CHROMIUM = os.environ.get("TESSERA_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("TESSERA_CHROMEDRIVER", "/usr/bin/chromedriver")
KILLED = "node3"
WAIT = 30  # seconds, for every wait on the page


def make_driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for p in (CHROMIUM, CHROMEDRIVER):
        assert Path(p).is_file(), f"{p} is missing: apt-get install chromium chromium-driver"
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
              "--disable-gpu", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
              "--no-proxy-server", "--force-device-scale-factor=1"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER, log_output=os.devnull)
    driver = webdriver.Chrome(options=opts, service=service)
    driver.set_page_load_timeout(WAIT)
    driver.set_window_size(1280, 900)
    return driver


def wait_for(driver, what, fn, timeout=WAIT):
    """Polls fn(driver) until truthy; on timeout an AssertionError with `what` and the page's
    banner, so a failure says what the page showed."""
    from selenium.common.exceptions import WebDriverException

    deadline = time.monotonic() + timeout
    while True:
        try:
            v = fn(driver)
            if v:
                return v
        except WebDriverException:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout} s, not true: {what}\n{page_state(driver)}")
        time.sleep(0.25)


def page_state(driver):
    def text(css):
        try:
            return driver.find_element("css selector", css).text
        except Exception:
            return "<missing>"
    out = [f"  #status: {text('#status')!r}", f"  #explain: {text('#explain')!r}",
           f"  #stale: {text('#stale')!r}", f"  #login-error: {text('#login-error')!r}",
           f"  #last-update: {text('#last-update')!r}", f"  nodes: {text('#nodes tbody')!r}"]
    try:
        for entry in driver.get_log("browser")[-20:]:
            out.append(f"  console: {entry.get('level')} {entry.get('message')}")
    except Exception:
        pass
    return "\n".join(out)


def node_states(driver):
    rows = driver.find_elements("css selector", "#nodes tr[data-node]")
    return {r.get_attribute("data-node"): r.get_attribute("data-state") for r in rows}


def attr(driver, css, name):
    return driver.find_element("css selector", css).get_attribute(name)


def shot(driver, name):
    path = artifacts_dir() / name
    driver.save_screenshot(str(path))
    print(f"    screenshot: {path}", flush=True)
    return path


def sign_in(driver, url, access_key, secret_key):
    driver.get(url + "/")
    wait_for(driver, "the sign-in form shows",
             lambda d: d.find_element("css selector", "#login").is_displayed())
    driver.find_element("css selector", "#access-key").send_keys(access_key)
    driver.find_element("css selector", "#secret-key").send_keys(secret_key)
    driver.find_element("css selector", "#login-submit").click()


def scenario(url, kill, node_names, killed=KILLED, access_key=ACCESS_KEY, secret_key=SECRET_KEY,
             admin_token=None):
    """The browser steps, against any admin listener at `url` (a real gateway, or a mock);
    kill() takes node `killed` down."""
    driver = make_driver()
    try:
        try:
            # Wrong keys: the form says so and stays.
            sign_in(driver, url, access_key, secret_key + "wrong")
            wait_for(driver, "a failed sign-in shows an error",
                     lambda d: d.find_element("css selector", "#login-error").text.strip())
            assert driver.find_element("css selector", "#login").is_displayed()
            assert not driver.find_element("css selector", "#app").is_displayed()

            if admin_token:
                # A token in the fragment signs in, and is cleared from the address.
                driver.get(url + "/#token=" + admin_token)
                wait_for(driver, "the dashboard shows data with the fragment token",
                         lambda d: len(node_states(d)) == len(node_names))
                assert "token" not in driver.current_url, driver.current_url
                driver.find_element("css selector", "#signout").click()
                wait_for(driver, "sign-out shows the form",
                         lambda d: d.find_element("css selector", "#login").is_displayed())

            sign_in(driver, url, access_key, secret_key)
            wait_for(driver, "#status is healthy and every node is up", lambda d: (
                attr(d, "#status", "data-status") == "healthy"
                and d.find_element("css selector", "#status").text.strip() == "healthy"
                and node_states(d) == {n: "up" for n in node_names}))
            drives = driver.find_elements("css selector", "#drives tr[data-drive]")
            assert len(drives) == 2 * len(node_names), len(drives)
            assert all(r.get_attribute("data-state") == "online" for r in drives)
            assert attr(driver, '#sets tr[data-set="0"]', "data-state") == "full"
            assert driver.find_element("css selector", "#last-update").text.strip() not in ("", "never")
            wait_for(driver, "the charts have two samples", lambda d: d.execute_script(
                "return samples.filter(s => s.rq !== undefined).length") >= 2)
            shot(driver, "dashboard-healthy.png")

            kill()
            wait_for(driver, f"{killed} shows down, #status not healthy, #explain names {killed}", lambda d: (
                node_states(d).get(killed) == "down"
                and attr(d, "#status", "data-status") not in ("healthy", "unknown")
                and killed in d.find_element("css selector", "#explain").text))
            status = attr(driver, "#status", "data-status")
            assert driver.find_element("css selector", "#status").text.strip() == status
            assert status == "at_risk", f"4 of 6 drives online should be at_risk, the page says {status}"
            states = node_states(driver)
            assert all(s == "up" for n, s in states.items() if n != killed), states
            assert attr(driver, '#sets tr[data-set="0"]', "data-state") == "degraded"
            offline = [r.get_attribute("data-drive") for r in
                       driver.find_elements("css selector", '#drives tr[data-state="offline"]')]
            assert len(offline) == 2, offline
            shot(driver, "dashboard-node-down.png")
        except BaseException:
            try:
                shot(driver, "dashboard-failure.png")
            except Exception:
                pass
            raise
    finally:
        driver.quit()


def test_dashboard_healthy_then_node_down(c):
    scenario(c.admin_url, lambda: c.kill_node(KILLED), c.node_names, admin_token=c.admin_token)


if __name__ == "__main__":
    sys.exit(run_module(globals()))
