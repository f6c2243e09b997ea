"""The cached pyroute2 handles of the instance networks, used from many threads.

pyroute2 keeps a handle's socket transport per thread; a handle shared by the prepare workers
and the request threads leaked one transport per thread, reported (as a ResourceWarning) by
the garbage collector in whatever code ran next. All uses run on one netlink thread now.
"""

from __future__ import annotations

import gc
import threading
import warnings

from fluidedge.instances import network


def test_handles_used_from_many_threads_close_without_leaking_a_transport() -> None:
    found: list[bool] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        threads = [
            threading.Thread(target=lambda: found.append(network.link_exists(None, "lo")))
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        network.close_handles()
        del threads
        gc.collect()
    assert found == [True] * 4
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []
    # and the module still works after its thread was stopped
    assert network.link_exists(None, "lo")
    network.close_handles()
