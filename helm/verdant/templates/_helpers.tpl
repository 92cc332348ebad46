{{/* Names ------------------------------------------------------------------------------------ */}}
{{- define "verdant.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "verdant.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "verdant.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels: call with (dict "root" $ "component" "web") ---------------------------------------- */}}
{{- define "verdant.selectorLabels" -}}
app.kubernetes.io/name: {{ include "verdant.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "verdant.labels" -}}
helm.sh/chart: {{ include "verdant.chart" .root }}
{{ include "verdant.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: verdant
{{- end }}

{{- define "verdant.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "verdant.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "verdant.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "verdant.secretName" -}}
{{- default (include "verdant.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/* The hook copies of the ConfigMap / Secret exist before the release's own resources do. */}}
{{- define "verdant.migrateSecretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else }}
{{- printf "%s-migrate" (include "verdant.fullname" .) }}
{{- end }}
{{- end }}

{{/* SECRET_KEY without existingSecret: the value given, else the one already in the cluster,
     else generated once per render (memoised so every Secret of one render agrees). */}}
{{- define "verdant.secretKey" -}}
{{- if .Values.secrets.secretKey }}
{{- .Values.secrets.secretKey }}
{{- else }}
{{- if not (hasKey .Values.secrets "generatedSecretKey") }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "verdant.fullname" .) }}
{{- $key := "" }}
{{- if and $existing $existing.data (hasKey $existing.data "SECRET_KEY") }}
{{- $key = index $existing.data "SECRET_KEY" | b64dec }}
{{- else }}
{{- $key = randAlphaNum 64 }}
{{- end }}
{{- $_ := set .Values.secrets "generatedSecretKey" $key }}
{{- end }}
{{- index .Values.secrets "generatedSecretKey" }}
{{- end }}
{{- end }}

{{- define "verdant.secretData" -}}
DATABASE_URL: {{ .Values.secrets.databaseUrl | b64enc | quote }}
REDIS_URL: {{ .Values.secrets.redisUrl | b64enc | quote }}
SECRET_KEY: {{ include "verdant.secretKey" . | b64enc | quote }}
{{- if .Values.secrets.jwtSigningKey }}
JWT_SIGNING_KEY: {{ .Values.secrets.jwtSigningKey | b64enc | quote }}
{{- end }}
{{- end }}

{{/* Non-secret environment shared by every pod. */}}
{{- define "verdant.configData" -}}
DJANGO_SETTINGS_MODULE: settings.production
BASE_DOMAIN: {{ .Values.baseDomain | quote }}
{{- if .Values.config.allowedHosts }}
ALLOWED_HOSTS: {{ join "," .Values.config.allowedHosts | quote }}
{{- end }}
{{- if .Values.config.csrfTrustedOrigins }}
CSRF_TRUSTED_ORIGINS: {{ join "," .Values.config.csrfTrustedOrigins | quote }}
{{- end }}
TRUSTED_PROXY_COUNT: {{ .Values.config.trustedProxyCount | quote }}
LOG_LEVEL: {{ .Values.config.logLevel | quote }}
SECURE_HSTS_SECONDS: {{ .Values.config.hstsSeconds | quote }}
JWT_ACCESS_MINUTES: {{ .Values.config.jwtAccessMinutes | quote }}
JWT_REFRESH_DAYS: {{ .Values.config.jwtRefreshDays | quote }}
DB_CONN_MAX_AGE: {{ .Values.config.dbConnMaxAge | quote }}
DB_MAX_SCHEMAS_PER_CONNECTION: {{ .Values.config.dbMaxSchemasPerConnection | quote }}
MEDIA_ROOT: {{ .Values.media.mountPath | quote }}
OTEL_SERVICE_NAME: {{ .Values.otel.serviceName | quote }}
{{- if .Values.otel.enabled }}
OTEL_SDK_DISABLED: "false"
OTEL_EXPORTER_OTLP_ENDPOINT: {{ .Values.otel.endpoint | quote }}
OTEL_EXPORTER_OTLP_PROTOCOL: {{ .Values.otel.protocol | quote }}
OTEL_TRACES_SAMPLER: {{ .Values.otel.sampler | quote }}
OTEL_TRACES_SAMPLER_ARG: {{ .Values.otel.samplerArg | quote }}
{{- if .Values.otel.resourceAttributes }}
OTEL_RESOURCE_ATTRIBUTES: {{ .Values.otel.resourceAttributes | quote }}
{{- end }}
{{- else }}
OTEL_SDK_DISABLED: "true"
{{- end }}
{{- range $name, $value := .Values.config.extraEnv }}
{{ $name }}: {{ $value | quote }}
{{- end }}
{{- end }}

{{/* envFrom for the workloads; call with (dict "root" $ "hook" true|false). */}}
{{- define "verdant.envFrom" -}}
- configMapRef:
    name: {{ include "verdant.fullname" .root }}{{ if .hook }}-migrate{{ end }}
- secretRef:
    name: {{ if .hook }}{{ include "verdant.migrateSecretName" .root }}{{ else }}{{ include "verdant.secretName" .root }}{{ end }}
{{- end }}

{{/* Pod-level settings shared by every workload. */}}
{{- define "verdant.podSpecCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountToken }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}

{{- define "verdant.checksums" -}}
checksum/config: {{ include "verdant.configData" . | sha256sum }}
{{- if not .Values.secrets.existingSecret }}
checksum/secret: {{ printf "%s|%s|%s" .Values.secrets.databaseUrl .Values.secrets.redisUrl .Values.secrets.jwtSigningKey | sha256sum }}
{{- end }}
{{- end }}

{{- define "verdant.tmpVolume" -}}
- name: tmp
  emptyDir:
    medium: Memory
    sizeLimit: {{ .Values.tmpVolumeSizeLimit }}
{{- end }}

{{- define "verdant.mediaVolume" -}}
- name: media
{{- if .Values.media.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ .Values.media.existingClaim }}
{{- else }}
  emptyDir: {}
{{- end }}
{{- end }}

{{- define "verdant.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: media
  mountPath: {{ .Values.media.mountPath }}
{{- end }}

{{/* One step of the migration Job (an init container, or the last container): the image with
the hook-scoped configuration and secret, the Job's resources and /tmp. Call with
(dict "root" $ "name" "<container name>" "command" (list "python" "manage.py" ...)). */}}
{{- define "verdant.migrateStep" -}}
- name: {{ .name }}
  image: {{ include "verdant.image" .root }}
  imagePullPolicy: {{ .root.Values.image.pullPolicy }}
  command:
    {{- toYaml .command | nindent 4 }}
  env:
    # application_name verdant-migrate in pg_stat_activity (settings/process.py).
    - name: VERDANT_PROCESS
      value: migrate
  envFrom:
    {{- include "verdant.envFrom" (dict "root" .root "hook" true) | nindent 4 }}
  resources:
    {{- toYaml .root.Values.migrations.resources | nindent 4 }}
  securityContext:
    {{- toYaml .root.Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
{{- end }}
