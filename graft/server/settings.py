"""What a server is started with."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

TOKEN_ENV = "GRAFT_API_TOKEN"


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    token: SecretStr | None = Field(None, description=f"bearer token every route but /health requires (from_env reads ${TOKEN_ENV})")
    log_prompts: bool = Field(True, description="keep the user's text in the request log (drift detection reads it)")
    db: str | None = Field(None, description="SQLAlchemy URL or SQLite file; None: graft's database (graft/db.py)")
    max_request_bytes: int = Field(1_000_000, ge=1, description="larger request bodies get 413")
    default_max_tokens: int = Field(256, ge=1, description="reply length when a request names none")

    @field_validator("token", mode="before")
    @classmethod
    def _no_empty_token(cls, value):
        # an empty token would let an empty bearer in while the bind check believes the server is guarded
        return None if value in ("", None) or (isinstance(value, SecretStr) and not value.get_secret_value()) else value

    @classmethod
    def from_env(cls, **given) -> "ServerSettings":
        """Settings from arguments; the token falls back to $GRAFT_API_TOKEN (None/empty: no token)."""
        if given.get("token") is None:
            given["token"] = os.environ.get(TOKEN_ENV)
        return cls(**given)
