"""What a server is started with."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from graft.paths import graft_home

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
    default_model: str = Field("smollm2-135m-instruct",
                               description="base the server loads at the first chat request when started without a model")
    workers: int = Field(1, ge=0, description="jobs run at once by the embedded workers (0: none, e.g. Celery workers take them)")
    runs_root: str | None = Field(None, description="where jobs put run folders; None: GRAFT_HOME/runs")
    datasets_dir: str | None = Field(None, description="uploaded datasets; None: GRAFT_HOME/datasets")
    max_upload_bytes: int = Field(50_000_000, ge=1, description="largest upload (a dataset; the documents of one request)")
    rag_dir: str | None = Field(None, description="knowledge bases (graft rag); None: GRAFT_HOME/rag")
    broker_url: str | None = Field(None, description="Celery broker (redis://...): jobs go to remote workers instead")

    @field_validator("token", mode="before")
    @classmethod
    def _no_empty_token(cls, value):
        # an empty token would let an empty bearer in while the bind check believes the server is guarded
        return None if value in ("", None) or (isinstance(value, SecretStr) and not value.get_secret_value()) else value

    def runs_path(self) -> Path:
        return Path(self.runs_root) if self.runs_root else graft_home() / "runs"

    def datasets_path(self) -> Path:
        return Path(self.datasets_dir) if self.datasets_dir else graft_home() / "datasets"

    def rag_path(self) -> Path:
        return Path(self.rag_dir) if self.rag_dir else graft_home() / "rag"

    @classmethod
    def from_env(cls, **given) -> "ServerSettings":
        """Settings from arguments; the token falls back to $GRAFT_API_TOKEN (None/empty: no token)."""
        if given.get("token") is None:
            given["token"] = os.environ.get(TOKEN_ENV)
        return cls(**given)
