"""A model is pickled code: only the tracking store and local folders load without consent."""

from __future__ import annotations

import pytest

from sn_platform.errors import ConfigError
from sn_platform.inference.model_uris import check_model_uri


@pytest.mark.parametrize(
    "uri",
    [
        "models:/sn-vnet@champion", "models:/sn-vnet/3", "runs:/0123abcd/model",
        "mlflow-artifacts:/1/abc/artifacts/model", "/data/models/sn-vnet", "relative/model",
        "file:///data/models/sn-vnet",
    ],
)  # fmt: skip
def test_store_and_local_uris_load(uri):
    check_model_uri(uri)


@pytest.mark.parametrize(
    "uri",
    ["https://example.org/model", "http://10.0.0.1/m", "s3://bucket/model", "gs://b/m",
     "HTTPS://EXAMPLE.ORG/M", "hdfs://nn/model"],
)  # fmt: skip
def test_remote_uris_are_refused_unless_allowed(uri):
    with pytest.raises(ConfigError, match=r"^model_uri: .* allow_remote_code=true"):
        check_model_uri(uri)
    check_model_uri(uri, allow_remote_code=True)
