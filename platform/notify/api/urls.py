"""Routes under /api/<version>/notify/ (provider webhooks)."""

from django.urls import path

from notify.api import views

urlpatterns = [
    path("twilio/status/", views.StatusCallbackView.as_view(), name="notify-twilio-status"),
    path("twilio/inbound/", views.InboundMessageView.as_view(), name="notify-twilio-inbound"),
]
