{{/* The status store path must be the same in both crew actors and under statusStore.mountPath. */}}
{{- define "asya-crew.checks" -}}
{{- $want := printf "%s/status.sqlite3" (trimSuffix "/" .Values.statusStore.mountPath) -}}
{{- range $actor := list "happy-end" "error-end" -}}
{{- $values := index $.Values $actor -}}
{{- $env := $values.env -}}
{{- if not (kindIs "map" $env) -}}
{{- fail (printf "%s.env must be a dict in the crew chart (it carries ASYA_STATUS_DB)" $actor) -}}
{{- end -}}
{{- if ne (toString (index $env "ASYA_STATUS_DB")) $want -}}
{{- fail (printf "%s.env.ASYA_STATUS_DB must be %s (statusStore.mountPath + /status.sqlite3)" $actor $want) -}}
{{- end -}}
{{- end -}}
{{- end -}}
