{{/* Named templates of the asya-controller chart. */}}

{{- define "asya-controller.fullname" -}}
{{- if contains "asya-controller" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-asya-controller" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "asya-controller.selectorLabels" -}}
app.kubernetes.io/name: asya-controller
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end -}}

{{- define "asya-controller.labels" -}}
{{ include "asya-controller.selectorLabels" . }}
app.kubernetes.io/component: controller
app.kubernetes.io/part-of: asya
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
{{- end -}}

{{- define "asya-controller.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "asya-controller.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The rules on actor Deployments and their Events, used in a Role or a ClusterRole. */}}
{{- define "asya-controller.actorRules" -}}
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}

{{/* The namespaces the controller manages, comma-separated: watchNamespaces, else the release's own;
empty when clusterWide (every namespace). */}}
{{- define "asya-controller.namespaces" -}}
{{- if .Values.clusterWide -}}
{{- if .Values.watchNamespaces -}}
{{- fail "clusterWide: true watches every namespace; leave watchNamespaces empty (or set clusterWide: false)" -}}
{{- end -}}
{{- else -}}
{{- join "," (.Values.watchNamespaces | default (list .Release.Namespace)) -}}
{{- end -}}
{{- end -}}
