"""The sweep's own state file beside its Ray Tune folder: what a resumed sweep must not
do again (start another parent run, train the final model again, register it twice)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from sn_platform.data.io import write_text
from sn_platform.sweep.results import FinalResult


@dataclass
class SweepState:
    """``STORAGE/NAME.sn-sweep.json``: the parent run, then the final model and its version.

    Parameters
    ----------
    path : the state file
    parent_run_id : the sweep's parent MLflow run
    final_config_id : the configuration whose final model ``final`` is
    final : the final model, once trained
    version : its registered version, once registered
    """

    path: Path
    parent_run_id: str
    final_config_id: str | None = None
    final: FinalResult | None = None
    version: str | None = None

    @staticmethod
    def file(storage: Path, name: str) -> Path:
        """Where the state of sweep ``name`` under ``storage`` lives."""
        return storage / f"{name}.sn-sweep.json"

    @classmethod
    def load(cls, path: Path) -> SweepState | None:
        """The saved state; None when there is none."""
        if not path.exists():
            return None
        saved = json.loads(path.read_text())
        final = saved.get("final")
        return cls(
            path,
            saved["parent_run_id"],
            saved.get("final_config_id"),
            FinalResult(**final) if final else None,
            saved.get("version"),
        )

    def save(self) -> None:
        """Write the state (atomically)."""
        saved = {
            "parent_run_id": self.parent_run_id,
            "final_config_id": self.final_config_id,
            "final": asdict(self.final) if self.final else None,
            "version": self.version,
        }
        write_text(self.path, json.dumps(saved))

    def final_of(self, config_id: str) -> FinalResult | None:
        """The recorded final model of ``config_id``, if it was trained."""
        return self.final if self.final_config_id == config_id else None

    def record_final(self, config_id: str, final: FinalResult) -> None:
        """Record the trained final model of ``config_id``."""
        self.final_config_id, self.final = config_id, final
        self.save()

    def record_version(self, version: str) -> None:
        """Record the registered version."""
        self.version = version
        self.save()
