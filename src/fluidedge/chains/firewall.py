"""Live rules of a running vFirewall (:func:`fluidedge.chains.functions.firewall`).

``PUT /v1/chains/firewalls/{instance}/rules`` replaces the rules of a firewall instance while
it runs and forwards: one ``nft -f`` transaction in the instance's network namespace deletes
its ``bridge fw`` table and adds it again with the new rules (:func:`replace_script`).
nftables applies a transaction whole or not at all, so a frame crossing the function meets
either the old rules or the new ones, never none; a rule nft refuses (a 422 with nft's
message) leaves the old rules in place. The instance is not restarted: its process, its
legs, its place in its groups and the chain's pins are untouched.

The rules last as long as the instance (they are its kernel's state); a new instance of the
template starts with the template's rules (change the template for those). What the kernel
holds, with each rule's counters, is ``GET`` on the same path (:func:`list_script`).

The instance is entered with ``nsenter --net=/proc/<pid>/ns/net`` and the host's ``nft``
(the ``nft`` image is the host's binary too), never a shell.
"""

from __future__ import annotations

from collections.abc import Callable

from fluidedge.chains.errors import ChainConflict, ChainUnprocessable
from fluidedge.chains.functions import FIREWALL_IMAGE, FIREWALL_TABLE, firewall_ruleset
from fluidedge.linux.proc import CommandError, run

# The file of the template's rules (``files``): what marks a template as a vFirewall's.
RULES_FILE = "firewall.nft"


def replace_script(rules: list[str]) -> str:
    """One nft transaction: declare the table (so that the delete never fails), delete it,
    add it with ``rules`` (validated as the template's are)."""
    family, name = FIREWALL_TABLE
    return f"table {family} {name}\ndelete table {family} {name}\n{firewall_ruleset(rules)}"


def list_script() -> list[str]:
    family, name = FIREWALL_TABLE
    return ["nft", "list", "table", family, name]


def is_firewall(image: str, files: dict[str, str]) -> bool:
    """Whether a template (its image and files) is a vFirewall's."""
    return image == FIREWALL_IMAGE and RULES_FILE in files


class LiveFirewalls:
    """Rules of running vFirewall instances. ``lookup(instance)`` gives the instance's pid if
    it runs a vFirewall's template (raising the instances part's 404 if it does not exist and
    :class:`ChainConflict` if it is not a running vFirewall)."""

    def __init__(self, lookup: Callable[[str], int]) -> None:
        self.lookup = lookup

    @staticmethod
    def _nsenter(pid: int, argv: list[str]) -> list[str]:
        return ["nsenter", f"--net=/proc/{pid}/ns/net", "--", *argv]

    def show(self, instance: str) -> dict[str, str]:
        """The firewall's table as its kernel holds it (rules with their counters)."""
        pid = self.lookup(instance)
        try:
            done = run(self._nsenter(pid, list_script()))
        except CommandError as exc:
            raise ChainConflict(
                f"firewall {instance}: its table is not readable: {exc.stderr.strip()}"
            ) from None
        return {"instance": instance, "ruleset": done.stdout}

    def replace(self, instance: str, rules: list[str]) -> dict[str, str]:
        """Replace the rules of running firewall ``instance`` in one transaction."""
        script = replace_script(rules)  # refused before anything is touched
        pid = self.lookup(instance)
        try:
            run(self._nsenter(pid, ["nft", "-f", "-"]), input_text=script)
        except CommandError as exc:
            # Rules of the allowed form that nft will not take (``udp dport nope drop``): the
            # request is understood, the host's nftables refuses what it asks.
            raise ChainUnprocessable(
                f"firewall {instance}: nft refused the rules: {exc.stderr.strip()}"
            ) from None
        return self.show(instance)
