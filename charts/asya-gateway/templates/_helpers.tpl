{{/* Named templates of the asya-gateway chart. */}}

{{- define "asya-gateway.fullname" -}}
{{- if contains "asya-gateway" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-asya-gateway" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "asya-gateway.selectorLabels" -}}
app.kubernetes.io/name: asya-gateway
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end -}}

{{- define "asya-gateway.labels" -}}
{{ include "asya-gateway.selectorLabels" . }}
app.kubernetes.io/component: gateway
app.kubernetes.io/part-of: asya
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
{{- end -}}

{{- define "asya-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "asya-gateway.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The tools file as JSON (values are data: never passed through tpl). */}}
{{- define "asya-gateway.toolsJson" -}}
{{- dict "tools" .Values.tools | toPrettyJson -}}
{{- end -}}
