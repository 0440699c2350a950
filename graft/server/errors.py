"""Every error the server answers with, as an OpenAI-style JSON body and never a traceback:
`{"error": {"message", "type", "param", "code"}}` (plus graft's `hint` when it has one)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from graft.errors import ConfigError, ConflictError, DataError, GraftError, ModelNotFoundError, NotFoundError, OfflineError

log = logging.getLogger("graft.server")

TYPES = {401: "invalid_request_error", 404: "invalid_request_error", 409: "invalid_request_error", 413: "invalid_request_error",
         422: "invalid_request_error", 500: "server_error", 503: "server_error"}
CODES = {401: "invalid_api_key", 404: "not_found", 409: "conflict", 413: "request_too_large", 503: "unavailable"}


class BadRequest(ConfigError):
    """A request the server will not serve as asked; `param` names the field at fault."""

    def __init__(self, message: str, param: str | None = None, hint: str | None = None):
        super().__init__(message, hint)
        self.param = param


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None
    hint: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


def body(status: int, message: str, param: str | None = None, code: str | None = None, hint: str | None = None) -> dict:
    detail = ErrorDetail(message=message, type=TYPES.get(status, "invalid_request_error"), param=param,
                         code=code or CODES.get(status), hint=hint)
    return ErrorBody(error=detail).model_dump()


# the most specific class first; any other GraftError is the client's to fix: 400
STATUS = ((NotFoundError, 404), (ConflictError, 409), (DataError, 422), (OfflineError, 503))


def graft_status(e: GraftError) -> int:
    return next((code for cls, code in STATUS if isinstance(e, cls)), 400)


def graft_body(e: GraftError) -> dict:
    code = "model_not_found" if isinstance(e, ModelNotFoundError) else None
    return body(graft_status(e), str(e), getattr(e, "param", None), code, e.hint)


def install(app: FastAPI) -> None:
    @app.exception_handler(GraftError)
    async def graft_error(request: Request, e: GraftError) -> JSONResponse:
        return JSONResponse(graft_body(e), graft_status(e))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException) -> JSONResponse:
        return JSONResponse(body(e.status_code, str(e.detail)), e.status_code, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        problems = e.errors()
        where = [_field(err) for err in problems]
        message = "; ".join(f"{w or 'body'}: {err['msg']}" for w, err in zip(where, problems))
        return JSONResponse(body(422, message, where[0] if where else None, "invalid_value"), 422)

    app.add_middleware(_Crashes)


def _field(error: dict) -> str | None:
    """`messages.0.role` from pydantic's ("body", "messages", 0, "role"); None for the body as a whole."""
    if error["type"] == "json_invalid":
        return None
    loc = error["loc"][1:] if error["loc"] and error["loc"][0] in ("body", "query", "path", "header") else error["loc"]
    return ".".join(map(str, loc)) or None


class _Crashes:
    """An unexpected exception: logged with its traceback, answered with a JSON 500 that has none.

    (Starlette's own 500 handler re-raises, and uvicorn then closes the connection a client may reuse.)
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        started = False

        async def watch(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as e:
            if scope["type"] != "http" or started:
                raise
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            await JSONResponse(body(500, f"internal error ({type(e).__name__}); the server log has the details"), 500)(
                scope, receive, send)
