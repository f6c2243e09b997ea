"""The example apps ship as built-in instance templates and as descriptors deploying them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from fluidedge.core.config import parse_config
from fluidedge.core.store import Store
from fluidedge.instances.models import TemplateSpec
from fluidedge.mec import examples
from fluidedge.mec.descriptor import AppDescriptor
from fluidedge.mec.part import MecConfig, MecPart


def test_the_templates_and_descriptors_are_valid_and_name_each_other() -> None:
    specs = [TemplateSpec.model_validate(doc) for doc in examples.templates()]
    assert [s.name for s in specs] == ["mec-producer", "mec-consumer"]
    for spec in specs:
        assert spec.image == "busybox"
        assert spec.pool.size == 0  # no warm shells: apps derive their own template
        assert spec.command[:2] == [examples.BUSYBOX, "sh"]
    for role in examples.ROLES:
        doc = AppDescriptor.model_validate(examples.descriptor(role, "apps", "198.19.0.130/24"))
        assert doc.deploy is not None
        assert doc.deploy.template == f"mec-{role}"


class FakeManager:
    def __init__(self) -> None:
        self.given: list[str] = []

    def provide_templates(self, specs: list[TemplateSpec]) -> list[str]:
        self.given += [s.name for s in specs]
        return [s.name for s in specs]


def test_the_part_hands_them_to_the_instance_manager_unless_told_not_to(tmp_path: Path) -> None:
    for enabled, want in ((True, ["mec-producer", "mec-consumer"]), (False, [])):
        manager = FakeManager()
        ctx: Any = SimpleNamespace(
            config=parse_config({"state_dir": str(tmp_path)}),
            store=Store(tmp_path / f"db{enabled}.sqlite"),
            parts={"instances": SimpleNamespace(manager=manager)},
        )
        part = MecPart(MecConfig(example_templates=enabled), ctx)
        part._provide_templates()
        assert manager.given == want
