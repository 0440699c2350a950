"""/api/rag: knowledge bases (graft.rag) over HTTP: create, list, upload documents, search, and ask a
served model a question answered from the retrieved chunks, with numbered sources (JSON or SSE).

Knowledge bases live in the settings' rag folder (GRAFT_HOME/rag: the ones `graft rag` builds).
Uploaded documents are kept in each base's docs/ folder. Endpoints are plain `def`s: embedding and
generation run in FastAPI's thread pool, never on the event loop.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Annotated, Any, Iterator, Literal

from fastapi import APIRouter, Depends, File, HTTPException, Request, UploadFile
from fastapi.responses import StreamingResponse
from fastapi.sse import format_sse_event
from pydantic import BaseModel, Field, field_validator

from graft.data.library import DatasetTooLargeError, copy_upload
from graft.errors import ConflictError, GraftError
from graft.inference.stream import Reply
from graft.models.catalog import CATALOG
from graft.paths import safe_name
from graft.rag import (KnowledgeBase, KnowledgeBaseNotFoundError, cited_numbers, fit_to_context, list_knowledge_bases,
                       load_template, prompt_from_hits)
from graft.rag.readers import SUPPORTED, source_name
from graft.rag.vectors import KINDS
from graft.server.errors import BadRequest, ErrorBody, graft_body
from graft.server.metrics import Monitoring, Tracker
from graft.server.openai_api import _closing, _timed
from graft.server.state import Pool, Settings

router = APIRouter(prefix="/api/rag", tags=["rag"])
ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 404, 409, 422)}
ENCODERS = tuple(name for name, entry in CATALOG.items() if entry.task == "encoder")


# -- bodies ----------------------------------------------------------------------------------------


class CreateKnowledgeBase(BaseModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                      description="letters, digits, . _ - (the folder's name)")
    # a bundled encoder only: over HTTP a client must not make the server load or download any model it names
    embedder: Literal[ENCODERS] = "minilm-l6"  # type: ignore[valid-type]
    chunk_size: int = Field(800, ge=50, le=20_000, description="characters per chunk")
    overlap: int = Field(120, ge=0, description="characters a chunk repeats of the one before; under chunk_size / 2")
    index: Literal[KINDS] = "flat"  # type: ignore[valid-type]


class KnowledgeBaseOut(BaseModel):
    name: str
    embedder: str
    dim: int
    index: str
    chunk_size: int
    overlap: int
    created: str
    updated: str
    files: int
    chunks: int


class IndexedFile(BaseModel):
    source: str = Field(description="how answers cite it; an uploaded document by its file name")
    sha256: str
    chunks: int
    indexed_at: str
    uploaded: bool = Field(description="kept in the knowledge base's docs folder (else indexed by `graft rag index`)")


class KnowledgeBaseDetail(KnowledgeBaseOut):
    documents: list[IndexedFile]


class SkippedOut(BaseModel):
    path: str
    reason: str


class IndexReportOut(BaseModel):
    added: list[str]
    updated: list[str]
    unchanged: list[str]
    removed: list[str]
    skipped: list[SkippedOut]
    chunks_embedded: int
    chunks: int = Field(description="chunks in the knowledge base now")
    seconds: float


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=4000)
    k: int = Field(10, ge=1, le=100)

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the query is empty")
        return value


class HitOut(BaseModel):
    n: int = Field(description="1-based rank: the number an answer cites as [n]")
    score: float = Field(description="cosine similarity to the question")
    id: int
    source: str
    title: str = Field(description="the heading path of the chunk ('' when none)")
    text: str
    page: int | None = None
    line: int | None = None


class CitedHit(HitOut):
    cited: bool = Field(description="the answer cites it")


class AskRequest(BaseModel):
    question: str = Field(min_length=1, max_length=4000)
    model: str | None = Field(None, description="a served model id (GET /v1/models); default: the server's default")
    k: int | None = Field(None, ge=1, le=100, description="chunks retrieved; default: the template's (10)")
    stream: bool = Field(False, description="Server-Sent Events: sources, then delta pieces, then done")
    max_tokens: int | None = Field(None, ge=1, le=8192, description="answer length cap; default: the template's")
    temperature: float | None = Field(None, ge=0.0, le=2.0, description="0: greedy; default: the template's")

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the question is empty")
        return value.strip()


class AskUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    finish_reason: str


class AnswerOut(BaseModel):
    answer: str
    model: str
    sources: list[CitedHit] = Field(description="the chunks the prompt held, best first, numbered as cited")
    cited: list[int] = Field(description="source numbers the answer cites, in order of first use")
    left_out: int = Field(description="retrieved chunks that did not fit the context budget")
    usage: AskUsage


# -- one KnowledgeBase object per base -------------------------------------------------------------


class OpenBases:
    """The app's open knowledge bases, one object per name, so searches reuse its loaded chunks, vectors
    and index instead of reading them per request (each object catches up with changes made on disk by
    other writers itself: `graft rag index`, another server)."""

    def __init__(self, root: Path):
        self.root = root
        self._open: dict[str, KnowledgeBase] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> KnowledgeBase:
        with self._lock:
            kb = self._open.get(name)
            if kb is None or not (kb.folder / "kb.json").is_file():  # new to us, or deleted by another writer
                self._open.pop(name, None)
                try:
                    kb = KnowledgeBase.open(name, self.root)  # not there: KnowledgeBaseNotFoundError, a 404
                except OSError:  # a name no folder can have (too long for the filesystem): no such base either
                    raise KnowledgeBaseNotFoundError(name, self.root) from None
                self._open[name] = kb
            return kb

    def create(self, **settings) -> KnowledgeBase:
        with self._lock:
            kb = KnowledgeBase.create(root=self.root, **settings)
            self._open[settings["name"]] = kb
            return kb

    def delete(self, name: str) -> None:
        kb = self.get(name)
        with self._lock:
            kb.delete()
            self._open.pop(name, None)


def _bases(request: Request) -> OpenBases:
    state = request.app.state
    if getattr(state, "rag", None) is None:
        state.rag = OpenBases(state.settings.rag_path())
    return state.rag


Bases = Annotated[OpenBases, Depends(_bases)]


# -- knowledge bases -------------------------------------------------------------------------------


@router.get("", response_model=list[KnowledgeBaseOut], responses=ERRORS)
def list_bases(bases: Bases) -> list[dict]:
    return list_knowledge_bases(bases.root)


@router.post("", status_code=201, response_model=KnowledgeBaseOut, responses=ERRORS)
def create(body: CreateKnowledgeBase, bases: Bases) -> dict:
    """An empty knowledge base; 409 when the name is taken."""
    return bases.create(**body.model_dump()).info()


@router.get("/{kb}", response_model=KnowledgeBaseDetail, responses=ERRORS)
def describe(kb: str, bases: Bases) -> dict:
    base = bases.get(kb)
    docs = base.docs_dir.resolve()
    documents = [{**f, "uploaded": Path(f.get("path", "")).parent == docs} for f in base.files()]
    return {**base.info(), "documents": documents}


@router.delete("/{kb}", status_code=204, responses=ERRORS)
def delete(kb: str, bases: Bases) -> None:
    """The knowledge base and its uploaded documents (files indexed from elsewhere stay where they are)."""
    bases.delete(kb)


@router.post("/{kb}/documents", response_model=IndexReportOut, responses={
    **ERRORS, 413: {"model": ErrorBody, "description": "over the upload limit"}})
def upload(kb: str, bases: Bases, settings: Settings,
           files: list[UploadFile] = File(..., description=", ".join(sorted(SUPPORTED)))) -> dict:
    """Store documents in the knowledge base and index them: new ones added, changed ones re-indexed.

    A file of the same name replaces the one uploaded before. The files together may hold at most
    the server's max_upload_bytes; a rejected upload stores nothing.
    """
    base = bases.get(kb)
    names = [_file_name(f.filename) for f in files]
    base.folder.mkdir(parents=True, exist_ok=True)
    # staged beside docs/ (same filesystem: moving in is a rename), so a refused upload leaves nothing
    staging = Path(tempfile.mkdtemp(prefix=".upload-", dir=base.folder))
    try:
        budget = settings.max_upload_bytes
        for f, name in zip(files, names):
            try:
                budget -= copy_upload(f.file, staging / name, budget, settings.max_upload_bytes)
            except DatasetTooLargeError as e:
                raise HTTPException(413, str(e)) from None
        base.docs_dir.mkdir(exist_ok=True)
        for name in dict.fromkeys(names):
            os.replace(staging / name, base.docs_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    paths = [base.docs_dir / name for name in dict.fromkeys(names)]
    report = base.add(paths)
    unreadable = {s.path for s in report.skipped}
    for path in paths:  # an unreadable upload is not kept, unless an earlier version of it is indexed
        source = base.source_of(path)
        if source in unreadable and source not in base.meta["files"]:
            path.unlink(missing_ok=True)
    out = report.to_dict()
    out["skipped"] = [{"path": s["path"], "reason": _unplaced(s["reason"], base)} for s in out["skipped"]]
    return out


@router.post("/{kb}/search", response_model=list[HitOut], responses=ERRORS)
def search(kb: str, body: SearchRequest, bases: Bases) -> list[dict]:
    """The k chunks closest in meaning to the query, best first."""
    return [h.to_dict() for h in bases.get(kb).search(body.query, body.k)]


# -- asking ----------------------------------------------------------------------------------------


@router.post("/{kb}/ask", response_model=AnswerOut, responses={
    **ERRORS, 200: {"content": {"text/event-stream": {
        "description": "with stream: true, events `sources` (model, sources, left_out), `delta` ({text}) per "
                       "piece, then `done` (answer, cited, usage); `error` (an error body) if generation fails"}}}})
def ask(kb: str, body: AskRequest, bases: Bases, pool: Pool, settings: Settings, monitor: Monitoring):
    """Answer the question from the knowledge base's closest chunks, citing them as [n]."""
    base = bases.get(kb)
    info = pool.info(body.model or pool.default)  # an unknown model is a 404 before any work
    if not base.meta["files"]:
        raise ConflictError(f"knowledge base {base.name!r} holds no documents yet", hint="upload some first")
    template = _template()
    max_new = body.max_tokens or template.generation.max_tokens
    tokenizer = pool.tokenizer(info.id)
    template = fit_to_context(template, pool.model(info.id), tokenizer, body.question, max_new)
    prompt = prompt_from_hits(body.question, base.search(body.question, body.k or template.k), template, tokenizer)
    options = {**prompt.generation, "max_new_tokens": max_new}
    if body.temperature is not None:
        options["temperature"] = body.temperature
    reply = pool.stream(info.id, prompt.messages, **options)  # a prompt over the context fails here: a 400
    tracker = monitor.track(info, body.question if settings.log_prompts else None, body.stream)
    sources = [h.to_dict() for h in prompt.sources]
    head = {"model": info.id, "left_out": prompt.left_out}
    if body.stream:
        return StreamingResponse(_closing(_events(reply, tracker, sources, head)), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    try:
        text = "".join(_timed(reply, tracker)).strip()
    except Exception as e:
        tracker.fail(f"{type(e).__name__}: {e}")
        raise
    tracker.finish(reply.usage)
    return _answer(text, sources, reply, head)


def _answer(text: str, sources: list[dict], reply: Reply, head: dict) -> dict:
    cited = cited_numbers(text, len(sources))
    u = reply.usage
    return {"answer": text, **head, "cited": cited, "sources": [{**s, "cited": s["n"] in cited} for s in sources],
            "usage": {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
                      "total_tokens": u.prompt_tokens + u.completion_tokens, "finish_reason": u.finish_reason}}


def _events(reply: Reply, tracker: Tracker, sources: list[dict], head: dict) -> Iterator[bytes]:
    def event(kind: str, data: Any) -> bytes:
        return format_sse_event(event=kind, data_str=_json(data))

    pieces: list[str] = []
    try:
        yield event("sources", {**head, "sources": [{**s, "cited": False} for s in sources]})
        for piece in _timed(reply, tracker):
            pieces.append(piece)
            yield event("delta", {"text": piece})
    except GeneratorExit:  # the client hung up: stop generating now
        reply.close()
        tracker.fail("the client disconnected")
        raise
    except Exception as e:  # the headers are sent: the error travels as an event
        tracker.fail(f"{type(e).__name__}: {e}")
        error = graft_body(e) if isinstance(e, GraftError) else {"error": {"message": "internal error", "type": "server_error"}}
        yield event("error", error)
        return
    tracker.finish(reply.usage)
    done = _answer("".join(pieces).strip(), sources, reply, head)
    yield event("done", {k: done[k] for k in ("answer", "cited", "usage")})


def _json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)


@functools.cache
def _template():
    """The shipped prompt template (the one `graft rag ask` uses without --template), read once."""
    return load_template()


# -- names -----------------------------------------------------------------------------------------


def _file_name(filename: str | None) -> str:
    """The stored name of an uploaded file: its last path part, made safe; a supported type."""
    raw = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    try:
        name = safe_name(raw)
    except ValueError:
        raise BadRequest(f"not a usable file name: {filename!r}", "files") from None
    if Path(name).suffix.lower() not in SUPPORTED:
        raise BadRequest(f"{name}: unsupported file type {Path(name).suffix or '(none)'}; "
                         f"upload {', '.join(sorted(SUPPORTED))}", "files")
    return name


def _unplaced(message: str, kb: KnowledgeBase) -> str:
    """A message about an uploaded file, naming it as the client did, not by the server's path to it."""
    for where in (str(kb.docs_dir.resolve()), source_name(kb.docs_dir), str(kb.docs_dir)):
        message = message.replace(where + "/", "")
    return message
