"""Request and response bodies: the OpenAI chat-completions subset graft serves, and the monitor's rows."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer

# -- requests --------------------------------------------------------------------------------------


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_calls, ... are accepted and ignored
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    # Parameters graft does not know are ignored, as other OpenAI-compatible servers do; those that
    # would change the answer and cannot be honoured are refused in openai_api (n, logprobs, tools, ...).
    model_config = ConfigDict(extra="allow")

    model: str = Field(description="the base model's id or an adapter's name (GET /v1/models)")
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1, description="reply length cap; default: the server's default_max_tokens")
    max_completion_tokens: int | None = Field(None, ge=1, description="the newer name for max_tokens; wins over it")
    temperature: float = Field(1.0, ge=0.0, le=2.0, description="0: greedy")
    top_p: float = Field(1.0, ge=0.0, le=1.0)
    stop: str | list[str] | None = Field(None, description="up to 4 strings; the reply ends before the first")
    seed: int | None = None
    n: int = Field(1, ge=1, description="only 1 is served")
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: bool | None = None
    tools: list[Any] | None = None
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)


# -- responses -------------------------------------------------------------------------------------


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "graft"
    base: str = Field(description="the base model's spec")
    adapter: str | None = Field(None, description="the run/adapter folder; null for the base")
    technique: str | None = None
    shared: bool = Field(description="runs on the one shared copy of the base")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None

    @model_serializer(mode="wrap")
    def _only_set(self, handler):  # a delta carries just what changed: {"role": ...} or {"content": ...}
        return {k: v for k, v in handler(self).items() if v is not None}


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


# -- the monitor -----------------------------------------------------------------------------------


class RequestRecord(BaseModel):
    id: int
    created: str
    model: str
    base: str
    adapter: str | None
    prompt: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    first_token_s: float | None
    tokens_per_s: float
    stream: bool
    status: str
    error: str | None


class RequestList(BaseModel):
    object: Literal["list"] = "list"
    data: list[RequestRecord]


class ModelSummary(BaseModel):
    model: str
    requests: int
    errors: int
    latency_p50_s: float | None = Field(description="over successful requests")
    latency_p95_s: float | None
    first_token_p50_s: float | None
    tokens_per_s_mean: float | None
    prompt_tokens: int
    completion_tokens: int


class Summary(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelSummary]
