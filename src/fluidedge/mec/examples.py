"""Two example apps for the platform: a producer offering a service over Mp1 and a consumer
discovering it and calling it over the platform network.

Each ships as a built-in instance template (``mec-producer``, ``mec-consumer``: a busybox ``sh``
script on the ``busybox`` image, added by the platform at start when the daemon has
``[instances]``) and as an app descriptor (``POST /v1/apps``, ``fluidedge app create``)
deploying it: all an app needs is in its
instance (``/.fe/mec/token``, ``MEC_MP1_URL``, ``MEC_APP_INSTANCE_ID``,
``MEC_PLATFORM_ADDRESS``), nothing from the operator. They write only to ``/tmp`` (the
instance's private tmpfs; its root and ``/.fe`` are read-only).

- **producer**: registers the service ``serName`` (REST over HTTP at its platform address, port
  8080), confirms ready, then serves ``producer <appInstanceId>`` on port 8080.
- **consumer**: discovers the service by name (``GET /services?ser_name=...``) until it is
  there, fetches the producer's page at the address the service names, and serves what it got
  on its own port 8080 (``consumer got: producer <id>``), then confirms ready. It then keeps
  discovering and calling the producer every 2 s, and serves the count on ``/calls``
  (``calls <ok> failed <failed> last <answer>``; ``fluidedge demo --mec`` shows it).

``python -m fluidedge.mec.examples producer|consumer NETWORK ADDRESS`` prints a descriptor.
"""

from __future__ import annotations

import json
import sys
from typing import Any

BUSYBOX = "/bin/busybox"

_WGET = 'wget -q -O - --header "Authorization: Bearer $T"'
_JSON = '--header "Content-Type: application/json"'
_SM = "$MEC_MP1_URL/mec_service_mgmt/v1"
_AS = "$MEC_MP1_URL/mec_app_support/v1/applications/$MEC_APP_INSTANCE_ID"

PRODUCER = f"""
T=$(cat "$MEC_TOKEN_FILE")
mkdir -p /tmp/www
echo "producer $MEC_APP_INSTANCE_ID" > /tmp/www/index.html
BODY='{{"serName":"'"$SER_NAME"'","version":"1","state":"ACTIVE","serializer":"JSON",\
"transportInfo":{{"id":"http","name":"REST","type":"REST_HTTP","protocol":"HTTP","version":"1.1",\
"endpoint":{{"addresses":[{{"host":"'"$MEC_PLATFORM_ADDRESS"'","port":8080}}]}},"security":{{}}}}}}'
until {_WGET} {_JSON} --post-data "$BODY" \
    "{_SM}/applications/$MEC_APP_INSTANCE_ID/services" > /dev/null; do
  sleep 1
done
until {_WGET} {_JSON} --post-data '{{"indication":"READY"}}' "{_AS}/confirm_ready"; do
  sleep 1
done
exec {BUSYBOX} httpd -f -p 8080 -h /tmp/www
"""

CONSUMER = f"""
trap 'exit 0' TERM
T=$(cat "$MEC_TOKEN_FILE")
mkdir -p /tmp/www
echo "consumer: looking for $SER_NAME" > /tmp/www/index.html
{BUSYBOX} httpd -p 8080 -h /tmp/www
call() {{
  J=$({_WGET} "{_SM}/services?ser_name=$SER_NAME")
  H=$(echo "$J" | sed -n 's/.*"host":"\\([0-9.]*\\)".*/\\1/p')
  P=$(echo "$J" | sed -n 's/.*"port":\\([0-9]*\\).*/\\1/p')
  [ -n "$H" ] && GOT=$(wget -q -O - "http://$H:$P/")
}}
until call; do
  sleep 1
done
echo "consumer got: $GOT" > /tmp/www/index.html
OK=1
FAILED=0
echo "calls $OK failed $FAILED last $GOT" > /tmp/www/calls
{_WGET} {_JSON} --post-data '{{"indication":"READY"}}' "{_AS}/confirm_ready"
while sleep 2; do
  if call; then OK=$((OK + 1)); else FAILED=$((FAILED + 1)); GOT=""; fi
  echo "calls $OK failed $FAILED last $GOT" > /tmp/www/calls.new
  mv /tmp/www/calls.new /tmp/www/calls
done
"""


ROLES = ("producer", "consumer")
PORT = 8080


def template_name(role: str) -> str:
    return f"mec-{role}"


def templates() -> list[dict[str, Any]]:
    """The two examples as instance templates (``TemplateSpec`` documents), which the platform
    makes built-in templates at start (``[mec] example_templates``): ``mec-producer`` and
    ``mec-consumer``, on the ``busybox`` image, no warm pool (an app's instance is made from
    a template derived from them). ``SER_NAME`` (default ``greeting``) names the service."""
    return [
        {
            "name": template_name(role),
            "image": "busybox",
            "description": f"ME platform example app: the {role} (docs/me-platform.md)",
            "command": [BUSYBOX, "sh", "-c", PRODUCER if role == "producer" else CONSUMER],
            "env": {"SER_NAME": "greeting"},
            "resources": {"cpus": 0.1, "memory_mb": 32, "pids": 32},
            "ports": [PORT],
            "readiness": {"kind": "tcp", "port": PORT},
            "pool": {"size": 0},
        }
        for role in ROLES
    ]


def descriptor(
    role: str, network: str, address: str, *, name: str | None = None, tenant: str = "default",
    service: str = "greeting",
) -> dict[str, Any]:  # fmt: skip
    """The descriptor of the ``producer`` or ``consumer`` example on data ``network`` at
    ``address`` (a.b.c.d/n), deploying its built-in template."""
    return {
        "name": name or role,
        "tenant": tenant,
        "servicesProduced": [service] if role == "producer" else [],
        "servicesRequired": [service] if role == "consumer" else [],
        "deploy": {
            "template": template_name(role),
            "env": {"SER_NAME": service},
            "data": {"network": network, "address": address},
        },
    }


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in ROLES:
        sys.stderr.write(
            "usage: python -m fluidedge.mec.examples producer|consumer NETWORK ADDR/LEN\n"
        )
        return 2
    sys.stdout.write(json.dumps(descriptor(argv[0], argv[1], argv[2]), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
