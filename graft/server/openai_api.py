"""OpenAI-compatible routes: `GET /v1/models` and `POST /v1/chat/completions` (JSON or Server-Sent Events).

`model` picks the base (its id) or an adapter (its name) from the pool. Endpoints are plain `def`s:
FastAPI runs them, and iterates the event stream, in its thread pool, so generation never blocks the loop.
"""

from __future__ import annotations

import time
import uuid
from typing import AsyncIterator, Iterator

import anyio
from fastapi import APIRouter
from fastapi.concurrency import iterate_in_threadpool, run_in_threadpool
from fastapi.responses import StreamingResponse
from fastapi.sse import format_sse_event

from graft.errors import GraftError
from graft.inference.stream import Reply
from graft.server.errors import BadRequest, ErrorBody, graft_body
from graft.server.metrics import Monitoring, Tracker
from graft.server.schemas import (AssistantMessage, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, Choice,
                                  ChunkChoice, Delta, Message, ModelCard, ModelList, Usage)
from graft.server.state import Pool, Settings

router = APIRouter(prefix="/v1", tags=["openai"])
ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 404, 413, 422)}
STARTED = int(time.time())


@router.get("/models", response_model=ModelList, responses=ERRORS)
def list_models(pool: Pool) -> ModelList:
    """The base model and every adapter, each an id to pass as `model`."""
    return ModelList(data=[ModelCard(id=m.id, created=STARTED, base=m.base, adapter=m.adapter, technique=m.technique,
                                     shared=m.shared) for m in pool.models()])


@router.post("/chat/completions", response_model=ChatCompletion, responses={
    **ERRORS, 200: {"content": {"text/event-stream": {"description": "chat.completion.chunk events when stream is true"}}}})
def chat_completions(req: ChatCompletionRequest, pool: Pool, settings: Settings, monitor: Monitoring):
    """A chat reply; with `stream: true`, `chat.completion.chunk` events ending in `data: [DONE]`."""
    _refuse_unsupported(req)
    info = pool.info(req.model)
    messages = [_plain(m, i) for i, m in enumerate(req.messages)]
    stop = [req.stop] if isinstance(req.stop, str) else req.stop
    if stop and len(stop) > 4:
        raise BadRequest("stop: at most 4 strings", "stop")
    max_tokens = req.max_completion_tokens or req.max_tokens or settings.default_max_tokens
    reply = pool.stream(info.id, messages, max_tokens, req.temperature, req.top_p, stop, req.seed)
    prompt = next((m["content"] for m in reversed(messages) if m["role"] == "user"), None)
    tracker = monitor.track(info, prompt if settings.log_prompts else None, req.stream)
    head = dict(id=f"chatcmpl-{uuid.uuid4().hex}", created=int(time.time()), model=info.id)
    if req.stream:
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return StreamingResponse(_closing(_events(reply, tracker, head, include_usage)), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    try:
        text = "".join(_timed(reply, tracker))
    except Exception as e:
        tracker.fail(f"{type(e).__name__}: {e}")
        raise
    tracker.finish(reply.usage)
    return ChatCompletion(**head, choices=[Choice(message=AssistantMessage(content=text), finish_reason=reply.usage.finish_reason)],
                          usage=_usage(reply.usage))


def _events(reply: Reply, tracker: Tracker, head: dict, include_usage: bool) -> Iterator[bytes]:
    def chunk(delta: Delta, finish: str | None = None) -> bytes:
        body = ChatCompletionChunk(**head, choices=[ChunkChoice(delta=delta, finish_reason=finish)])
        return format_sse_event(data_str=body.model_dump_json())

    try:
        yield chunk(Delta(role="assistant", content=""))
        for piece in _timed(reply, tracker):
            yield chunk(Delta(content=piece))
    except GeneratorExit:  # the client hung up
        reply.close()  # stops the generation and frees the model now, not whenever this is collected
        tracker.fail("the client disconnected")
        raise
    except Exception as e:  # headers are sent: the error travels as an event, as OpenAI's does
        tracker.fail(f"{type(e).__name__}: {e}")
        error = graft_body(e) if isinstance(e, GraftError) else {"error": {"message": "internal error", "type": "server_error"}}
        yield format_sse_event(data_str=ErrorBody(**error).model_dump_json())
        yield format_sse_event(data_str="[DONE]")
        return
    tracker.finish(reply.usage)
    yield chunk(Delta(), reply.usage.finish_reason)
    if include_usage:
        final = ChatCompletionChunk(**head, choices=[], usage=_usage(reply.usage))
        yield format_sse_event(data_str=final.model_dump_json())
    yield format_sse_event(data_str="[DONE]")


async def _closing(events: Iterator[bytes]) -> AsyncIterator[bytes]:
    """`events` read in the thread pool, and closed there as soon as the client leaves (which stops the
    generation then, rather than whenever the garbage collector gets to it, in whatever thread)."""
    try:
        async for event in iterate_in_threadpool(events):
            yield event
    finally:
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(events.close)


def _timed(reply: Reply, tracker: Tracker) -> Iterator[str]:
    for piece in reply:
        tracker.first_piece()
        yield piece


def _usage(usage) -> Usage:
    return Usage(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                 total_tokens=usage.prompt_tokens + usage.completion_tokens)


def _plain(message: Message, index: int) -> dict[str, str]:
    """{"role", "content"} as the chat template wants it: text parts joined, developer as system."""
    where = f"messages.{index}"
    if message.role in ("tool", "function"):
        raise BadRequest(f"{where}.role: tool messages are not supported (graft serves no tools)", f"{where}.role")
    content = message.content
    if isinstance(content, list):
        kinds = {p.type for p in content} - {"text"}
        if kinds:
            raise BadRequest(f"{where}.content: only text parts are supported, not {', '.join(sorted(kinds))}",
                             f"{where}.content")
        content = "".join(p.text or "" for p in content)
    return {"role": "system" if message.role == "developer" else message.role, "content": content or ""}


def _refuse_unsupported(req: ChatCompletionRequest) -> None:
    """Options that would change the answer and cannot be honoured: a clear 400, not a silent difference."""
    if req.n != 1:
        raise BadRequest(f"n={req.n}: this server returns one choice per request", "n", "send n requests instead")
    if req.logprobs:
        raise BadRequest("logprobs are not supported", "logprobs")
    if req.tools:
        raise BadRequest("tools are not supported", "tools")
    for name in ("presence_penalty", "frequency_penalty"):
        if getattr(req, name):
            raise BadRequest(f"{name} is not supported (only 0)", name)
