"""/api/datasets: upload (checked row by row with graft's loaders), list, describe, preview, delete.
The files live in the settings' datasets folder; the logic is graft.data.library's."""

from __future__ import annotations

from fastapi import APIRouter, File, Form, HTTPException, Query, UploadFile
from pydantic import BaseModel

from graft.data.library import DatasetExistsError, DatasetTooLargeError
from graft.server.resources import Library
from graft.server.state import Settings

router = APIRouter(prefix="/api/datasets", tags=["datasets"])
MULTIPART_SLACK = 64 * 1024  # boundaries and part headers around the file


def body_limit(settings) -> int:
    """The request body limit for this router (include_router's max_body_size): an upload may pass
    the app's limit for small JSON bodies; the file itself is held to max_upload_bytes exactly."""
    return settings.max_upload_bytes + MULTIPART_SLACK


class DatasetOut(BaseModel):
    name: str
    path: str
    format: str | None
    rows: int | None
    bytes: int
    uploaded: str


class PreviewOut(BaseModel):
    name: str
    format: str
    total: int | None
    rows: list[dict]


@router.post("", status_code=201, response_model=DatasetOut,
             responses={409: {"description": "the name is taken"}, 413: {"description": "over the upload limit"},
                        422: {"description": "a malformed row: the message names the file, row and field"}})
def upload(library: Library, settings: Settings, file: UploadFile = File(..., description=".json .jsonl .csv .tsv .parquet .txt"),
           name: str | None = Form(None, description="stored name (default: the file's); the extension is kept")) -> dict:
    """Store a dataset once every row is valid; a rejected upload leaves nothing behind."""
    try:
        return library.add(file.file, file.filename or "", name, settings.max_upload_bytes)
    except DatasetTooLargeError as e:
        raise HTTPException(413, str(e)) from None
    except DatasetExistsError as e:
        raise HTTPException(409, str(e)) from None


@router.get("", response_model=list[DatasetOut])
def list_datasets(library: Library) -> list[dict]:
    return library.list()


@router.get("/{name}", response_model=DatasetOut)
def get_dataset(name: str, library: Library) -> dict:
    return library.get(name)


@router.get("/{name}/preview", response_model=PreviewOut)
def preview(name: str, library: Library, limit: int = Query(20, ge=1, le=500)) -> dict:
    """The first rows as training sees them: chat `messages`, or `text` (with `label` for classification)."""
    return library.preview(name, limit)


@router.delete("/{name}", status_code=204)
def delete(name: str, library: Library) -> None:
    library.delete(name)
