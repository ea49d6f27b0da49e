"""Registry configuration: ``LEDGER_REGISTRY_*`` environment, a TOML file, flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from protocol.serving import ServerLimits


class RegistrySettings(BaseSettings):
    """Everything a registry process needs to know."""

    model_config = SettingsConfigDict(env_prefix="LEDGER_REGISTRY_", env_nested_delimiter="__", extra="forbid")

    data_dir: Path = Path("data/registry")
    host: str = "127.0.0.1"
    port: int = Field(8600, ge=0, le=65535)
    ttl_s: float = Field(30.0, gt=0, le=86_400, description="a node without heartbeat this long is offline")
    sweep_interval_s: float = Field(2.0, gt=0, le=3600)
    request_window_s: float = Field(60.0, gt=0, le=3600, description="accepted clock skew of signed requests")
    rate_per_s: float = Field(200.0, gt=0, description="requests per second per client address")
    burst: int = Field(400, ge=1, description="requests a client may send at once")
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)
    max_page: int = Field(500, ge=1, le=10_000)
    server: ServerLimits = ServerLimits()
    admin_token: SecretStr | None = Field(
        None, description="bearer token of the registry's operator for /admin (enrolments, bindings); unset = off"
    )
    enrolment: Literal["token", "open"] = Field(
        "token",
        description="token: a ledger id is bound to a key only on a registration presenting the enrolment token"
        " the operator issued for that id; open: the first registration binds it (a closed network only)",
    )
    enrolments: dict[str, SecretStr] = Field(
        {},
        description="enrolment tokens by ledger id, from configuration (beside those issued by POST /admin/enrolments)",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "registry.db"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @classmethod
    def load(cls, config: Path | None = None, **flags: Any) -> Self:
        given = {name: value for name, value in flags.items() if value is not None}
        if config is None:
            return cls(**given)
        if not config.is_file():
            raise FileNotFoundError(f"{config}: config file not found")

        class FromFile(cls):  # type: ignore[misc,valid-type]
            model_config = SettingsConfigDict(toml_file=config)

        return FromFile(**given)
