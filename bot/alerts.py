"""Prometheus Alertmanager's webhook (version 4): what it sends, and what the bot keeps of it.

Alertmanager POSTs one JSON object per notification of an alert *group*: the
group's `status` (firing or resolved), its `groupKey`, the labels the group
shares (`groupLabels`, `commonLabels`), the annotations all its alerts share
(`commonAnnotations`), and the `alerts` themselves, each with its labels,
annotations, `startsAt`/`endsAt`, the `generatorURL` of the rule that fired and
a `fingerprint`. `AlertGroup` validates that shape (anything else is refused
with the reason); the bot reads nothing else.

The incident keeps a bounded digest of the group (`digest`): the common labels
and annotations, and at most `MAX_KEPT_ALERTS` alerts with their values cut to
`MAX_VALUE` characters, updated with each notification (by fingerprint). The
plan and the review show it (`AlertInfo`); the journal holds the validated
payload, so a replay after a crash declares from exactly what was answered 2xx.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

ACTOR = "alertmanager"  # who declares and notes what Alertmanager says (not a Slack user)
MAX_BODY = 2 * 1024 * 1024  # bytes; Alertmanager's max_alerts keeps real groups far smaller
MAX_GROUP_KEY = 8 * 1024
MAX_LABELS = 128  # per label set
MAX_NAME = 256
MAX_VALUE = 1024  # characters kept per label or annotation value (more is cut)
MAX_KEPT_ALERTS = 50  # alerts the incident keeps (the first ones, then by fingerprint)
MAX_TIME = 64


class _Model(BaseModel):
    # fields Alertmanager (or Grafana, which sends the same shape) adds later are ignored
    model_config = ConfigDict(extra="ignore", frozen=True, str_max_length=1_000_000)


def _bounded(labels: dict[str, str]) -> dict[str, str]:
    if len(labels) > MAX_LABELS:
        raise ValueError(f"more than {MAX_LABELS} entries")
    for name in labels:
        if not name or len(name) > MAX_NAME:
            raise ValueError(f"a name is empty or longer than {MAX_NAME} characters")
    return labels


LabelSet = Annotated[dict[str, str], AfterValidator(_bounded)]


class Alert(_Model):
    status: Literal["firing", "resolved"]
    labels: LabelSet
    annotations: LabelSet = {}
    startsAt: str = Field("", max_length=MAX_TIME)
    endsAt: str = Field("", max_length=MAX_TIME)
    generatorURL: str = Field("", max_length=8192)
    fingerprint: str = Field("", max_length=MAX_NAME)


class AlertGroup(_Model):
    """One notification of Alertmanager's webhook_config, version 4."""

    version: Literal["4"]
    groupKey: str = Field(min_length=1, max_length=MAX_GROUP_KEY)
    status: Literal["firing", "resolved"]
    receiver: str = Field("", max_length=MAX_NAME)
    truncatedAlerts: int = Field(0, ge=0)
    groupLabels: LabelSet = {}
    commonLabels: LabelSet = {}
    commonAnnotations: LabelSet = {}
    externalURL: str = Field("", max_length=8192)
    alerts: list[Alert] = Field(min_length=1, max_length=100_000)

    @property
    def labels(self) -> LabelSet:
        """What routes match against: the labels every alert of the group shares."""
        return {**self.groupLabels, **self.commonLabels}

    def counts(self) -> tuple[int, int]:
        """Alerts firing and resolved in this notification."""
        firing = sum(a.status == "firing" for a in self.alerts)
        return firing, len(self.alerts) - firing


class PayloadError(ValueError):
    """A body that is not Alertmanager's webhook; the message says what is wrong."""


def parse(body: bytes) -> AlertGroup:
    """The notification in `body`, or PayloadError with the reason (the first problems)."""
    try:
        return AlertGroup.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if errors and errors[0]["type"] == "json_invalid":
            raise PayloadError(f"the body is not JSON: {errors[0]['msg']}") from None
        if errors and not errors[0]["loc"] and errors[0]["type"] == "model_type":
            raise PayloadError("the body is not a JSON object") from None
        reasons = [_reason(err) for err in errors[:5]]
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise PayloadError(
            "not an Alertmanager webhook (version 4): " + "; ".join(reasons) + more
        ) from None


def _reason(err: Any) -> str:
    where = ""
    for part in err["loc"]:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "literal_error" and where == "version":
        message = f'{err.get("input")!r} is not supported; send version "4"'
    return f"{where}: {message}" if where else message


# --- what the incident keeps -------------------------------------------------------


def _cut(labels: LabelSet) -> LabelSet:
    return {k: v if len(v) <= MAX_VALUE else v[: MAX_VALUE - 1] + "…" for k, v in labels.items()}


def _kept(alert: Alert) -> dict[str, Any]:
    return {
        "status": alert.status,
        "fingerprint": alert.fingerprint,
        "labels": _cut(alert.labels),
        "annotations": _cut(alert.annotations),
        "startsAt": alert.startsAt,
        "endsAt": alert.endsAt,
        "generatorURL": alert.generatorURL if len(alert.generatorURL) <= 2048 else "",
    }


def digest(group: AlertGroup, before: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the incident keeps of the group after this notification (bounded)."""
    kept: list[dict[str, Any]] = list((before or {}).get("alerts") or [])
    index = {a["fingerprint"]: i for i, a in enumerate(kept) if a.get("fingerprint")}
    for alert in group.alerts:
        if alert.fingerprint and alert.fingerprint in index:
            kept[index[alert.fingerprint]] = _kept(alert)
        elif len(kept) < MAX_KEPT_ALERTS:
            if alert.fingerprint:
                index[alert.fingerprint] = len(kept)
            kept.append(_kept(alert))
    return {
        "groupKey": group.groupKey,
        "status": group.status,
        "receiver": group.receiver,
        "groupLabels": _cut(group.groupLabels),
        "commonLabels": _cut(group.commonLabels),
        "commonAnnotations": _cut(group.commonAnnotations),
        "externalURL": group.externalURL if _is_web(group.externalURL) else "",
        "truncatedAlerts": group.truncatedAlerts,
        "alerts": kept,
        "seen": sorted({*((before or {}).get("seen") or []), *fingerprints(group)})[:1000],
    }


def fingerprints(group: AlertGroup) -> set[str]:
    return {a.fingerprint for a in group.alerts if a.fingerprint}


def template_context(group: AlertGroup) -> dict[str, Any]:
    """What a route's title template sees: the payload's own field names."""
    return group.model_dump(mode="json")


# --- what the plan and the review show ------------------------------------------------

SHOWN_LABELS = 20
SHOWN_ANNOTATIONS = 6
SHOWN_LINKS = 5


@dataclass(frozen=True)
class AlertInfo:
    """The alert group behind an incident, as the plan and the review show it."""

    group_key: str
    status: str  # of the last notification
    receiver: str
    labels: tuple[tuple[str, str], ...]  # the group's common labels
    annotations: tuple[tuple[str, str], ...]  # its common annotations
    links: tuple[str, ...]  # distinct generatorURLs (http/https only)
    firing: int
    resolved: int
    received: int  # notifications so far
    external_url: str


def alert_info(row: dict[str, Any] | None) -> AlertInfo | None:
    """From `Store.alert_group`; None for an incident people declared."""
    if row is None:
        return None
    summary = row["summary"]
    alerts = summary.get("alerts") or []
    labels = dict(summary.get("commonLabels") or {})
    labels.update(summary.get("groupLabels") or {})
    annotations = summary.get("commonAnnotations") or {}
    links = [a.get("generatorURL") or "" for a in alerts]
    return AlertInfo(
        group_key=str(row["group_key"]),
        status=str(row["status"]),
        receiver=str(summary.get("receiver") or ""),
        labels=tuple(sorted(labels.items()))[:SHOWN_LABELS],
        annotations=tuple(sorted(annotations.items()))[:SHOWN_ANNOTATIONS],
        links=tuple(dict.fromkeys(u for u in links if _is_web(u)))[:SHOWN_LINKS],
        firing=sum(a.get("status") == "firing" for a in alerts),
        resolved=sum(a.get("status") == "resolved" for a in alerts),
        received=int(row.get("received") or 1),
        external_url=str(summary.get("externalURL") or ""),
    )


def _is_web(url: str) -> bool:
    try:
        parsed = urlsplit(url)
    except ValueError:
        return False
    return (
        parsed.scheme in ("http", "https")
        and bool(parsed.netloc)
        and not any(c in url for c in " <>|\n\r\t")
    )
