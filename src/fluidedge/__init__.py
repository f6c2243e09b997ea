"""fluidedge: a superfluid mobile-edge node on one Linux host.

Parts (one sub-package each, so the tree reads like the architecture):

- ``codec``: sans-I/O protocol codecs (GTP-U, Ethernet/IP/UDP, inner 5-tuple, NAT rewrite).
- ``lab``: an S1-U mobile network in network namespaces speaking real GTP-U.
- ``tof``: the Traffic Offloading Function (learning, Pinger, NAT, Service API).
- ``instances``: the superfluid instance manager (split toolstack over runc).
- ``measure``: the measurement toolkit (replicated runs, confidence intervals, plots).
- ``core``: what the parts share (store, part protocol, daemon config, API client).
- ``daemon``: the one daemon and REST API that hosts the parts.
- ``linux``: thin, typed adapters over the kernel and system tools (I/O lives here).
"""

__version__ = "0.1.0"
