"""SQLAlchemy models of the WhatsApp Business tables; importing this registers them all."""

from models.account import WhatsAppAccountEvent
from models.analytics import COUNTERS, WhatsAppAnalytics, WhatsAppPricingDaily
from models.api_keys import ApiKey
from models.base import Base
from models.calls import WhatsAppCall
from models.catalog import WhatsAppCatalog, WhatsAppProduct
from models.contacts import WhatsAppContact
from models.events import WebhookEvent
from models.messages import HISTORY, INBOUND, LIVE, OUTBOUND, WhatsAppMessage, WhatsAppMessageStatus
from models.orders import WhatsAppOrder, WhatsAppOrderItem
from models.outbound import MediaFile, OutboundRequest
from models.tenancy import Tenant, WhatsAppBusinessSettings

__all__ = [
    "COUNTERS",
    "HISTORY",
    "INBOUND",
    "LIVE",
    "OUTBOUND",
    "ApiKey",
    "Base",
    "MediaFile",
    "OutboundRequest",
    "Tenant",
    "WebhookEvent",
    "WhatsAppAccountEvent",
    "WhatsAppAnalytics",
    "WhatsAppBusinessSettings",
    "WhatsAppCall",
    "WhatsAppCatalog",
    "WhatsAppContact",
    "WhatsAppMessage",
    "WhatsAppMessageStatus",
    "WhatsAppOrder",
    "WhatsAppOrderItem",
    "WhatsAppPricingDaily",
    "WhatsAppProduct",
]
