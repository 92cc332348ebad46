"""Routes under /api/<version>/notify/: the organisation's SMS sender and provider webhooks."""

from django.urls import path

from notify.api import views
from notify.api.sender import SenderViewSet

urlpatterns = [
    path(
        "sender/",
        SenderViewSet.as_view({"get": "retrieve", "put": "update", "delete": "destroy"}),
        name="notify-sender",
    ),
    path("twilio/status/", views.StatusCallbackView.as_view(), name="notify-twilio-status"),
    path("twilio/inbound/", views.InboundMessageView.as_view(), name="notify-twilio-inbound"),
]
