"""Prometheus metrics of the service (API and workers share one registry per process).

A core module: the server, the worker and the providers import it; it imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["Metrics", "Paused"]


class Paused(Protocol):
    """A paused app as the outbox reports it (:class:`pushrelay.queue.AppPause`)."""

    @property
    def app(self) -> str: ...


class _Callback(Collector):
    def __init__(self, fn: Callable[[], Iterable[Metric]]) -> None:
        self._fn = fn

    def collect(self) -> Iterable[Metric]:
        return self._fn()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.accepted = Counter(
            "pushrelay_notifications_accepted", "Notifications accepted", ["app"], registry=r
        )
        self.deliveries = Counter(
            "pushrelay_deliveries",
            "Final delivery outcomes",
            ["app", "platform", "outcome", "reason"],
            registry=r,
        )
        self.retries = Counter(
            "pushrelay_delivery_retries",
            "Transient failures scheduled for retry",
            ["app", "platform", "reason"],
            registry=r,
        )
        self.send_latency = Histogram(
            "pushrelay_send_latency_seconds",
            "Provider round trip per delivery",
            ["app", "platform"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.http_in_flight = Gauge(
            "pushrelay_http_requests_in_flight", "HTTP requests being served", registry=r
        )
        self.http_requests = Counter(
            "pushrelay_http_requests", "HTTP requests served", ["method", "route", "status"], registry=r
        )
        self.connections = Gauge(
            "pushrelay_provider_clients",
            "Open provider clients (each holds its connections)",
            ["app", "platform"],
            registry=r,
        )
        self.webhooks = Counter(
            "pushrelay_webhook_posts", "Webhook POST results (ok, retry)", ["app", "result"], registry=r
        )
        self.webhooks_dropped = Counter(
            "pushrelay_webhook_events_dropped",
            "Webhook events dropped, undelivered after the retention period",
            ["app"],
            registry=r,
        )
        self.tokens_retired = Counter(
            "pushrelay_tokens_retired", "Devices retired", ["app", "reason"], registry=r
        )
        self.lease_lost = Counter(
            "pushrelay_lease_lost",
            "Results a worker could not record because its lease had gone to another worker",
            registry=r,
        )
        self.expansions_failed = Counter(
            "pushrelay_expansions_failed",
            "Notifications whose recipients could not be expanded (failed alone, reason recorded)",
            ["app"],
            registry=r,
        )
        self.completions_swept = Counter(
            "pushrelay_completions_swept",
            "Notifications left sending with every delivery final, completed by the sweeper",
            registry=r,
        )
        self._depth_fn: Callable[[], dict[str, int]] | None = None
        self._provider_fn: Callable[[], Iterable[Metric]] | None = None
        self._pauses_fn: Callable[[], Iterable[Paused]] | None = None
        self._apps_fn: Callable[[], Iterable[str]] = lambda: ()
        self._webhooks_fn: Callable[[], dict[str, int]] | None = None
        r.register(_Callback(self._collect_dynamic))

    def watch_queue(self, fn: Callable[[], dict[str, int]]) -> None:
        """``fn`` returns open deliveries per state; it is called at scrape time."""
        self._depth_fn = fn

    def watch_pauses(self, fn: Callable[[], Iterable[Paused]], apps: Callable[[], Iterable[str]]) -> None:
        """``fn`` returns the paused apps, ``apps`` every configured one (reported as 0)."""
        self._pauses_fn = fn
        self._apps_fn = apps

    def watch_webhooks(self, fn: Callable[[], dict[str, int]]) -> None:
        """``fn`` returns the webhook events waiting per app."""
        self._webhooks_fn = fn

    def watch_providers(self, fn: Callable[[], Iterable[Metric]]) -> None:
        """``fn`` yields provider-level metrics (JWT refreshes, certificate expiry) at scrape time."""
        self._provider_fn = fn

    def _collect_dynamic(self) -> Iterable[Metric]:
        # a scrape must not fail because the database blinked: what cannot be read is left out
        if self._depth_fn is not None:
            depth = _read(self._depth_fn) or {}
            g = GaugeMetricFamily("pushrelay_queue_depth", "Open deliveries in the outbox", labels=["state"])
            for state in ("pending", "in_flight", "paused"):
                g.add_metric([state], depth.get(state, 0))
            yield g
        if self._pauses_fn is not None:
            pauses = _read(self._pauses_fn)
            if pauses is not None:
                g = GaugeMetricFamily(
                    "pushrelay_app_paused",
                    "1 while the app's deliveries are paused (its configuration was refused)",
                    labels=["app"],
                )
                paused = {p.app for p in pauses}
                for app in sorted(paused | set(self._apps_fn())):
                    g.add_metric([app], 1 if app in paused else 0)
                yield g
        if self._webhooks_fn is not None:
            waiting = _read(self._webhooks_fn) or {}
            g = GaugeMetricFamily(
                "pushrelay_webhook_events_pending", "Webhook events waiting to be delivered", labels=["app"]
            )
            for app, n in sorted(waiting.items()):
                g.add_metric([app], n)
            yield g
        if self._provider_fn is not None:
            yield from self._provider_fn()


T = TypeVar("T")


def _read(fn: Callable[[], T]) -> T | None:
    try:
        return fn()
    except Exception:
        return None
