"""Who may call the server: once a token is set, every route but /health wants it as a bearer token;
and a server without a token listens on this machine only. (Request size: FastAPI's max_body_size.)"""

from __future__ import annotations

import ipaddress
import secrets

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from graft.errors import ConfigError
from graft.server.settings import TOKEN_ENV, ServerSettings
from graft.server.state import Settings

bearer = HTTPBearer(auto_error=False, description=f"the server's API token (graft serve --token, or ${TOKEN_ENV})")


def require_token(settings: Settings, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
    if settings.token is None:
        return
    given = credentials.credentials.encode() if credentials else b""
    if not secrets.compare_digest(given, settings.token.get_secret_value().encode()):
        raise HTTPException(401, "missing or wrong API token: send 'Authorization: Bearer TOKEN'",
                            headers={"WWW-Authenticate": "Bearer"})


def check_bind(settings: ServerSettings) -> None:
    """Refuse to listen beyond localhost without a token: anyone who can reach the port could use the models."""
    if settings.token is None and not is_local(settings.host):
        raise ConfigError(f"refusing to listen on {settings.host} without an API token",
                          hint=f"set ${TOKEN_ENV} or pass --token, or keep the default host 127.0.0.1")


def is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
