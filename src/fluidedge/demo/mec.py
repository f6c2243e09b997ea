"""``fluidedge demo --mec``: the demo's service is an ME app, deployed through the ME platform.

The daemon runs the TOF, the instance manager, security groups and the ME platform
(``[mec]``, docs/me-platform.md). Its platform network is a Linux bridge of the demo's own in
the host's namespace, with a /24 no host route uses, where Mp1 is served (plain HTTP: the
example apps' busybox ``wget`` does not verify certificates). The example apps of
:mod:`fluidedge.mec.examples` are deployed with ``POST /v1/apps`` and their own descriptors:

- the **producer**, whose descriptor gets a traffic rule (FORWARD_DECAPSULATED of the demo's
  service address), a DNS rule (:data:`DNS_NAME` is the service address) and a gateway toward
  the TOF: it registers the ``greeting`` service over Mp1 and confirms ready, and then the
  rule is in the TOF, so every UE's HTTP to the service address reaches it (its page names
  its ``appInstanceId``), and a UE that asks the core's resolver (the lab's PDN DNS server,
  whose queries the TOF offloads to the platform's responder, ``[mec.dns]``) for the name gets
  the service address, answered at the edge;
- the **consumer**, which discovers ``greeting`` over Mp1, calls the producer over the platform
  network, confirms ready, and then keeps discovering and calling it every 2 s (its
  ``/calls`` page counts them).

The live view adds the apps (as the platform reports them), the services registered over Mp1,
and what the consumer got, read from the consumer's own pages over the platform network. On
the way out the apps are deleted through the API (their instances and templates with them),
and after the daemon's teardown the platform network's bridge and nft tables on the host are
checked (and removed if a purge left them).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from rich.table import Table

from fluidedge.demo.model import DEMO_HOST_INDEX, DEMO_SERVICE_IP, EdgeApp
from fluidedge.linux import addrs
from fluidedge.mec import examples
from fluidedge.tof.launch import lab_instances_section

if TYPE_CHECKING:
    from rich.console import Console

    from fluidedge.core.client import Client
    from fluidedge.lab.lab import Lab

ROLES = ("producer", "consumer")
SERVICE = "greeting"  # the service the producer offers and the consumer looks for
RULE_ID = "demo-web"
DNS_RULE_ID = "demo-name"
DNS_NAME = "greeting.mec.example"  # the producer's DNS rule: the demo's service address
PLATFORM_SUPERNET = ipaddress.IPv4Network("10.236.0.0/16")  # the platform /24 is taken in it
READY_TIMEOUT = 90.0  # s for both apps to confirm ready over Mp1
_CALLS = re.compile(r"calls (\d+) failed (\d+) last ?(.*)")


@dataclass(frozen=True)
class PlatformNet:
    """The demo's platform network: instance network, bridge, subnet, Mp1 port."""

    network: str
    bridge: str
    subnet: ipaddress.IPv4Network
    port: int

    @property
    def address(self) -> str:
        """The host's address on it (a.b.c.d/n), where Mp1 is served."""
        return f"{self.subnet[1]}/{self.subnet.prefixlen}"


@dataclass
class Calls:
    """What the consumer reports of its calls to the producer (its ``/calls`` page)."""

    ok: int = 0
    failed: int = 0
    last: str = ""


@dataclass
class DemoMec:
    """The deployed apps (role -> ``POST /v1/apps`` answer, token dropped) and what the
    consumer reported last."""

    platform: PlatformNet
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    page: str = ""  # the consumer's index page: ``consumer got: producer <id>``
    calls: Calls = field(default_factory=Calls)

    def expected_page(self) -> str:
        producer = self.apps.get("producer", {})
        return f"consumer got: producer {producer.get('appInstanceId', '?')}"

    @property
    def reached(self) -> bool:
        """The consumer discovered the producer's service and got the producer's answer."""
        return "producer" in self.apps and self.page == self.expected_page()


# --- pure --------------------------------------------------------------------------------


def platform_net(prefix: str, used: Iterable[ipaddress.IPv4Network], port: int) -> PlatformNet:
    """The platform network of the demo ``prefix``: a /24 of ``PLATFORM_SUPERNET`` chosen by a
    hash of the prefix (so two demos with other prefixes differ), the first one overlapping
    none of ``used`` (the host's networks)."""
    used = list(used)
    subnets = list(PLATFORM_SUPERNET.subnets(new_prefix=24))
    start = zlib.crc32(prefix.encode()) % len(subnets)
    safe = re.sub(r"[^a-z0-9-]", "", prefix.lower())
    network = f"mec-{safe}"[:32].rstrip("-")
    for step in range(len(subnets)):
        subnet = subnets[(start + step) % len(subnets)]
        if not any(subnet.overlaps(net) for net in used):
            return PlatformNet(network, f"{prefix}-mp"[:15], subnet, port)
    raise ValueError(f"no free /24 in {PLATFORM_SUPERNET} for the platform network")


def free_hosts(
    subnet: str, taken: Iterable[str], count: int, start: int = DEMO_HOST_INDEX
) -> list[str]:
    """``count`` addresses (a.b.c.d/n) of ``subnet`` from its ``start``-th host, not taken."""
    network = ipaddress.IPv4Network(subnet)
    used = {ipaddress.ip_address(a) for a in taken}
    out = []
    for index in range(start, network.num_addresses - 1):
        if network[index] not in used:
            out.append(f"{network[index]}/{network.prefixlen}")
            if len(out) == count:
                return out
    raise ValueError(f"fewer than {count} free addresses in {subnet}")


def traffic_rule() -> dict[str, Any]:
    """The producer's traffic rule: the demo's service address, delivered decapsulated."""
    return {
        "trafficRuleId": RULE_ID,
        "filterType": "FLOW",
        "priority": 1,
        "trafficFilter": [{"dstAddress": [f"{DEMO_SERVICE_IP}/32"]}],
        "action": "FORWARD_DECAPSULATED",
        "state": "ACTIVE",
    }


def dns_rule() -> dict[str, Any]:
    """The producer's DNS rule: :data:`DNS_NAME` is the demo's service address."""
    return {
        "dnsRuleId": DNS_RULE_ID,
        "domainName": DNS_NAME,
        "ipAddressType": "IP_V4",
        "ipAddress": DEMO_SERVICE_IP,
        "ttl": 30,
        "state": "ACTIVE",
    }


def descriptors(addresses: dict[str, str], gateway: str) -> dict[str, dict[str, Any]]:
    """The example apps' descriptors (:func:`fluidedge.mec.examples.descriptor`) on the lab's
    ``apps`` network, with a gateway toward the TOF; the producer's with its traffic rule and
    its DNS rule."""
    out = {}
    for role in ROLES:
        doc = examples.descriptor(role, "apps", addresses[role], name=f"demo-{role}",
                                  service=SERVICE)  # fmt: skip
        doc["deploy"]["data"]["gateway"] = gateway
        if role == "producer":
            doc["trafficRules"] = [traffic_rule()]
            doc["dnsRules"] = [dns_rule()]
        out[role] = doc
    return out


def parse_calls(text: str) -> Calls:
    """The consumer's ``/calls`` page: ``calls N failed M last <answer>``."""
    found = _CALLS.search(text)
    if found is None:
        return Calls()
    return Calls(int(found.group(1)), int(found.group(2)), found.group(3).strip())


def host_networks(addr_json: str) -> list[ipaddress.IPv4Network]:
    """The IPv4 networks of ``ip -j -4 addr`` output."""
    return [
        ipaddress.IPv4Network(a.network)
        for device in addrs.parse(addr_json).values()
        for a in device.of_version(4)
    ]


# --- I/O ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def choose_platform(prefix: str) -> PlatformNet:
    """The platform network, clear of the host's addresses, and a free port for Mp1."""
    done = subprocess.run(
        addrs.argv(version=4), capture_output=True, text=True, timeout=10, check=True
    )
    return platform_net(prefix, host_networks(done.stdout), _free_port())


def parts(lab: Lab, platform: PlatformNet) -> dict[str, dict[str, object]]:
    """The daemon's parts besides the TOF: the instance manager (the lab's ``apps`` network
    and the platform network; no warm pools: apps are made cold), security groups, ``[mec]``."""
    instances = lab_instances_section(lab, pool_scale=0)
    networks = dict(instances["networks"])  # type: ignore[call-overload]
    networks[platform.network] = {"bridge": platform.bridge, "subnet": str(platform.subnet)}
    instances["networks"] = networks
    resolver = str(lab.pdn_dns_address)
    mec = {
        "platform_network": platform.network,
        "platform_address": platform.address,
        "mp1_port": platform.port,
        "allow_plain_http": True,  # the example apps' busybox wget does not verify TLS
        # The responder in the TOF's namespace, on its apps address; the UEs' queries to the
        # core's resolver are offloaded to it; other names are asked of that resolver over
        # the lab's route from the same namespace (docs/me-platform.md, DNS rules).
        "dns": {
            "netns": lab.host_ns,
            "listen": str(lab.apps_gateway),
            "port": 53,
            "upstream": [f"{resolver}:53"],
            "upstream_netns": lab.host_ns,
            "resolver": resolver,
        },
    }
    return {"instances": instances, "secgroups": {}, "mec": mec}


def deploy(client: Client, lab: Lab, demo: DemoMec, console: Console) -> EdgeApp:
    """Deploy the producer and the consumer (``POST /v1/apps``), wait until both confirmed
    ready over Mp1, and return where the demo's service points: the producer."""
    taken = [str(a) for a in lab.apps.values()] + [str(lab.apps_gateway)]
    hosts = free_hosts(lab.apps_subnet, taken, len(ROLES))
    docs = descriptors(dict(zip(ROLES, hosts, strict=True)), str(lab.apps_gateway))
    console.print(
        f"ME platform: Mp1 at http://{demo.platform.address.split('/')[0]}:{demo.platform.port} "
        f"on the platform network {demo.platform.network} (bridge {demo.platform.bridge}, "
        f"{demo.platform.subnet})"
    )
    for role in ROLES:
        wall = time.perf_counter()
        made = dict(client.post("/v1/apps", docs[role]))
        made.pop("token", None)  # the app's own secret: in its instance, not on the screen
        demo.apps[role] = made
        rule = (
            f", traffic rule {RULE_ID}: {DEMO_SERVICE_IP} -> it, DNS rule {DNS_RULE_ID}: "
            f"{DNS_NAME} -> {DEMO_SERVICE_IP}"
            if role == "producer"
            else ""
        )
        console.print(
            f"App {made['name']} ({role}, template {examples.template_name(role)}) deployed in "
            f"{time.perf_counter() - wall:.1f} s: appInstanceId {made['appInstanceId']}, "
            f"instance {made['instance']}, data {made['dataAddress']}, platform "
            f"{made['platformAddress']}{rule}"
        )
    _wait_ready(client, demo, console)
    ue = next(iter(lab.ues))
    answer = lookup(lab, ue, DNS_NAME, str(lab.pdn_dns_address))
    where = "answered at the edge" if answer == f"NOERROR {DEMO_SERVICE_IP}" else "unexpected"
    console.print(
        f"UE {ue} asked the core's resolver {lab.pdn_dns_address} for {DNS_NAME}: {answer} "
        f"({where}: the producer's DNS rule, the TOF offloads the query to the platform's "
        "responder)"
    )
    producer = demo.apps["producer"]
    return EdgeApp(
        address=str(producer["dataAddress"]),
        port=examples.PORT,
        marker=f"producer {producer['appInstanceId']}",
        instance=str(producer["instance"]),
    )


# Run in the UE's namespace: argv = name, server, timeout; "<RCODE> <addresses...>".
_LOOKUP = """
import socket, sys
import dns.message, dns.rcode
name, server, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
q = dns.message.make_query(name, "A")
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(timeout)
for _ in range(5):  # the first query may wait for the lab's ARP
    s.sendto(q.to_wire(), (server, 53))
    try:
        a = dns.message.from_wire(s.recvfrom(4096)[0])
    except TimeoutError:
        continue
    if a.id == q.id:
        found = sorted(r.to_text() for rr in a.answer for r in rr)
        print(" ".join([dns.rcode.to_text(a.rcode()), *found]))
        break
else:
    print("no answer")
"""


def lookup(lab: Lab, ue: str, name: str, server: str) -> str:
    """What ``ue`` gets for ``name`` (A) from ``server``:53: ``NOERROR 198.18.50.1``."""
    done = lab.run(ue, [sys.executable, "-c", _LOOKUP, name, server, "2"], timeout=30)
    return done.stdout.strip() if done.returncode == 0 else f"failed ({done.returncode})"


def _wait_ready(client: Client, demo: DemoMec, console: Console) -> None:
    """Until both apps are READY (each confirms by itself over Mp1, from its instance)."""
    started = time.monotonic()
    pending = {demo.apps[role]["appInstanceId"]: role for role in ROLES}
    while pending and time.monotonic() - started < READY_TIMEOUT:
        for app in client.get("/v1/apps"):
            role = pending.get(app["appInstanceId"])
            if role is not None and app["state"] == "READY":
                del pending[app["appInstanceId"]]
                what = (
                    f"registered '{SERVICE}' over Mp1, then confirmed ready"
                    if role == "producer"
                    else f"discovered '{SERVICE}' over Mp1, called the producer, then "
                    "confirmed ready"
                )
                console.print(
                    f"App {app['name']}: {what} ({time.monotonic() - started:.1f} s after "
                    f"deployment); state READY, {app['services']} service(s)"
                )
        time.sleep(0.2)
    for role in pending.values():
        console.print(
            f"[yellow]App {demo.apps[role]['name']} not READY after {READY_TIMEOUT:g} s[/yellow]"
        )


def read_consumer(demo: DemoMec, timeout: float = 1.0) -> None:
    """The consumer's pages, over the platform network (the host has the platform's
    address, which the tenant's platform group lets in)."""
    consumer = demo.apps.get("consumer")
    if consumer is None:
        return
    host = str(consumer["platformAddress"]).split("/")[0]
    base = f"http://{host}:{examples.PORT}"
    try:
        # trust_env=False: straight to the instance, never through a proxy from the environment
        with httpx.Client(timeout=timeout, trust_env=False) as http:
            page = http.get(f"{base}/")
            calls = http.get(f"{base}/calls")
    except httpx.HTTPError:
        return  # shown as it was last read
    if page.status_code == 200:
        demo.page = page.text.strip()
    if calls.status_code == 200:
        demo.calls = parse_calls(calls.text)


def table(client: Client, demo: DemoMec) -> Table:
    """The apps as the platform reports them, the services they registered, and what the
    consumer got from the producer."""
    read_consumer(demo)
    apps = {a["appInstanceId"]: a for a in client.get("/v1/apps")}
    services = client.get("/mec_service_mgmt/v1/services")
    view = Table(
        "app", "appInstanceId", "state", "instance", "data", "platform", "Mp1 services / calls",
        title=f"ME platform apps (Mp1 on {demo.platform.network})",
    )  # fmt: skip
    for role in ROLES:
        made = demo.apps.get(role)
        if made is None:
            continue
        now = apps.get(made["appInstanceId"], {})
        if role == "producer":
            offered = [
                f"{s['serName']} {s['state']} at "
                + ",".join(f"{a['host']}:{a['port']}"
                           for a in s["transportInfo"]["endpoint"].get("addresses", []))
                for s in services
            ]  # fmt: skip
            detail = "; ".join(offered) or "(none registered yet)"
        else:
            calls = demo.calls
            detail = f"{calls.ok} calls ok, {calls.failed} failed; last: {calls.last or '-'}"
        view.add_row(
            made["name"],
            made["appInstanceId"][:13],
            now.get("state", "gone"),
            made["instance"],
            made["dataAddress"],
            made["platformAddress"],
            detail,
        )
    view.caption = f"consumer's page: {demo.page or '-'}"
    return view


def delete_apps(client: Client, demo: DemoMec, console: Console) -> None:
    """``DELETE /v1/apps/{id}``: each app's rules leave the TOF, its instance and template go."""
    for made in demo.apps.values():
        try:
            client.delete(f"/v1/apps/{made['appInstanceId']}")
            console.print(f"App {made['name']} deleted (instance {made['instance']} with it)")
        except Exception as exc:  # the instance deletion and the purge still run
            console.print(f"[yellow]app {made['name']} not deleted: {exc}[/yellow]")


def _link_exists(name: str) -> bool:
    done = subprocess.run(["ip", "link", "show", "dev", name], capture_output=True, check=False)
    return done.returncode == 0


def host_leftovers(platform: PlatformNet, console: Console) -> list[str]:
    """After the daemon's purge: remove the platform network's bridge and its security-group
    nft tables if they are still on the host (saying so), and return what could not be
    removed."""
    removed = []
    if _link_exists(platform.bridge):
        subprocess.run(["ip", "link", "del", platform.bridge], capture_output=True, check=False)
        removed.append(f"bridge {platform.bridge}")
    suffix = f"_{platform.network.replace('-', '_')}"
    for family, name in _nft_tables():
        if name.endswith(suffix):
            subprocess.run(["nft", "delete", "table", family, name], capture_output=True,
                           check=False)  # fmt: skip
            removed.append(f"nft table {family} {name}")
    if removed:
        console.print(f"Platform network: removed what the daemon left, {', '.join(removed)}")
    left = [f"bridge {platform.bridge}"] if _link_exists(platform.bridge) else []
    return left + [f"nft table {f} {n}" for f, n in _nft_tables() if n.endswith(suffix)]


def _nft_tables() -> list[tuple[str, str]]:
    done = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True,
                          timeout=10, check=False)  # fmt: skip
    out = []
    for line in done.stdout.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "table":
            out.append((words[1], words[2]))
    return out


def summary(console: Console, demo: DemoMec) -> bool:
    """The consumer's outcome, as read last: True when it reached the producer."""
    calls = demo.calls
    if demo.reached:
        console.print(
            f"Consumer app: discovered '{SERVICE}' over Mp1 and called the producer over the "
            f"platform network: {calls.ok} call(s) answered, {calls.failed} failed; its page: "
            f"'{demo.page}'"
        )
        return True
    console.print(
        f"[red]Consumer app did not reach the producer: its page "
        f"'{demo.page or '-'}' (expected '{demo.expected_page()}'), "
        f"{calls.ok} call(s) answered, {calls.failed} failed[/red]"
    )
    return False
