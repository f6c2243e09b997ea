"""Tenants on a real daemon with real runc: two tenants' isolation (404s, filtered lists),
admin-only routes, quotas and the host's pid budget refused with their reasons, the default CPU
cap in the instance's cgroup, and tenants, tokens and ownership restored by a restart."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fluidedge.instances.bundle import cpu_quota_us
from fluidedge.secgroups.nft import table_name
from fluidedge.tenants.admission import pid_max
from tests.fixtures.daemon import TOKEN, DaemonFactory, DaemonHandle
from tests.functional.daemon.conftest import purge_instances

pytestmark = pytest.mark.root

SUFFIX = os.getpid() % 10000
INSTANCES = {"instances": {"pool_scale": 0, "memory_mb": 1024}}


def _bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


class Api:
    """One client per principal on one daemon."""

    def __init__(self, handle: DaemonHandle) -> None:
        self.handle = handle
        self.clients: list[httpx.Client] = []
        self.admin = self.client(TOKEN)
        self.anonymous = self.client(None)

    def client(self, token: str | None) -> httpx.Client:
        client = httpx.Client(base_url=self.handle.url, headers=_bearer(token), timeout=60)
        self.clients.append(client)
        return client

    def tenant(self, name: str, **quota: Any) -> httpx.Client:
        body: dict[str, Any] = {"name": name}
        if quota:
            body["quota"] = quota
        assert self.admin.post("/v1/tenants", json=body).status_code == 201
        created = self.admin.post(f"/v1/tenants/{name}/tokens", json={"description": "t"})
        assert created.status_code == 201
        return self.client(created.json()["token"])

    def close(self) -> None:
        for client in self.clients:
            client.close()


@pytest.fixture
def daemon(daemon_factory: DaemonFactory) -> Iterator[DaemonHandle]:
    handle = daemon_factory(INSTANCES)
    try:
        yield handle
    finally:
        handle.stop()
        purge_instances(handle)


def _template(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "command": ["/bin/busybox", "sleep", "1000"], **fields}


def _instance(name: str, template: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "template": template, **fields}


def _names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return sorted(item["name"] for item in response.json())


def _not_found(response: httpx.Response, what: str) -> None:
    assert response.status_code == 404, response.text
    assert response.json()["detail"] == f"{what} does not exist"


def test_two_tenants_see_and_change_only_their_own(daemon: DaemonHandle) -> None:
    api = Api(daemon)
    try:
        acme, beta = api.tenant("acme"), api.tenant("beta")
        bridge = f"acme{SUFFIX}"
        made = acme.post("/v1/networks", json={"name": "acme-net", "bridge": bridge})
        assert made.status_code == 201, made.text
        assert acme.post("/v1/templates", json=_template("acme-t")).status_code == 201
        wired = _template("acme-tn", interfaces=[{"name": "eth0", "network": "acme-net"}])
        assert acme.post("/v1/templates", json=wired).status_code == 201
        created = acme.post("/v1/instances", json=_instance("acme-a", "acme-t"))
        assert created.status_code == 201, created.text
        made = beta.post("/v1/instances", json=_instance("beta-b", "idle", cold=True))
        assert made.status_code == 201, made.text

        # lists: each its own (and the built-in templates); the admin all; anonymous none
        assert _names(acme.get("/v1/instances")) == ["acme-a"]
        assert _names(beta.get("/v1/instances")) == ["beta-b"]
        assert _names(api.admin.get("/v1/instances")) == ["acme-a", "beta-b"]
        assert _names(api.anonymous.get("/v1/instances")) == []
        # a page is of what its reader sees: a tenant's first page of one is its own, whole
        paged = beta.get("/v1/instances", params={"limit": 1})
        assert _names(paged) == ["beta-b"]
        assert "link" not in paged.headers
        admin_page = api.admin.get("/v1/instances", params={"limit": 1})
        assert _names(admin_page) == ["acme-a"]
        assert admin_page.links["next"]["url"] == "/v1/instances?after=acme-a&limit=1"
        assert _names(beta.get("/v1/templates")) == ["httpd", "idle"]
        assert _names(acme.get("/v1/templates")) == ["acme-t", "acme-tn", "httpd", "idle"]
        assert _names(api.anonymous.get("/v1/templates")) == ["httpd", "idle"]
        assert _names(beta.get("/v1/networks")) == []
        assert _names(api.anonymous.get("/v1/networks")) == []
        assert _names(api.admin.get("/v1/networks")) == ["acme-net"]

        # another tenant's resource does not exist: get, change, delete, logs
        for client in (beta, api.anonymous):
            _not_found(client.get("/v1/instances/acme-a"), "instance 'acme-a'")
            _not_found(client.get("/v1/templates/acme-t"), "template 'acme-t'")
            _not_found(client.get("/v1/networks/acme-net"), "network 'acme-net'")
        _not_found(beta.get("/v1/instances/acme-a/logs"), "instance 'acme-a'")
        _not_found(beta.post("/v1/instances/acme-a/pause"), "instance 'acme-a'")
        _not_found(beta.post("/v1/instances/acme-a/resume"), "instance 'acme-a'")
        _not_found(beta.delete("/v1/instances/acme-a"), "instance 'acme-a'")
        _not_found(beta.delete("/v1/templates/acme-t"), "template 'acme-t'")
        _not_found(beta.delete("/v1/networks/acme-net"), "network 'acme-net'")
        _not_found(acme.delete("/v1/instances/beta-b"), "instance 'beta-b'")
        # ... nor can it be used: another tenant's template or network
        _not_found(
            beta.post("/v1/instances", json=_instance("beta-x", "acme-t")), "template 'acme-t'"
        )
        stolen = _template("beta-t", interfaces=[{"name": "eth0", "network": "acme-net"}])
        _not_found(beta.post("/v1/templates", json=stolen), "interfaces.eth0: network 'acme-net'")
        # names: a tenant's start with its name (so that they never collide with another's)
        named = beta.post("/v1/instances", json=_instance("acme-b", "idle"))
        assert named.status_code == 403
        assert "start with 'beta-'" in named.json()["detail"]
        other = beta.post("/v1/networks", json={"name": "beta-n", "bridge": bridge})
        assert other.status_code == 403  # a bridge outside its own names
        # built-in templates: usable and readable by every tenant, changed by none
        assert beta.get("/v1/templates/idle").status_code == 200
        refused = beta.delete("/v1/templates/idle")
        assert refused.status_code == 403
        assert "read-only" in refused.json()["detail"]
        # the instance is untouched: still running, still acme's
        assert acme.get("/v1/instances/acme-a").json()["state"] == "running"
        assert acme.post("/v1/instances/acme-a/pause").json()["state"] == "paused"
        assert acme.post("/v1/instances/acme-a/resume").json()["state"] == "running"

        # the admin's routes refuse a tenant token (403), and /v1/tenants anonymous reads (401)
        for method, path in (
            ("GET", "/v1/tenants"),
            ("POST", "/v1/tenants"),
            ("GET", "/v1/tenants/acme"),
            ("POST", "/v1/tenants/acme/tokens"),
            ("GET", "/v1/pools"),
            ("GET", "/v1/stats"),
            ("GET", "/v1/orphans"),
            ("DELETE", "/v1/orphans"),
            ("GET", "/metrics"),
        ):
            answer = acme.request(method, path)
            assert answer.status_code == 403, (method, path, answer.text)
            assert "needs the admin token" in answer.json()["detail"]
        assert api.anonymous.get("/v1/tenants").status_code == 401
        assert acme.get("/v1/whoami").json()["tenant"] == "acme"
        assert api.admin.get("/v1/whoami").json() == {
            "principal": "admin",
            "tenant": None,
            "quota": None,
            "usage": None,
        }
        view = api.admin.get("/v1/tenants/acme").json()
        assert view["owns"] == {
            "instances": ["acme-a"],
            "templates": ["acme-t", "acme-tn"],
            "networks": ["acme-net"],
            "other": {},
        }
        assert view["usage"]["instances"] == 1
        assert view["tokens"] == 1

        # a restart restores tenants, their tokens and who owns what
        daemon.restart()
        assert _names(acme.get("/v1/instances")) == ["acme-a"]
        assert _names(beta.get("/v1/instances")) == ["beta-b"]
        _not_found(beta.get("/v1/instances/acme-a"), "instance 'acme-a'")
        assert _names(api.admin.get("/v1/tenants")) == ["acme", "beta"]

        # a revoked token is refused; the tenant cannot go while it owns resources
        token_id = api.admin.get("/v1/tenants/beta/tokens").json()[0]["id"]
        assert api.admin.delete(f"/v1/tenants/beta/tokens/{token_id}").status_code == 204
        assert beta.delete("/v1/instances/beta-b").status_code == 401
        assert _names(beta.get("/v1/instances")) == []  # an anonymous read (api.open_reads)
        busy = api.admin.delete("/v1/tenants/beta")
        assert busy.status_code == 409
        assert "beta-b" in busy.json()["detail"]
        assert api.admin.delete("/v1/instances/beta-b").status_code == 204
        assert api.admin.delete("/v1/tenants/beta").status_code == 204

        for path in ("/v1/instances/acme-a", "/v1/templates/acme-tn", "/v1/templates/acme-t"):
            assert acme.delete(path).status_code == 204
        assert acme.delete("/v1/networks/acme-net").status_code == 204
        assert not Path(f"/sys/class/net/{bridge}").exists()

        # the audit log names the tenant of tenant-token calls and token ids, never a token
        audit = (daemon.state_dir / "audit.log").read_text()
        entries = [json.loads(line) for line in audit.splitlines()]
        made_token = [e for e in entries if e["path"] == "/v1/tenants/acme/tokens"]
        assert made_token[0]["status"] == 201
        assert len(made_token[0]["token_id"]) == 12
        revoked = [e for e in entries if e["path"].endswith(f"/tokens/{token_id}")]
        assert revoked[0]["token_id"] == token_id
        by_acme = [e for e in entries if e.get("tenant") == "acme"]
        assert {"auth": "tenant-token", "path": "/v1/instances", "status": 201}.items() <= next(
            e for e in by_acme if e["path"] == "/v1/instances"
        ).items()
        assert "fet_" not in audit
    finally:
        api.close()


def _cpu_quota(pid: int) -> int:
    """The CFS quota (µs) of ``pid``'s cgroup (v1 ``cpu`` controller or v2 ``cpu.max``)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            cpu_max = Path(f"/sys/fs/cgroup{path}/cpu.max")
            if cpu_max.exists():
                quota = cpu_max.read_text().split()[0]
                return -1 if quota == "max" else int(quota)
        elif "cpu" in controllers.split(","):
            return int(Path(f"/sys/fs/cgroup/{controllers}{path}/cpu.cfs_quota_us").read_text())
    raise AssertionError(f"no cpu cgroup for {pid}")


def test_quotas_are_refused_with_their_reason(daemon: DaemonHandle) -> None:
    api = Api(daemon)
    try:
        quota = {"instances": 1, "cpus": 2.0, "memory_mb": 64, "pids": 100}
        tenant = api.tenant("q", **quota)
        caps = tenant.post("/v1/templates", json=_template("q-cap", capabilities=["CAP_NET_ADMIN"]))
        assert caps.status_code == 403
        assert "CAP_NET_ADMIN are outside tenant q's quota" in caps.json()["detail"]
        cos = tenant.post("/v1/templates", json=_template("q-cos", cos="gold"))
        assert cos.status_code == 403
        assert "classes of service are the admin's" in cos.json()["detail"]
        root = tenant.post("/v1/templates", json=_template("q-root", userns_opt_out="mine"))
        assert root.status_code == 403
        assert "without a user namespace is the admin's" in root.json()["detail"]
        assert tenant.get("/v1/templates/q-root").status_code == 404  # nothing was created
        spec = _template("q-t", resources={"cpus": 0.1, "memory_mb": 32, "pids": 16})
        assert tenant.post("/v1/templates", json=spec).status_code == 201
        first = tenant.post("/v1/instances", json=_instance("q-1", "q-t"))
        assert first.status_code == 201, first.text
        # every instance gets a CPU cap by default, in its cgroup too
        view = first.json()
        assert view["resources"]["cpu_limit"] == 1.0
        assert _cpu_quota(view["pid"]) == cpu_quota_us(1.0)

        second = tenant.post("/v1/instances", json=_instance("q-2", "q-t"))
        assert second.status_code == 409
        assert second.headers["x-fluidedge-error"] == "QuotaExceeded"
        assert second.json()["detail"] == "quota of tenant q: instances 1 used + 1 asked > 1"
        quota["instances"] = 5
        assert api.admin.patch("/v1/tenants/q", json={"quota": quota}).status_code == 200
        for overrides, reason in (
            ({"memory_mb": 64}, "memory_mb 32 used + 64 asked > 64"),
            ({"pids": 90}, "pids 16 used + 90 asked > 100"),
            ({"cpu_limit": 1.5}, "cpus 1 used + 1.5 asked > 2"),
        ):
            refused = tenant.post(
                "/v1/instances", json=_instance("q-2", "q-t", resources=overrides)
            )
            assert refused.status_code == 409, refused.text
            assert refused.json()["detail"] == f"quota of tenant q: {reason}"
        assert _names(api.admin.get("/v1/instances")) == ["q-1"]  # nothing half-made
        usage = tenant.get("/v1/whoami").json()["usage"]
        assert usage == {"instances": 1, "cpus": 1.0, "memory_mb": 32, "pids": 16}
        fits = tenant.post(
            "/v1/instances", json=_instance("q-2", "q-t", resources={"cpu_limit": 0.5})
        )
        assert fits.status_code == 201, fits.text
        # an admin's instance is not the tenant's usage, and the admin may create for it
        for_q = api.admin.post("/v1/instances?tenant=q", json=_instance("q-3", "q-t"))
        assert for_q.status_code == 409  # the admin's create for q counts against q's quota
        assert "cpus 1.5 used + 1 asked > 2" in for_q.json()["detail"]
    finally:
        api.close()


def test_host_pid_budget_refuses_overcommit(daemon_factory: DaemonFactory) -> None:
    host_max = pid_max()
    # a budget of about 40,000 pids whatever this host's pid_max (at most 75 % of it)
    fraction = max(0.25, 1 - 40000 / host_max)
    budget = int(host_max * (1 - fraction))
    handle = daemon_factory(
        INSTANCES,
        admission={"max_pids_per_instance": 65536, "pids_reserved_fraction": fraction},
    )
    api = Api(handle)
    try:
        big = api.admin.post(
            "/v1/instances", json=_instance("big-0", "idle", resources={"pids": 65536})
        )
        assert big.status_code == 403
        assert (
            f"resources.pids: 65536 is above the per-instance limit {budget}"
            in big.json()["detail"]
        )
        half = budget // 2 + 1
        first = api.admin.post(
            "/v1/instances", json=_instance("big-1", "idle", resources={"pids": half})
        )
        assert first.status_code == 201, first.text
        second = api.admin.post(
            "/v1/instances", json=_instance("big-2", "idle", resources={"pids": half})
        )
        assert second.status_code == 409
        assert f"would exceed the host's budget of {budget}" in second.json()["detail"]
        assert _names(api.admin.get("/v1/instances")) == ["big-1"]
        assert api.admin.delete("/v1/instances/big-1").status_code == 204
        again = api.admin.post(
            "/v1/instances", json=_instance("big-2", "idle", resources={"pids": half})
        )
        assert again.status_code == 201, again.text  # the budget is given back on delete
    finally:
        api.close()
        handle.stop()
        purge_instances(handle)


def test_chains_are_tenant_scoped(daemon_factory: DaemonFactory) -> None:
    """``/v1/chains`` through the daemon's edge with tenant tokens: a tenant declares a port
    pair on its own instance's port; another tenant neither sees it nor may name that port;
    the admin sees it (owned by the tenant); an anonymous reader does not."""
    handle = daemon_factory({**INSTANCES, "chains": {}})
    api = Api(handle)
    try:
        acme, beta = api.tenant("acme"), api.tenant("beta")
        bridge = f"acme{SUFFIX}c"
        assert acme.post("/v1/networks", json={"name": "acme-net", "bridge": bridge}).is_success
        wired = _template("acme-tn", interfaces=[{"name": "eth0", "network": "acme-net"}])
        assert acme.post("/v1/templates", json=wired).status_code == 201
        made = acme.post("/v1/instances", json=_instance("acme-a", "acme-tn", cold=True))
        assert made.status_code == 201, made.text
        port = made.json()["interfaces"][0]["host_ifname"]
        pair = {"id": "acme-p", "ingress": port}
        created = acme.post("/v1/chains/port-pairs", json=pair)
        assert created.status_code == 201, created.text
        assert created.json()["tenant"] == "acme"
        assert [p["id"] for p in acme.get("/v1/chains/port-pairs").json()] == ["acme-p"]
        assert beta.get("/v1/chains/port-pairs").json() == []
        assert api.anonymous.get("/v1/chains/port-pairs").json() == []
        assert [p["tenant"] for p in api.admin.get("/v1/chains/port-pairs").json()] == ["acme"]
        assert beta.get("/v1/chains/port-pairs/acme-p").status_code == 404
        assert beta.delete("/v1/chains/port-pairs/acme-p").status_code == 404
        stolen = beta.post("/v1/chains/port-pairs", json={"id": "beta-p", "ingress": port})
        assert stolen.status_code == 404, stolen.text
        assert acme.delete("/v1/chains/port-pairs/acme-p").status_code == 204
        assert acme.delete("/v1/instances/acme-a").status_code == 204
    finally:
        api.close()
        handle.stop()
        purge_instances(handle)


def _group_ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return sorted(group["id"] for group in response.json())


def _port_groups(client: httpx.Client) -> dict[str, tuple[str, list[str]]]:
    answer = client.get("/v1/security-groups/ports")
    assert answer.status_code == 200, answer.text
    return {p["id"]: (p["tenant"], p["groups"]) for p in answer.json()}


def test_security_groups_are_tenant_scoped(daemon_factory: DaemonFactory) -> None:
    """``/v1/security-groups`` through the daemon's edge with two tenant tokens, the admin and
    an anonymous reader: each tenant sees and changes its own groups and ports only (another's
    is the missing one's 404), never names another's group (a rule's remote group, an
    interface's groups), its instances' interfaces get its own default group, and a restart
    keeps who owns what."""
    net = f"acme-sg{SUFFIX}"  # the nft tables are fesg_<network>: ours by the pid suffix
    bnet = f"beta-sg{SUFFIX}"
    handle = daemon_factory({**INSTANCES, "secgroups": {}})
    api = Api(handle)
    web = {"direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 80}
    try:
        acme, beta = api.tenant("acme"), api.tenant("beta")
        for client, name, bridge in ((acme, net, f"acme{SUFFIX}g"), (beta, bnet, f"beta{SUFFIX}g")):
            made = client.post("/v1/networks", json={"name": name, "bridge": bridge})
            assert made.status_code == 201, made.text
        made = acme.post("/v1/security-groups", json={"id": "acme-web", "rules": [web]})
        assert made.status_code == 201, made.text
        assert made.json()["tenant"] == "acme"
        made = beta.post("/v1/security-groups", json={"id": "beta-web", "rules": [web]})
        assert made.status_code == 201, made.text
        # a tenant's ids start with its name; it creates for itself only
        assert acme.post("/v1/security-groups", json={"id": "web"}).status_code == 403
        other = acme.post("/v1/security-groups?tenant=beta", json={"id": "beta-x"})
        assert other.status_code == 403

        # lists: each its own (with its default group); the admin all; anonymous the admin's
        assert _group_ids(acme.get("/v1/security-groups")) == ["acme-default", "acme-web"]
        assert _group_ids(beta.get("/v1/security-groups")) == ["beta-default", "beta-web"]
        assert _group_ids(api.anonymous.get("/v1/security-groups")) == ["default"]
        assert _group_ids(api.admin.get("/v1/security-groups")) == [
            "acme-default", "acme-web", "beta-default", "beta-web", "default",
        ]  # fmt: skip

        # another tenant's group (and the admin's) does not exist: read, change, delete
        for client, gid in ((beta, "acme-web"), (beta, "acme-default"), (acme, "default")):
            what = f"security group {gid!r}"
            _not_found(client.get(f"/v1/security-groups/{gid}"), what)
            _not_found(client.put(f"/v1/security-groups/{gid}", json={"rules": []}), what)
            _not_found(client.delete(f"/v1/security-groups/{gid}"), what)
            rule = {"direction": "egress"}
            _not_found(client.post(f"/v1/security-groups/{gid}/rules", json=rule), what)
            _not_found(client.delete(f"/v1/security-groups/{gid}/rules/ingress-v4-self"), what)
        _not_found(api.anonymous.get("/v1/security-groups/acme-web"), "security group 'acme-web'")
        assert len(api.admin.get("/v1/security-groups/acme-web").json()["rules"]) == 1
        assert len(api.admin.get("/v1/security-groups/default").json()["rules"]) == 4

        # ... nor can it be named: as a remote group (answered as a missing group: 422) ...
        def refused(answer: httpx.Response, gid: str) -> str:
            assert answer.status_code == 422, answer.text
            return str(answer.json()["detail"]).replace(gid, "X")

        remote = [
            refused(
                beta.post(
                    "/v1/security-groups/beta-web/rules",
                    json={"id": "r1", "direction": "ingress", "remote_group": gid},
                ),
                gid,
            )
            for gid in ("acme-web", "beta-nope")
        ]
        assert remote[0] == remote[1]
        assert "remote_group" in remote[0]
        # ... or as an interface's group, in a template or an instance request
        steal = [
            refused(
                beta.post(
                    "/v1/templates",
                    json=_template(
                        "beta-t",
                        interfaces=[{"name": "eth0", "network": bnet, "security_groups": [gid]}],
                    ),
                ),
                gid,
            )
            for gid in ("acme-web", "beta-nope")
        ]
        assert steal[0] == steal[1]
        assert "security_groups" in steal[0]
        plain = _template("beta-tn", interfaces=[{"name": "eth0", "network": bnet}])
        assert beta.post("/v1/templates", json=plain).status_code == 201
        stolen = _instance(
            "beta-x", "beta-tn", cold=True, interfaces={"eth0": {"security_groups": ["acme-web"]}}
        )
        refused(beta.post("/v1/instances", json=stolen), "acme-web")
        assert _names(api.admin.get("/v1/instances")) == []  # nothing half-made

        # instances: each interface in its own tenant's groups; none named: its default
        wired = _template(
            "acme-tn",
            interfaces=[{"name": "eth0", "network": net, "security_groups": ["acme-web"]}],
        )
        assert acme.post("/v1/templates", json=wired).status_code == 201
        for client, name, template in (
            (acme, "acme-a", "acme-tn"),
            (beta, "beta-b", "beta-tn"),
        ):
            made = client.post("/v1/instances", json=_instance(name, template, cold=True))
            assert made.status_code == 201, made.text
        assert _port_groups(acme) == {"acme-a.eth0": ("acme", ["acme-web"])}
        assert _port_groups(beta) == {"beta-b.eth0": ("beta", ["beta-default"])}
        assert _port_groups(api.anonymous) == {}
        assert set(_port_groups(api.admin)) == {"acme-a.eth0", "beta-b.eth0"}
        # another tenant's instance has no filtered interface; its own takes its own groups
        moved = beta.put(
            "/v1/instances/acme-a/interfaces/eth0/security-groups",
            json={"security_groups": ["beta-web"]},
        )
        assert moved.status_code == 404, moved.text
        mine = beta.put(
            "/v1/instances/beta-b/interfaces/eth0/security-groups",
            json={"security_groups": ["acme-web"]},
        )
        assert mine.status_code == 422, mine.text
        mine = beta.put(
            "/v1/instances/beta-b/interfaces/eth0/security-groups",
            json={"security_groups": ["beta-web"]},
        )
        assert mine.status_code == 200, mine.text

        # the tenants part knows who owns the groups: shown, and holding a tenant's delete
        view = api.admin.get("/v1/tenants/acme").json()
        assert view["owns"]["other"] == {"security group": ["acme-web"]}

        # a restart keeps who owns what: groups and ports
        handle.restart()
        assert _group_ids(acme.get("/v1/security-groups")) == ["acme-default", "acme-web"]
        _not_found(beta.get("/v1/security-groups/acme-web"), "security group 'acme-web'")
        assert api.admin.get("/v1/security-groups/acme-web").json()["tenant"] == "acme"
        assert _port_groups(acme) == {"acme-a.eth0": ("acme", ["acme-web"])}
        assert _port_groups(beta) == {"beta-b.eth0": ("beta", ["beta-web"])}

        # the owner (and only it, or the admin) deletes
        assert acme.delete("/v1/instances/acme-a").status_code == 204
        assert acme.delete("/v1/security-groups/acme-web").status_code == 204
        assert api.admin.get("/v1/tenants/acme").json()["owns"]["other"] == {}
        assert beta.delete("/v1/instances/beta-b").status_code == 204
        for client, name, template in ((acme, net, "acme-tn"), (beta, bnet, "beta-tn")):
            assert client.delete(f"/v1/templates/{template}").status_code == 204
            assert client.delete(f"/v1/networks/{name}").status_code == 204
        busy = api.admin.delete("/v1/tenants/beta")  # it still owns a group
        assert busy.status_code == 409
        assert "beta-web" in busy.json()["detail"]
        assert api.admin.delete("/v1/security-groups/beta-web").status_code == 204
        kept = beta.delete("/v1/security-groups/beta-default")
        assert kept.status_code == 409  # a tenant's default group stays while the tenant does
        assert api.admin.delete("/v1/tenants/beta").status_code == 204
        # ... and is left over when it goes: the admin's to delete
        assert api.admin.delete("/v1/security-groups/beta-default").status_code == 204
    finally:
        api.close()
        handle.stop()
        purge_instances(handle)
        for name in (net, bnet):
            for family in ("bridge", "inet"):
                subprocess.run(
                    ["nft", "delete", "table", family, table_name(name)],
                    capture_output=True,
                    check=False,
                )
