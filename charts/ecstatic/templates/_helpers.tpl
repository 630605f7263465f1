{{/* Labels every object of this release carries. */}}
{{- define "ecstatic.labels" -}}
app.kubernetes.io/name: ecstatic
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* The Secret holding the keys. */}}
{{- define "ecstatic.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" .Release.Name) -}}
{{- end }}

{{/* ClickHouse's HTTP URL: this release's StatefulSet or the external one. */}}
{{- define "ecstatic.clickhouseUrl" -}}
{{- if .Values.clickhouse.enabled -}}
{{- printf "http://%s-clickhouse:8123" .Release.Name -}}
{{- else -}}
{{- $msg := "clickhouse.externalUrl is required when clickhouse.enabled is false" -}}
{{- required $msg .Values.clickhouse.externalUrl -}}
{{- end -}}
{{- end }}

{{/* Environment every Ecstatic container shares: logs. */}}
{{- define "ecstatic.logEnv" -}}
- name: ECSTATIC_LOG
  value: {{ .Values.log.level | quote }}
- name: ECSTATIC_LOG_FORMAT
  value: {{ .Values.log.format | quote }}
{{- end }}

{{/* The JWT key, for api, query and git. */}}
{{- define "ecstatic.jwtEnv" -}}
- name: ECSTATIC_JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "ecstatic.secretName" . }}
      key: jwt-secret
{{- end }}

{{/* Security context of the Ecstatic containers (the images' uid 10001). */}}
{{- define "ecstatic.containerSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  allowPrivilegeEscalation: false
  capabilities:
    drop: [ALL]
{{- end }}

{{/* HTTP probes on the port named http; start-up may wait for a database. */}}
{{- define "ecstatic.probes" -}}
startupProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 5
  failureThreshold: 60
livenessProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: http}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end }}
