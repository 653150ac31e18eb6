"""Refuse at accept what a provider would refuse for its payload: each platform's renderer is run
on the notification (and each of its language variants) for the platforms the app can reach.

Without it a too-large iOS payload was accepted with 202, then failed inside a delivery chunk and
was retried until it expired. One function for the HTTP API, the library and ``pushrelay send``.
"""

from __future__ import annotations

from collections.abc import Iterable

from .._exceptions import ConfigurationError, NotificationError, PayloadTooLargeError
from ..apns import payload as apns_payload
from ..config.model import AppConfig
from ..fcm import mapping as fcm_mapping
from ..fcm.settings import FcmSettings
from ..notification import Notification
from ..webpush import payload as webpush_payload

__all__ = ["check_payloads", "reachable_platforms"]

_NAMES = {"ios": "ios (APNs)", "android": "android (FCM)", "web": "web (Web Push)"}


def reachable_platforms(app: AppConfig, targets: Iterable[str] = ()) -> list[str]:
    """The platforms of ``targets`` (all when empty) that ``app`` has a provider for."""
    wanted = set(targets) or {"ios", "android", "web"}
    configured = {"ios": app.apns is not None, "android": app.fcm is not None, "web": app.webpush is not None}
    return [p for p in ("ios", "android", "web") if p in wanted and configured[p]]


def _render(platform: str, n: Notification, app: AppConfig) -> None:
    if platform == "ios":
        apns_payload.render(n, topic=app.bundle_id)
    elif platform == "android":
        mapping: fcm_mapping.MappingName = "4d"
        options = None
        try:
            assert app.fcm is not None
            settings = FcmSettings.from_mapping(app.fcm, table=f"apps.{app.name}.fcm", base_dir=app.base_dir)
            mapping, options = settings.mapping, settings.android_options()
        except ConfigurationError:
            pass  # the service refuses to start on this; the default mapping still measures
        fcm_mapping.render(n, mapping=mapping, options=options)
    else:
        webpush_payload.render(n)


def check_payloads(n: Notification, app: AppConfig, targets: Iterable[str] = ()) -> None:
    """Raise :class:`PayloadTooLargeError` (or :class:`NotificationError`) naming the platform,
    the size and the limit when a platform ``app`` can reach would refuse ``n`` or one of its
    language variants (``field``: ``payload``, or ``localizations.<tag>`` for a variant)."""
    platforms = reachable_platforms(app, targets)
    for tag, variant in n.variants():
        for platform in platforms:
            try:
                _render(platform, variant, app)
            except PayloadTooLargeError as exc:
                where = f" (the {tag} variant)" if tag is not None else ""
                raise PayloadTooLargeError(
                    f"{_NAMES[platform]}{where}: the payload is {exc.size} bytes, over the limit of "
                    f"{exc.limit} ({exc})",
                    size=exc.size,
                    limit=exc.limit,
                    field=f"localizations.{tag}" if tag is not None else "payload",
                ) from None
            except NotificationError as exc:
                if tag is not None:
                    raise NotificationError(
                        f"{_NAMES[platform]}, the {tag} variant: {exc}", field=f"localizations.{tag}"
                    ) from None
                raise NotificationError(f"{_NAMES[platform]}: {exc}", field=exc.field) from None
