"""The relay's Prometheus metrics: one registry per service, fed with typed events.

The reason labels are the stable codes of relay.core.reasons.Reason and of
the SMTP edge's Refusal, so a dashboard and the audit trail speak the same
vocabulary. Gauges that describe state (queue, CRL ages, trust version) are
computed when scraped from callables, so they can never drift from the
state they describe. Labels never carry message content.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from cryptography import x509
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..core.reasons import Reason
from ..core.snapshot import Snapshot
from ..smtp.replies import Refusal

ACCEPTED, REFUSED = "accepted", "refused"

# Delivery results as relay.queue.delivery names them, and the label shown.
DELIVERY_RESULTS: dict[str, str] = {"delivered": "delivered", "pending": "deferred", "failed": "failed"}

# S/MIME verification of one message: milliseconds for small mail, seconds
# only for large messages or long chains.
VERIFICATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

TLS_VERSIONS = ("TLSv1.2", "TLSv1.3")


@dataclass(frozen=True, slots=True)
class QueueState:
    messages: int
    oldest_received_at: float | None  # POSIX seconds; None when the queue is empty


class Metrics:
    """What the service records; `exposition()` renders the Prometheus text format."""

    def __init__(
        self,
        snapshot: Callable[[], Snapshot | None] = lambda: None,
        queue: Callable[[], QueueState] = lambda: QueueState(0, None),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._messages = Counter(
            "relay_messages",
            "Messages judged at end of DATA, by outcome and reason code",
            ("outcome", "reason"),
            registry=self.registry,
        )
        self._attempts = Counter(
            "relay_delivery_attempts",
            "Delivery attempts per recipient, by result",
            ("result",),
            registry=self.registry,
        )
        self._verification = Histogram(
            "relay_verification_seconds",
            "Time to verify one message's S/MIME signature and signer",
            buckets=VERIFICATION_BUCKETS,
            registry=self.registry,
        )
        self._handshakes = Counter(
            "relay_tls_handshakes",
            "Completed TLS handshakes on the listeners, by protocol version",
            ("listener", "version"),
            registry=self.registry,
        )
        self._initialise_labels()
        self.registry.register(_StateCollector(snapshot, queue, clock))

    def _initialise_labels(self) -> None:
        # Every code shows from the start with 0, so rate() and alerts see a
        # series before its first event.
        self._messages.labels(ACCEPTED, Reason.OK.value)
        for code in (*Reason, *Refusal):
            if code is not Reason.OK:
                self._messages.labels(REFUSED, code.value)
        for label in DELIVERY_RESULTS.values():
            self._attempts.labels(label)

    # -- events ----------------------------------------------------------

    def message_accepted(self) -> None:
        self._messages.labels(ACCEPTED, Reason.OK.value).inc()

    def message_refused(self, code: Reason | Refusal) -> None:
        if code is Reason.OK:
            raise ValueError("a refusal needs a refusing reason, not ok")
        self._messages.labels(REFUSED, code.value).inc()

    def delivery_attempt(self, status: str) -> None:
        """One recipient's result, as relay.queue.delivery names it (delivered, pending, failed)."""
        try:
            label = DELIVERY_RESULTS[status]
        except KeyError:
            raise ValueError(f"unknown delivery result {status!r}") from None
        self._attempts.labels(label).inc()

    def verification_time(self, seconds: float) -> None:
        self._verification.observe(seconds)

    def tls_handshake(self, listener: str, version: str | None) -> None:
        """`version` as ssl.SSLObject.version() gives it; anything unexpected counts as "other"."""
        self._handshakes.labels(listener, version if version in TLS_VERSIONS else "other").inc()

    # -- exposition --------------------------------------------------------

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector(Collector):
    """Gauges read from the live state at each scrape."""

    def __init__(
        self,
        snapshot: Callable[[], Snapshot | None],
        queue: Callable[[], QueueState],
        clock: Callable[[], float],
    ) -> None:
        self.snapshot, self.queue, self.clock = snapshot, queue, clock

    def describe(self) -> Iterable[Metric]:
        return ()  # computed at scrape time; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        yield from _queue_metrics(self.queue(), now)
        snapshot = self.snapshot()
        if snapshot is not None:
            yield from _trust_metrics(snapshot, now)


def _queue_metrics(state: QueueState, now: float) -> Iterator[Metric]:
    yield GaugeMetricFamily("relay_queue_messages", "Messages in the spool awaiting delivery", value=state.messages)
    age = 0.0 if state.oldest_received_at is None else max(now - state.oldest_received_at, 0.0)
    yield GaugeMetricFamily(
        "relay_queue_oldest_message_age_seconds", "Age of the oldest message in the spool (0 when empty)", value=age
    )


def _trust_metrics(snapshot: Snapshot, now: float) -> Iterator[Metric]:
    info = GaugeMetricFamily("relay_trust_snapshot_info", "The trust snapshot in force", labels=("version",))
    info.add_metric((snapshot.version,), 1)
    yield info
    yield GaugeMetricFamily(
        "relay_trust_snapshot_age_seconds",
        "Seconds since the trust snapshot in force was loaded",
        value=max(now - snapshot.loaded_at.timestamp(), 0.0),
    )
    count = GaugeMetricFamily("relay_bundle_crls", "CRLs held by each trust bundle", labels=("bundle",))
    age = GaugeMetricFamily(
        "relay_crl_age_seconds", "Seconds since each bundle CRL's thisUpdate", labels=("bundle", "issuer")
    )
    remaining = GaugeMetricFamily(
        "relay_crl_next_update_seconds",
        "Seconds until each bundle CRL's nextUpdate (negative once past)",
        labels=("bundle", "issuer"),
    )
    for name, bundle in sorted(snapshot.bundles.items()):
        count.add_metric((name,), len(bundle.crls))
        for issuer, crl in sorted(_newest_by_issuer(bundle.crls).items()):
            age.add_metric((name, issuer), now - crl.last_update_utc.timestamp())
            if crl.next_update_utc is not None:
                remaining.add_metric((name, issuer), crl.next_update_utc.timestamp() - now)
    yield count
    yield age
    yield remaining


def _newest_by_issuer(crls: Iterable[x509.CertificateRevocationList]) -> dict[str, x509.CertificateRevocationList]:
    # One series per issuer: an older CRL kept beside a fresher one says nothing about freshness.
    newest: dict[str, x509.CertificateRevocationList] = {}
    for crl in crls:
        issuer = crl.issuer.rfc4514_string()
        if issuer not in newest or crl.last_update_utc > newest[issuer].last_update_utc:
            newest[issuer] = crl
    return newest
