"""Superfluid (on-demand) services: instances created on a service's first packet, paused when
idle, resumed on traffic and deleted after a longer idle time (issue 17, docs/superfluid.md).

- :mod:`.model`: the ``onDemand`` part of a TOF service (validated, stored as JSON).
- :mod:`.table`: the data plane's pure state per binding (service, UE): queue, state, activity.
- :mod:`.plane`: the thread-safe control calls a TOF backend offers the controller.
- :mod:`.policy`: pure decisions (which binding to pause/delete, admission, addresses).
- :mod:`.controller`: the thread that turns demands into instance-manager calls.
"""
