"""Lawful-intercept mirroring of offloaded traffic (issue 22, docs/accounting.md).

An admin names a target (a UE address, optionally narrowed to one bearer's eNB and SGW) and a
destination (a mirror interface, or a pcap file in an allowed directory): every packet the TOF
offloads for that target, both directions, decapsulated, is copied there with a timestamp.
:mod:`.model` holds the pure parts (request validation, matching, the pcap format),
:mod:`.sink` the bounded writers, :mod:`.manager` persistence and the backends' tables,
:mod:`.api` the admin-only ``/v1/intercepts`` routes.
"""
