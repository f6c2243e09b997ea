"""Open vSwitch, run and driven by fluidedge itself (no systemd, no system instance).

The instance networks' ``ovs`` driver and the security groups' OpenFlow renderer need a switch
whose lifetime and state fluidedge owns: :mod:`.daemons` starts a private ``ovsdb-server`` and
``ovs-vswitchd`` per network namespace under the state directory (run/db/log dirs of their
own, so several coexist on one host and nothing touches ``/var/run/openvswitch``);
:mod:`.vsctl` and :mod:`.ofctl` are thin argv adapters over ``ovs-vsctl``, ``ovs-ofctl``
(every flow change one OpenFlow 1.4 bundle: all or nothing, and no packet sees half of it) and
``ovs-appctl`` (conntrack flushes); :mod:`.bridges` is what the instance networks call;
:mod:`.flows` is the flow value the security-group renderer and the chain compiler produce;
:mod:`.tool` runs a tool with a private environment, argv only (OVN's tools reuse it).

Errors::

    OvsError                       (fluidedge.errors.FluidedgeError)
    ├── OvsFailure                 a daemon or tool failed (SystemFailure, 500)
    └── OvsNotRunning              the switch of that namespace is not running (SystemFailure)
"""

__all__ = [
    "bridges",
    "daemons",
    "errors",
    "flows",
    "ofctl",
    "tool",
    "vsctl",
]
