"""graft's HTTP service: `create_app(pool, settings)` builds the FastAPI app that `graft serve` runs.

One router per concern: `openai_api` (OpenAI-compatible chat), `metrics` (request log, Prometheus,
summaries); `security` (bearer token, bind rule), `errors` (typed errors as JSON), `settings`.
"""

from graft.server.app import create_app
from graft.server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]
