"""Connecting to Temporal through the SDK's standard environment configuration."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.envconfig import ClientConfig

from workflows.converter import DATA_CONVERTER

DEFAULT_ADDRESS = "localhost:7233"


def resolved_address(address: str | None = None) -> str:
    """The Temporal address a ``connect(address)`` would use."""
    if address:
        return address
    target = ClientConfig.load_client_connect_config().get("target_host")
    return str(target or DEFAULT_ADDRESS)


async def connect(address: str | None = None, namespace: str | None = None) -> Client:
    """Connect as configured by ``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``,
    ``TEMPORAL_API_KEY``, ``TEMPORAL_TLS*`` or a ``temporal.toml`` profile
    (``TEMPORAL_PROFILE``); explicit arguments win. The client converts payloads with
    ``workflows.converter.DATA_CONVERTER`` (the SDK's JSON, made cheaper)."""
    config = ClientConfig.load_client_connect_config()
    config.setdefault("target_host", DEFAULT_ADDRESS)
    if address:
        config["target_host"] = address
    if namespace:
        config["namespace"] = namespace
    return await Client.connect(**config, data_converter=DATA_CONVERTER)
