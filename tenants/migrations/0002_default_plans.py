from django.db import migrations

PLANS = [
    # name, requests/min (tenant), burst/min (user), sustained/day (user), sms/day, users
    ("starter", 1200, 120, 20000, 200, 25),
    ("standard", 6000, 300, 50000, 1000, 500),
    ("enterprise", 30000, 600, 200000, 10000, 5000),
]


def create_plans(apps, schema_editor):
    Plan = apps.get_model("tenants", "Plan")
    for name, rpm, burst, sustained, sms, users in PLANS:
        Plan.objects.get_or_create(
            name=name,
            defaults={
                "requests_per_minute": rpm,
                "user_burst_per_minute": burst,
                "user_sustained_per_day": sustained,
                "sms_daily_quota": sms,
                "max_users": users,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]

    operations = [migrations.RunPython(create_plans, migrations.RunPython.noop)]
