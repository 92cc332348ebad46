from django.apps import AppConfig


class PublicNotifyConfig(AppConfig):
    name = "notify.public"
    label = "notify_public"
    verbose_name = "SMS sender routes"
