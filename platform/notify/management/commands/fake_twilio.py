"""Run the fake Twilio Messages API in the foreground (development, fault drills)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from notify.fake_twilio import FakeTwilio


class Command(BaseCommand):
    help = "Serve a local fake of Twilio's Messages API (counters at GET /_fake/stats)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8999)
        parser.add_argument("--account-sid", default="ACfake")
        parser.add_argument("--auth-token", default="fake-token")

    def handle(self, *args: Any, **options: Any) -> None:
        fake = FakeTwilio(
            account_sid=options["account_sid"],
            auth_token=options["auth_token"],
            port=options["port"],
        )
        self.stdout.write(
            f"fake Twilio on http://127.0.0.1:{options['port']} "
            f"(TWILIO_API_BASE; account {fake.account_sid})"
        )
        fake.serve_forever()
