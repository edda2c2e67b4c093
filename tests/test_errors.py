"""Config values that name a folder stay one folder name."""

from __future__ import annotations

from pathlib import Path

import pytest

from sn_platform.data.preprocessing import PreprocessingSpec
from sn_platform.data.settings import DataSettings, SplitSettings
from sn_platform.errors import ConfigError, folder_name
from sn_platform.inference.options import BatchJob


@pytest.mark.parametrize("name", ["sn-sweep", "demo.2", "manual2", "..x"])
def test_plain_names_pass(name):
    assert folder_name("tune.name", name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "/abs", "a\\b"])
def test_names_that_leave_their_folder_are_refused(name):
    with pytest.raises(ConfigError, match=r"^tune\.name: .* single folder name"):
        folder_name("tune.name", name)


def test_label_sources_are_checked_where_they_are_read():
    with pytest.raises(ConfigError, match=r"^data\.label_source"):
        DataSettings("/data", PreprocessingSpec(), SplitSettings("s.json"), "../../etc")
    with pytest.raises(ConfigError, match=r"^label_source"):
        BatchJob(Path("in"), Path("out"), label_source="../x")
