"""The OTLP/HTTP span exporter with the request body written by ``otlp_encoding`` instead of the
official protobuf-object encoder: the same bytes on the wire (tests/observability/
test_otlp_encoding.py), about a third of the exporter thread's CPU per span.

``export`` is the parent's (opentelemetry-exporter-otlp-proto-http 1.45, pinned in
requirements.lock), with the encoding line changed; everything else (endpoint, headers,
compression, timeouts, retries, the exporter's own metrics, the request-size guard) is the
parent's code and configuration.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.http._common import (
    RequestPayloadTooLargeError,
    _is_request_too_large,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE

from observability.otlp_encoding import encode_export_request

logger = logging.getLogger(__name__)


class DirectEncodingSpanExporter(OTLPSpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            logger.warning("Exporter already shutdown, ignoring batch")
            return SpanExportResult.FAILURE

        with self._metrics.export_operation(len(spans)) as result:
            try:
                serialized = encode_export_request(spans)
            except Exception as error:  # as the parent: a bad batch is dropped, not raised
                logger.exception("Failed to encode span batch")
                result.error = error
                return SpanExportResult.FAILURE

            if _is_request_too_large(serialized, self._max_request_size):
                logger.warning(
                    "Dropping span batch: serialized size %d bytes exceeds max_request_size "
                    "%d bytes.",
                    len(serialized),
                    self._max_request_size,
                )
                result.error = RequestPayloadTooLargeError(
                    f"Serialized span request size {len(serialized)} bytes exceeds "
                    f"max_request_size {self._max_request_size} bytes."
                )
                return SpanExportResult.FAILURE

            export_result = self._client.export(serialized)
            if not export_result.success:
                result.error = export_result.error
                result.error_attrs = (
                    {HTTP_RESPONSE_STATUS_CODE: export_result.status_code}
                    if export_result.status_code is not None
                    else None
                )
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS
