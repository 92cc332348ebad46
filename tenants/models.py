"""The public-schema tenant registry: plans, tenants and their host names."""

from django.db import models
from django_tenants.models import DomainMixin, TenantMixin


class Plan(models.Model):
    """Commercial plan; its numbers drive throttles and quotas and apply without a restart."""

    name = models.CharField(max_length=50, unique=True)
    requests_per_minute = models.PositiveIntegerField(
        default=6000, help_text="Tenant-wide ceiling on API requests per minute."
    )
    user_burst_per_minute = models.PositiveIntegerField(
        default=300, help_text="Per-user burst limit per minute."
    )
    user_sustained_per_day = models.PositiveIntegerField(
        default=50000, help_text="Per-user sustained limit per day."
    )
    sms_daily_quota = models.PositiveIntegerField(default=1000)
    max_users = models.PositiveIntegerField(default=500)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Tenant(TenantMixin):
    class Kind(models.TextChoices):
        CLINIC = "clinic", "Clinic network"
        FARM = "farm", "Agricultural operator"
        MIXED = "mixed", "Clinic and farm"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    slug = models.CharField(max_length=40, unique=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="tenants")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    # The template schema new tenants are cloned from: migrated with every tenant, never routed.
    is_template = models.BooleanField(default=False)
    # Set last, in the provisioning transaction: routing and fan-out only ever see complete tenants.
    ready = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    # Changes with the name or status (the FHIR Organization's meta.lastUpdated).
    updated_at = models.DateTimeField(auto_now=True)
    # The FHIR identifier system of the tenant's MRNs, fixed at provisioning (tenants.services
    # .mrn_system_default, or the clinic's own urn:oid: / URL) and never derived from a request's
    # host: an exported identifier must mean the same thing forever. Not editable: changing it
    # would silently re-key every patient identifier integrators already hold.
    mrn_system = models.CharField(max_length=255, editable=False, default="")

    # Provisioning (tenants/provisioning.py) creates and drops schemas itself, inside one transaction.
    auto_create_schema = False
    auto_drop_schema = False

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_template"],
                condition=models.Q(is_template=True),
                name="tenants_single_template",
            ),
        ]

    def __str__(self) -> str:
        return self.slug

    @property
    def is_suspended(self) -> bool:
        return self.status == self.Status.SUSPENDED


class Domain(DomainMixin):
    class Meta:
        ordering = ["domain"]

    def __str__(self) -> str:
        return self.domain


class TemplateScript(models.Model):
    """The template schema's ``pg_dump``, replayed to create each new tenant schema
    (tenants.template_script), keyed by the script format, the template's name and a digest of its
    applied migrations. It is executable SQL run as the database owner, so it is kept here, in the
    public schema, where writing it takes the database owner's credentials (which can run SQL
    anyway) — never in Redis — and it is registered in no admin."""

    key = models.CharField(max_length=128, primary_key=True)
    script = models.TextField()
    stored_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.key


class MigrationRun(models.Model):
    """One ``migrate_schemas`` pass over the tenant schemas (tenants.migration_progress keeps it
    current), so operators can follow a long migration Job in the public admin. Public schema only:
    it must be writable while tenant schemas are mid-migration."""

    class Status(models.TextChoices):
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed (see failures)"
        # Superseded by a later run while still "running": the process was killed (a Job deadline,
        # a node loss); the later run resumes with the schemas still behind.
        INTERRUPTED = "interrupted", "interrupted"

    started_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    executor = models.CharField(max_length=32)
    parallel = models.PositiveIntegerField(default=1)
    continue_on_error = models.BooleanField(default=False)
    host = models.CharField(max_length=255, blank=True)
    tenant_schemas = models.PositiveIntegerField(help_text="Tenant schemas the run considered.")
    already_current = models.PositiveIntegerField(
        default=0, help_text="Skipped: at the latest migration when the run started."
    )
    to_migrate = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"migration run {self.pk} ({self.status})"

    @property
    def left(self) -> int:
        return max(self.to_migrate - self.done - self.failed, 0)


class MigrationFailure(models.Model):
    """A tenant schema whose migration failed in a run (its traceback is in the Job's log under the
    schema's prefix)."""

    run = models.ForeignKey(MigrationRun, on_delete=models.CASCADE, related_name="failures")
    schema_name = models.CharField(max_length=63)
    error = models.TextField()
    failed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["schema_name"]
        constraints = [
            models.UniqueConstraint(fields=["run", "schema_name"], name="migration_failure_once")
        ]

    def __str__(self) -> str:
        return f"{self.schema_name}: {self.error[:60]}"
