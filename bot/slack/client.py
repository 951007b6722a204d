"""The Slack Web API client the bot uses: retries, and acknowledgements first.

slack-sdk's WebClient, retrying 429 (after `Retry-After`), 5xx and dropped
connections with backoff, and pausing before each call while requests are being
acknowledged (`before_call`, `RequestsFirst.pause`: background work only).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import (
    BackoffRetryIntervalCalculator,
    FixedValueRetryIntervalCalculator,
)
from slack_sdk.http_retry.interval_calculator import RetryIntervalCalculator

from bot.config import Settings

# slack-sdk's wait before retrying a failed call: this many seconds, doubled on each try, plus
# up to 1 s of random jitter; 0 retries at once (tests that are not about retries)
RETRY_BACKOFF = 0.5


class _ServerErrors(ServerErrorRetryHandler):
    """slack-sdk retries 500 and 503; Slack's edge also answers 502 and 504 when busy."""

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:  # type: ignore[no-untyped-def]
        return response is not None and response.status_code >= 500


class SlackWebClient(WebClient):
    def __init__(self, before_call: Callable[[], object], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._before_call = before_call

    def api_call(self, *args: Any, **kwargs: Any) -> Any:
        self._before_call()
        return super().api_call(*args, **kwargs)


def web_client(
    settings: Settings, before_call: Callable[[], object] = lambda: None
) -> SlackWebClient:
    """A WebClient for the bot token at SLACK_API_URL (Slack's own by default)."""
    kwargs: dict[str, Any] = {"token": settings.slack_bot_token}
    if settings.slack_api_url:
        kwargs["base_url"] = settings.slack_api_url.rstrip("/") + "/"
    backoff: RetryIntervalCalculator = (
        BackoffRetryIntervalCalculator(backoff_factor=RETRY_BACKOFF)  # 0.5 s, 1 s, 2 s
        if RETRY_BACKOFF > 0
        else FixedValueRetryIntervalCalculator(0.0)
    )
    kwargs["retry_handlers"] = [
        ConnectionErrorRetryHandler(max_retry_count=3, interval_calculator=backoff),
        RateLimitErrorRetryHandler(max_retry_count=3),
        _ServerErrors(max_retry_count=3, interval_calculator=backoff),
    ]
    return SlackWebClient(before_call, **kwargs)
