"""SQLAlchemy models of the WhatsApp Business tables; importing this registers them all."""

from models.analytics import COUNTERS, WhatsAppAnalytics
from models.base import Base
from models.catalog import WhatsAppCatalog, WhatsAppProduct
from models.events import WebhookEvent
from models.messages import INBOUND, OUTBOUND, WhatsAppMessage, WhatsAppMessageStatus
from models.orders import WhatsAppOrder, WhatsAppOrderItem
from models.tenancy import Tenant, WhatsAppBusinessSettings

__all__ = [
    "COUNTERS",
    "INBOUND",
    "OUTBOUND",
    "Base",
    "Tenant",
    "WebhookEvent",
    "WhatsAppAnalytics",
    "WhatsAppBusinessSettings",
    "WhatsAppCatalog",
    "WhatsAppMessage",
    "WhatsAppMessageStatus",
    "WhatsAppOrder",
    "WhatsAppOrderItem",
    "WhatsAppProduct",
]
