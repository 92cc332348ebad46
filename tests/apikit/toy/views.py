"""Toy endpoints written the way every domain endpoint is: on the apikit base viewset."""

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, OperationalError
from django.db.models import QuerySet
from django.http import FileResponse, Http404
from django_filters import rest_framework as filters
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apikit.ids import parse_uuid
from apikit.inputs import validated
from apikit.pagination import PageNumberPagination
from apikit.policy import AccessLevel, scope_to_containers, visible_containers
from apikit.uploads import stored_file_response, upload_store
from apikit.viewsets import ListMixin, RetrieveMixin, TenantScopedViewSet
from audit.services import audit_changed_fields
from tests.apikit.toy import services
from tests.apikit.toy.models import Attachment, Item, Site

MAX_ATTACHMENT_BYTES = 64 * 1024


class ItemOutput(serializers.ModelSerializer[Item]):
    class Meta:
        model = Item
        fields = ["id", "site", "name", "quantity", "colour", "version", "created_at", "created_by"]


class ItemCreateInput(serializers.Serializer[Any]):
    site = serializers.UUIDField()
    name = serializers.CharField(max_length=100)
    quantity = serializers.IntegerField(min_value=0, max_value=1000)
    colour = serializers.CharField(max_length=20, required=False, default="")


class ItemUpdateInput(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100, required=False)
    quantity = serializers.IntegerField(min_value=0, max_value=1000, required=False)
    version = serializers.IntegerField(required=False)


class ItemFilter(filters.FilterSet):
    min_quantity = filters.NumberFilter(field_name="quantity", lookup_expr="gte")
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = Item
        fields = ["site", "colour"]


class ItemViewSet(ListMixin, RetrieveMixin, TenantScopedViewSet):
    model = Item
    list_serializer_class = ItemOutput
    detail_serializer_class = ItemOutput
    filterset_class = ItemFilter
    ordering_fields = ["name", "quantity", "created_at"]
    search_fields = ["name"]
    cursor_ordering = "-id"

    def scoped_queryset(self) -> QuerySet[Item]:
        return scope_to_containers(
            Item.objects.all(), user=self.request.user, container_field="site", container_model=Site
        )

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(ItemCreateInput, request.data)
        site = (
            visible_containers(user=request.user, container_model=Site, level=AccessLevel.MANAGE)
            .filter(pk=data.pop("site"))
            .first()
        )
        if site is None:
            raise serializers.ValidationError({"site": ["No such site, or you cannot manage it."]})
        item = services.item_create(site=site, actor=request.user, **data)
        return self.detail_response(item, ItemOutput, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        item = self.get_object()
        expected = self.expected_version(item)
        data = validated(ItemUpdateInput, request.data)
        data.pop("version", None)
        self.audit_changed_fields = audit_changed_fields(instance=item, changes=data)
        item = services.item_update(
            item=item, expected_version=expected, changes=data, actor=request.user
        )
        return self.detail_response(item, ItemOutput)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        item = self.get_object()
        services.item_archive(
            item=item, expected_version=self.expected_version(item), actor=request.user
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class AttachmentOutput(serializers.ModelSerializer[Attachment]):
    class Meta:
        model = Attachment
        fields = ["id", "content_type", "size", "sha256", "original_name", "created_at"]


class AttachmentUploadInput(serializers.Serializer[Any]):
    file = serializers.FileField()


class ItemAttachmentViewSet(TenantScopedViewSet):
    """Files under an item: upload, list, download; all through the item's scope."""

    model = Attachment
    parser_classes = (MultiPartParser,)
    max_body_bytes = MAX_ATTACHMENT_BYTES + 64 * 1024
    required_permissions = {
        "list": "toy.view_item",
        "download": "toy.view_item",
        "upload": "toy.change_item",
    }

    def scoped_queryset(self) -> QuerySet[Attachment]:
        return Attachment.objects.filter(item=self._item())

    def _item(self) -> Item:
        visible = scope_to_containers(
            Item.objects.all(), user=self.request.user, container_field="site", container_model=Site
        )
        item = (
            visible.filter(pk=self.kwargs["item_pk"]).first()
            if parse_uuid(self.kwargs["item_pk"])
            else None
        )
        if item is None:
            raise Http404
        return item

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        rows = self.scoped_queryset().order_by("-id")
        return Response({"results": AttachmentOutput(rows, many=True).data})

    def upload(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        item = self._item()
        data = validated(AttachmentUploadInput, request.data)
        stored = upload_store(
            upload=data["file"], category="toy-attachments", max_bytes=MAX_ATTACHMENT_BYTES
        )
        attachment = Attachment.objects.create(
            item=item,
            path=stored.path,
            content_type=stored.content_type,
            size=stored.size,
            sha256=stored.sha256,
            original_name=stored.original_name,
            created_by=request.user,
        )
        return Response(AttachmentOutput(attachment).data, status=status.HTTP_201_CREATED)

    def download(self, request: Request, *args: Any, **kwargs: Any) -> FileResponse:
        attachment = self.get_object()
        return stored_file_response(
            path=attachment.path,
            content_type=attachment.content_type,
            filename=attachment.original_name,
        )


class CountedItemViewSet(ListMixin, TenantScopedViewSet):
    """The same rows with page-number pagination (totals)."""

    model = Item
    list_serializer_class = ItemOutput
    pagination_class = PageNumberPagination
    ordering = ["name"]

    def scoped_queryset(self) -> QuerySet[Item]:
        return Item.objects.order_by("name", "id")


class ExplodingView(APIView):
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raise RuntimeError("boom: secret connection string postgres://user:pw@db")


class DatabaseDownView(APIView):
    """Stands in for any view whose database connection is refused mid-request."""

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raise OperationalError("connection to server at 127.0.0.1 refused")


class IntegrityView(APIView):
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raise IntegrityError('duplicate key value violates unique constraint "x"')


class ModelValidationView(APIView):
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raise DjangoValidationError({"ends_at": ["Must be after starts_at."]})
