"""Test-only endpoints: one that enqueues a Celery task after commit, one that fails."""

from django.db import transaction
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apikit.tasks import idempotency_records_purge_all


class EnqueuePurgeView(APIView):
    """POST: enqueue the idempotency purge once the request's transaction commits."""

    def post(self, request: Request, version: str) -> Response:
        transaction.on_commit(idempotency_records_purge_all.delay)
        return Response({"queued": True}, status=202)


class ExplodeView(APIView):
    def get(self, request: Request, version: str) -> Response:
        raise RuntimeError("boom for the trace")
