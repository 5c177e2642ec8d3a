"""Webhooks: signed deliveries of an account's events to its endpoints (Standard Webhooks 1.0).

The door:
    emit, EVENT_TYPES, *_data            services record an event in the transaction of its change
    create_endpoint … send_ping          the API's and the CLI's use cases (endpoints.py)
    deliver, retry_delay,
    DeliveryFailed, DeliveryAbandoned    one attempt, as the `deliver_webhook` job runs it (delivery.py)

Inside: targets.py (SSRF: which URLs and addresses may receive), sender.py (the pinned HTTP
POST), signing.py (secrets and signatures), events.py (payloads, fan-out).
Imports: webhooks -> db, security; the services, jobs, api and cli import it, never back.
"""

from patientpdf.webhooks.delivery import DeliveryAbandoned, DeliveryFailed, deliver, retry_delay
from patientpdf.webhooks.endpoints import (
    DELIVERY_STATUSES,
    create_endpoint,
    delete_endpoint,
    get_delivery,
    get_endpoint,
    list_deliveries,
    list_endpoints,
    retry_delivery,
    rotate_secret,
    send_ping,
    update_endpoint,
)
from patientpdf.webhooks.events import (
    EVENT_TYPES,
    KEY_REVOKED,
    MAX_ATTEMPTS,
    PDF_DELETED,
    PDF_PROCESSED,
    PDF_PROCESSING_FAILED,
    PDF_UPLOADED,
    PING,
    RETRY_SCHEDULE_SECONDS,
    deleted_data,
    emit,
    key_revoked_data,
    pdf_data,
    processed_data,
    processing_failed_data,
)

__all__ = [
    "DELIVERY_STATUSES",
    "EVENT_TYPES",
    "KEY_REVOKED",
    "MAX_ATTEMPTS",
    "PDF_DELETED",
    "PDF_PROCESSED",
    "PDF_PROCESSING_FAILED",
    "PDF_UPLOADED",
    "PING",
    "RETRY_SCHEDULE_SECONDS",
    "DeliveryAbandoned",
    "DeliveryFailed",
    "create_endpoint",
    "delete_endpoint",
    "deleted_data",
    "deliver",
    "emit",
    "get_delivery",
    "get_endpoint",
    "key_revoked_data",
    "list_deliveries",
    "list_endpoints",
    "pdf_data",
    "processed_data",
    "processing_failed_data",
    "retry_delay",
    "retry_delivery",
    "rotate_secret",
    "send_ping",
    "update_endpoint",
]
