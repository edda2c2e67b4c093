"""Which model URIs sn-infer loads. A logged model is pickled Python: loading one runs its
code. Models from the tracking store (``models:/``, ``runs:/``, ``mlflow-artifacts:``) and
local folders are as trusted as the store and the disk; anything fetched from elsewhere
(``https://``, ``s3://`` ...) is refused unless ``allow_remote_code=true`` says otherwise.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from sn_platform.errors import ConfigError

TRUSTED_SCHEMES = ("", "file", "models", "runs", "mlflow-artifacts")


def check_model_uri(uri: str, allow_remote_code: bool = False) -> None:
    """Refuse a model URI outside the tracking store and the local disk.

    Raises
    ------
    ConfigError
        naming the URI and the switch that accepts it.
    """
    scheme = urlsplit(str(uri)).scheme.lower()
    if scheme in TRUSTED_SCHEMES or allow_remote_code:
        return
    raise ConfigError(
        f"model_uri: {uri} is loaded from {scheme}:// and a model runs its own (pickled) code; "
        "use a models:/ or runs:/ URI or a local folder, or allow_remote_code=true if you "
        "trust its source"
    )
