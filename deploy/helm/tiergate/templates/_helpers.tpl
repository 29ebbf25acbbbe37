{{- define "tiergate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* app.kubernetes.io/name is always tiergate: the alert rules' job label comes from it. */}}
{{- define "tiergate.selector" -}}
app.kubernetes.io/name: tiergate
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tiergate.labels" -}}
{{ include "tiergate.selector" . }}
app.kubernetes.io/part-of: tiergate
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "tiergate.redisSelector" -}}
app.kubernetes.io/name: redis
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tiergate.upstreamSecret" -}}
{{- .Values.upstreamKeys.existingSecret | default (printf "%s-upstream-keys" (include "tiergate.fullname" .)) -}}
{{- end -}}

{{- define "tiergate.clientKeysSecret" -}}
{{- .Values.clientKeys.existingSecret | default (printf "%s-client-keys" (include "tiergate.fullname" .)) -}}
{{- end -}}
