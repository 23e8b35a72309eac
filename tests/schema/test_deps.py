"""What a constraint can see (:mod:`nfo.schema.deps`): a ``when`` evaluated from the
root (a top-level ``uses``' or ``augment``'s) reads what its path names from there."""

from __future__ import annotations

from pathlib import Path

from nfo.schema import Schema, SNode
from nfo.schema.deps import independence

MODULE = """
module nfo-depstest {
  yang-version 1.1;
  namespace "urn:nfo:depstest";
  prefix dt;
  container pool {
    list member { key "id"; leaf id { type string; } }
    list spare { key "id"; leaf id { type string; } }
  }
  grouping settings {
    container settings { leaf level { type uint8; } }
  }
  uses settings {
    when "dt:pool/dt:member[dt:id = 'boss']";
  }
}
"""


def test_a_when_from_the_root_reads_into_the_list_it_names(tmp_path: Path) -> None:
    (tmp_path / "nfo-depstest.yang").write_text(MODULE)
    schema = Schema(extra_dirs=[tmp_path])
    names = {SNode(info.schema).name for info in independence(schema).lists.values()}
    # member is read by the settings' when: not independent; spare is
    assert "spare" in names and "member" not in names
    triggers = schema.autodelete_triggers()
    assert triggers is not None and "/nfo-depstest:pool" in triggers
    assert "/nfo-depstest:settings" in schema.autodeleting_tops()

