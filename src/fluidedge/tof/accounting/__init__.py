"""Per-UE usage records of offloaded traffic (issue 22, docs/accounting.md).

Traffic the TOF offloads never reaches the core's gateway, so the operator's charging does not
see it. This package counts it per bearer and service in the pipeline (:mod:`.usage`), decides
when a record is reported with a pure policy (:mod:`.policy`, in the spirit of PFCP usage
reporting: volume, time, periodic, bearer end), encodes records as IPFIX with a sans-I/O codec
(:mod:`.ipfix`) and ships them to a collector, a spool and JSON Lines files (:mod:`.export`);
``GET /usage``, the metrics and the restart marker read the open records without holding the
data plane's lock across them (:mod:`.readout`).
"""
