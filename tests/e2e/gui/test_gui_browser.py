"""The web GUI in a real browser (Debian's Chromium via Playwright) against a real daemon.

One lab in "tof" mode (real UEs, eNBs, SGWs, PDN, two static edge apps) and one daemon running
the TOF (userspace backend) on the lab's S1 segment and the instance manager with an ``apps``
network on the lab's apps bridge. The tests run in file order and share the daemon: log in,
watch live counters move while UEs send traffic, manage a service through forms and watch the
UE's answers move between the edge apps and the PDN, create/pause/resume/delete an instance,
and check the security properties (wrong token, CSRF, CSP) from the browser's side. Every page
visited is checked for labelled controls and readable contrast, and screenshotted.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from fluidedge.core.client import Client, ClientError
from fluidedge.lab.lab import Lab
from fluidedge.tof.launch import lab_instances_section, s1_pairs, wait_s1_ready
from tests.e2e.instances.conftest import purge_daemon
from tests.e2e.tof.conftest import SERVICE_IP, lab_config, tof_section
from tests.fixtures.browser import Browsers, shot
from tests.fixtures.daemon import TOKEN, DaemonHandle, _free_port
from tests.fixtures.wait import wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]

_COUNTER = itertools.count()
TIMEOUT_MS = 20_000

# Every form control has a label (or an aria-label); every button has a name.
UNLABELLED = """() => Array.from(document.querySelectorAll(
    'input:not([type=hidden]), select, textarea, button')).filter(el => {
  if (el.tagName === 'BUTTON') return !(el.textContent.trim() || el.getAttribute('aria-label'));
  return !((el.labels && el.labels.length) || el.getAttribute('aria-label'));
}).map(el => el.outerHTML.slice(0, 160))"""

# The lowest WCAG contrast ratio of text against its effective background, over the texts of
# headings, table cells, links, buttons, labels and paragraphs on the page.
MIN_CONTRAST = """() => {
  const rgb = s => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = c => { const v = c.slice(0, 3).map(x => { x /= 255;
      return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); });
    return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
  const bg = el => { for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c; }
    return [255, 255, 255]; };
  let worst = 99, where = '';
  for (const el of document.querySelectorAll('h1,h2,th,td,a,button,label,p,span.v,dd')) {
    if (!el.textContent.trim() || !el.offsetParent) continue;
    const a = lum(rgb(getComputedStyle(el).color)), b = lum(bg(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < worst) { worst = ratio; where = el.outerHTML.slice(0, 100); }
  }
  return [worst, where];
}"""


@dataclass
class GuiEnv:
    lab: Lab
    daemon: DaemonHandle
    client: Client
    browser: Any
    runs_dir: Path

    @property
    def ui(self) -> str:
        return f"{self.daemon.url}/ui"

    def http(self, ue: str, address: str) -> str:
        result = self.lab.run(ue, ["curl", "-s", "-m", "3", f"http://{address}/"], timeout=10)
        return result.stdout if result.returncode == 0 else f"<curl exit {result.returncode}>"


def _daemon(tmp: Path, lab: Lab, runs_dir: Path) -> DaemonHandle:
    config: dict[str, Any] = {
        "state_dir": str(tmp / "state"),
        "api": {"listen": "127.0.0.1", "port": _free_port(), "token": TOKEN},
        "gui": {"runs_dir": str(runs_dir), "live_interval_s": 0.25},
        "instances": lab_instances_section(lab, pool_scale=0.5),
        "tof": tof_section(lab),
    }
    handle = DaemonHandle(tmp, config)
    handle.start()
    return handle


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuiEnv]:
    tmp = tmp_path_factory.mktemp("gui")
    lab = Lab.up(lab_config(), prefix=f"gui{os.getpid() % 100000}{next(_COUNTER)}", mode="tof")
    daemon: DaemonHandle | None = None
    browsers = Browsers()
    try:
        lab.run("pdn", ["ip", "addr", "add", f"{SERVICE_IP}/24", "dev", "br0"], check=True)
        runs_dir = tmp / "runs"
        daemon = _daemon(tmp, lab, runs_dir)
        client = daemon.client()
        assert wait_s1_ready(client, s1_pairs(lab)), "no echo crossed the TOF"
        yield GuiEnv(lab, daemon, client, browsers.open(), runs_dir)
        client.close()
    finally:
        browsers.close()  # before anything that uses netlink (see Browsers)
        if daemon is not None:
            daemon.stop()
            log = daemon.log()
            purge_daemon(daemon)
            assert TOKEN not in log, "the token appeared in the daemon's log"
        lab.down()


def _page(env: GuiEnv) -> Any:
    pages = env.browser.pages
    page = pages[0] if pages else env.browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return page


def _check_page(page: Any, name: str) -> None:
    """Labels, contrast and a screenshot for the page shown."""
    assert page.evaluate(UNLABELLED) == [], name
    worst, where = page.evaluate(MIN_CONTRAST)
    assert worst >= 4.5, f"{name}: contrast {worst:.2f} at {where}"
    shot(page, name)


def _login(env: GuiEnv, page: Any) -> None:
    page.goto(f"{env.ui}/")
    assert page.url.endswith("/ui/login")
    page.get_by_label("API token").fill(TOKEN)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{env.ui}/")


# ---------------------------------------------------------------------------------- security


def test_wrong_token_is_refused_and_the_right_one_logs_in(env: GuiEnv) -> None:
    page = _page(env)
    page.goto(f"{env.ui}/tof")
    assert page.url.endswith("/ui/login")  # no session: every page sends to the login
    _check_page(page, "login")
    page.get_by_label("API token").fill("not-the-token-" + "x" * 20)
    page.get_by_role("button", name="Log in").click()
    error = page.locator("#e-token")
    assert "not the daemon's API token" in error.inner_text()
    assert page.url.endswith("/ui/login")
    assert not [c for c in env.browser.cookies() if c["name"] == "fe_session"]
    page.get_by_label("API token").fill(TOKEN)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{env.ui}/")
    session = [c for c in env.browser.cookies() if c["name"] == "fe_session"]
    assert session
    assert session[0]["httpOnly"]
    assert session[0]["sameSite"] == "Strict"
    assert TOKEN not in session[0]["value"]
    assert TOKEN not in page.content()
    assert page.evaluate("document.cookie") == ""  # HttpOnly: not readable by scripts


def test_csrf_without_the_token_is_refused(env: GuiEnv) -> None:
    page = _page(env)
    page.goto(f"{env.ui}/tof")
    body = {"name": "csrf-test", "serviceIP": "198.18.60.1", "applicationIP": "198.19.0.10"}
    # The browser's own session cookie, but no (or a wrong) CSRF token in the form.
    for form in (body, {**body, "csrf": "forged"}):
        answer = page.request.post(f"{env.ui}/tof/services", form=form, max_redirects=0)
        assert answer.status == 403
        assert "CSRF" in answer.text()
    # A cross-site form post (another Origin) is refused even with the right token.
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    answer = page.request.post(
        f"{env.ui}/tof/services",
        form={**body, "csrf": csrf},
        headers={"Origin": "http://evil.example"},
        max_redirects=0,
    )
    assert answer.status == 403
    assert env.client.get("/service") == []  # nothing was created


def test_responses_carry_a_content_security_policy(env: GuiEnv) -> None:
    page = _page(env)
    response = page.goto(f"{env.ui}/")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    # The policy is enforced: an inline script injected into the page does not run.
    blocked = page.evaluate(
        """() => new Promise(resolve => {
            document.addEventListener('securitypolicyviolation', () => resolve(true));
            const s = document.createElement('script');
            s.textContent = 'window.__inline = 1';
            document.body.appendChild(s);
            setTimeout(() => resolve(window.__inline === undefined), 1000);
        })"""
    )
    assert blocked


# ---------------------------------------------------------------------------------- TOF


def test_wrong_input_shows_the_api_reason_at_the_field(env: GuiEnv) -> None:
    page = _page(env)
    page.goto(f"{env.ui}/tof")
    page.get_by_label("Name").fill("web")
    page.get_by_label("Service IP (what UEs address)").fill("198.18.500.1")
    page.get_by_label("Application IP (the edge app)").fill("198.19.0.10")
    page.get_by_role("button", name="Add service").click()
    shown = page.locator("#e-serviceIP").inner_text()
    with pytest.raises(ClientError) as api:
        env.client.post(
            "/service",
            {"name": "web", "serviceIP": "198.18.500.1", "applicationIP": "198.19.0.10"},
        )
    assert api.value.status == 400
    assert shown
    assert shown in api.value.detail
    assert page.get_by_label("Service IP (what UEs address)").get_attribute("aria-invalid")
    assert page.get_by_label("Name").input_value() == "web"  # the input is kept
    _check_page(page, "tof-invalid")
    assert env.client.get("/service") == []


def test_service_add_edit_delete_moves_the_ue_between_edge_and_pdn(env: GuiEnv) -> None:
    page = _page(env)
    assert "pdn" in env.http("ue1", SERVICE_IP)
    page.goto(f"{env.ui}/tof")
    page.get_by_label("Name").fill("web")
    page.get_by_label("Service IP (what UEs address)").fill(SERVICE_IP)
    page.get_by_label("Application IP (the edge app)").fill("198.19.0.10")
    page.get_by_role("button", name="Add service").click()
    assert "service web added" in page.locator(".flash").inner_text()
    assert "edge-app app1 198.19.0.10" in env.http("ue1", SERVICE_IP)
    _check_page(page, "tof-services")
    page.get_by_role("link", name="Edit service web").click()
    page.get_by_label("Application IP").fill("198.19.0.11")
    page.get_by_role("button", name="Save").click()
    assert "service web updated" in page.locator(".flash").inner_text()
    assert "edge-app app2 198.19.0.11" in env.http("ue2", SERVICE_IP)
    assert env.client.get("/service") == [
        {"name": "web", "serviceIP": SERVICE_IP, "applicationIP": "198.19.0.11"}
    ]
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()
    assert "service web deleted" in page.locator(".flash").inner_text()
    assert "pdn 198.18.200.10" in env.http("ue2", SERVICE_IP)
    assert env.client.get("/service") == []


def _traffic(env: GuiEnv, ue: str, target: str, stop: threading.Event) -> threading.Thread:
    def loop() -> None:
        while not stop.is_set():
            env.lab.run(ue, ["curl", "-s", "-m", "2", f"http://{target}/"], timeout=10)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def _changes_live(page: Any, element_id: str, env: GuiEnv, ue: str, target: str) -> None:
    """The element's text changes while ``ue`` sends traffic, without a page load."""
    page.locator(f"#{element_id}").wait_for()
    before = page.locator(f"#{element_id}").inner_text()
    page.evaluate("window.__sameDocument = true")
    stop = threading.Event()
    thread = _traffic(env, ue, target, stop)
    try:
        page.wait_for_function(
            "([id, before]) => document.getElementById(id).textContent !== before",
            arg=[element_id, before],
        )
    finally:
        stop.set()
        thread.join()
    assert page.evaluate("window.__sameDocument") is True  # updated in place, not reloaded
    assert page.locator(f"#{element_id}").inner_text() != before


def test_live_counters_change_while_ues_send_traffic(env: GuiEnv) -> None:
    page = _page(env)
    env.client.post(
        "/service", {"name": "live", "serviceIP": SERVICE_IP, "applicationIP": "198.19.0.10"}
    )
    try:
        page.goto(f"{env.ui}/")
        _changes_live(page, "svc-live-upPackets", env, "ue3", SERVICE_IP)
        page.locator("#live-state").filter(has_text="live:").wait_for()
        _check_page(page, "overview")
        # The tunnels page: the UE's bearer row counts its packets live.
        env.http("ue4", str(env.lab.pdn_address))
        page.goto(f"{env.ui}/tof/tunnels?q=198.18.100.4")
        assert page.locator("#tunnels tbody tr").count() == 1
        row_id = page.locator("#tunnels tbody td[id$='-ul']").first.get_attribute("id")
        _changes_live(page, row_id, env, "ue4", str(env.lab.pdn_address))
        page.goto(f"{env.ui}/tof/tunnels")
        assert page.locator("#tunnels tbody tr").count() == len(env.client.get("/tunnels"))
        _check_page(page, "tunnels")
        page.goto(f"{env.ui}/tof/tunnels?q=not-an-address")
        assert "not an IP address" in page.locator("#q-error").inner_text()
    finally:
        env.client.delete("/service/live")


def test_purge_forgets_the_tunnels(env: GuiEnv) -> None:
    page = _page(env)
    page.goto(f"{env.ui}/tof/tunnels")
    before = len(env.client.get("/tunnels"))
    assert before > 0
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Purge all tunnels").click()
    assert f"{before} tunnel(s) purged" in page.locator(".flash").inner_text()
    assert int(page.locator("#tun-total").inner_text()) < before
    page.goto(f"{env.ui}/tof/events")
    assert page.locator("h1").inner_text() == "Bearer events"  # with or without the log API
    _check_page(page, "events")


# ---------------------------------------------------------------------------------- instances


def test_template_and_instance_lifecycle_with_its_breakdown_chart(env: GuiEnv) -> None:
    page = _page(env)
    page.goto(f"{env.ui}/templates")
    page.get_by_label("Name", exact=True).fill("gui-web")
    page.get_by_label("Description").fill("busybox httpd for the GUI test")
    page.get_by_label("Command (one argument per line, absolute path first)").fill(
        "/bin/busybox\nhttpd\n-f\n-p\n8080\n-h\n/.fe/www"
    )
    page.get_by_label("Files under /.fe/").fill("www/index.html=gui instance {name}")
    page.get_by_label("Interfaces").fill("eth0 apps")
    page.get_by_label("Readiness", exact=True).select_option("tcp")
    page.get_by_label("Readiness TCP port").fill("8080")
    page.get_by_label("Warm pool size").fill("1")
    page.get_by_role("button", name="Create template").click()
    assert "template gui-web created" in page.locator(".flash").inner_text()
    _check_page(page, "templates")
    # The instance form is built from the template: one fieldset per interface.
    page.goto(f"{env.ui}/instances/new?template=gui-web")
    assert page.get_by_text("Interface eth0 on network apps").count() == 1
    page.get_by_label("Instance name").fill("web1")
    page.get_by_label("Addresses (with prefix length)").fill("198.19.0.30")  # no prefix: 400
    page.get_by_role("button", name="Create instance").click()
    shown = page.locator("[id='e-interfaces_eth0_addresses']").inner_text()
    with pytest.raises(ClientError) as api:
        env.client.post(
            "/v1/instances",
            {
                "name": "web1",
                "template": "gui-web",
                "interfaces": {"eth0": {"addresses": ["198.19.0.30"]}},
            },
        )
    assert api.value.status == 400
    assert shown
    assert shown in api.value.detail
    _check_page(page, "instance-new")
    page.get_by_label("Addresses (with prefix length)").fill("198.19.0.30/24")
    page.get_by_label("Gateway").fill(str(env.lab.apps_gateway))
    page.get_by_role("button", name="Create instance").click()
    page.wait_for_url(f"{env.ui}/instances/web1")
    assert "instance web1 created" in page.locator(".flash").inner_text()
    view = env.client.get("/v1/instances/web1")
    assert view["state"] == "running"
    # The breakdown chart: one bar per phase, labelled with the API's own timings.
    chart = page.locator("figure.chart svg")
    assert chart.locator("rect").count() >= 7
    total = f"{view['timing']['total']:.2f} ms"
    assert total in chart.text_content()
    assert f"{view['timing']['ready']:.2f} ms" in chart.text_content()
    _check_page(page, "instance")
    page.get_by_role("button", name="Pause").click()
    assert page.locator("#inst-web1-state").inner_text() == "paused"
    assert env.client.get("/v1/instances/web1")["state"] == "paused"
    page.get_by_role("button", name="Resume").click()
    assert page.locator("#inst-web1-state").inner_text() == "running"
    assert env.client.get("/v1/instances/web1")["state"] == "running"
    page.goto(f"{env.ui}/instances")
    assert page.locator("#inst-web1-state").inner_text() == "running"
    _check_page(page, "instances")
    page.goto(f"{env.ui}/instances/web1")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()
    page.wait_for_url(f"{env.ui}/instances")
    assert "instance web1 deleted" in page.locator(".flash").inner_text()
    with pytest.raises(ClientError) as gone:
        env.client.get("/v1/instances/web1")
    assert gone.value.status == 404


def test_networks_create_inspect_delete(env: GuiEnv) -> None:
    page = _page(env)
    page.goto(f"{env.ui}/networks")
    bridge = f"guibr{os.getpid() % 10000}"
    page.get_by_label("Name", exact=True).fill("guinet")
    page.get_by_label("Linux bridge").fill(bridge)
    page.get_by_label("Network namespace (optional)").fill(env.lab.host_ns)
    page.get_by_label("Subnet (optional)").fill("198.51.100.0/24")
    page.get_by_role("button", name="Create network").click()
    assert "network guinet created" in page.locator(".flash").inner_text()
    _check_page(page, "networks")
    page.get_by_role("link", name="guinet").click()
    assert '"bridge": "' + bridge in page.locator("pre.json").inner_text()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete network").click()
    assert "network guinet deleted" in page.locator(".flash").inner_text()
    assert "guinet" not in [n["name"] for n in env.client.get("/v1/networks")]


# ---------------------------------------------------------------------------------- measurements


def test_measurement_runs_are_browsable(env: GuiEnv) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fluidedge",
            "bench",
            "instantiate",
            "--template",
            "idle",
            "--runs",
            "3",
            "--runs-dir",
            str(env.runs_dir),
            "--url",
            env.daemon.url,
            "--token",
            TOKEN,
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    page = _page(env)
    page.goto(f"{env.ui}/measurements")
    link = page.locator("tbody th a").first
    run = link.inner_text()
    assert run.endswith("-instantiate")
    link.click()
    image = page.locator("figure img").first
    image.wait_for()
    assert page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
    )
    assert "ready" in page.locator(".report").inner_text()
    _check_page(page, "measurements")
    # Raw files are served by name from the run's own listing, never by a joined path.
    page_cookies = {c["name"]: c["value"] for c in env.browser.cookies()}
    for bad in ("..%2Fstate%2Ffluidedge.sqlite", "results.json.bak"):
        answer = httpx.get(
            f"{env.ui}/measurements/{run}/files/{bad}", cookies=page_cookies, timeout=5
        )
        assert answer.status_code == 404


# ---------------------------------------------------------------------------------- layout


def test_keyboard_and_narrow_screen(env: GuiEnv) -> None:
    page = _page(env)
    page.goto(f"{env.ui}/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.keyboard.press("Tab")  # the first control of the content, not back to the header
    inside = page.evaluate("document.getElementById('main').contains(document.activeElement)")
    assert inside
    narrow = env.browser.new_page()
    narrow.set_viewport_size({"width": 390, "height": 844})
    try:
        for path, name in (("/", "overview-narrow"), ("/tof/tunnels", "tunnels-narrow")):
            narrow.goto(f"{env.ui}{path}")
            overflow = narrow.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, f"{path}: the page scrolls sideways by {overflow}px"
            shot(narrow, name)
    finally:
        narrow.close()


def test_logout_ends_the_session(env: GuiEnv) -> None:
    page = _page(env)
    page.goto(f"{env.ui}/")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{env.ui}/login")
    page.goto(f"{env.ui}/instances")
    assert page.url.endswith("/ui/login")
    assert wait_until(lambda: env.daemon.process is not None and env.daemon.process.poll() is None)
