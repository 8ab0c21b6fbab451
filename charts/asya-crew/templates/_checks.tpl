{{/* The status store must be the same in both crew actors: the SQLite file under statusStore.mountPath,
or, with statusStore.postgres.existingSecret, the URL from that Secret (and then no claim mounted). */}}
{{- define "asya-crew.checks" -}}
{{- $want := printf "%s/status.sqlite3" (trimSuffix "/" .Values.statusStore.mountPath) -}}
{{- $pg := .Values.statusStore.postgres -}}
{{- range $actor := list "happy-end" "error-end" -}}
{{- $values := index $.Values $actor -}}
{{- $entry := dict -}}
{{- if kindIs "map" $values.env -}}
{{- if hasKey $values.env "ASYA_STATUS_DB" }}{{ $entry = dict "value" (toString (index $values.env "ASYA_STATUS_DB")) }}{{ end -}}
{{- else if kindIs "slice" $values.env -}}
{{- range $values.env }}{{ if eq .name "ASYA_STATUS_DB" }}{{ $entry = . }}{{ end }}{{ end -}}
{{- else -}}
{{- fail (printf "%s.env must carry ASYA_STATUS_DB (a dict or a list of EnvVar)" $actor) -}}
{{- end -}}
{{- if $pg.existingSecret -}}
{{- $ref := dig "valueFrom" "secretKeyRef" dict $entry -}}
{{- if or (ne (toString (dig "name" "" $ref)) $pg.existingSecret) (ne (toString (dig "key" "" $ref)) $pg.urlKey) -}}
{{- fail (printf "%s.env ASYA_STATUS_DB must come from secretKeyRef %s/%s (statusStore.postgres); see ci/postgres-values.yaml" $actor $pg.existingSecret $pg.urlKey) -}}
{{- end -}}
{{- if (default dict $values.crewStatusStore).mountPath -}}
{{- fail (printf "%s.crewStatusStore still mounts a claim: with statusStore.postgres the crew needs no volume (set crewStatusStore.mountPath: \"\")" $actor) -}}
{{- end -}}
{{- else if ne (toString (dig "value" "" $entry)) $want -}}
{{- fail (printf "%s.env.ASYA_STATUS_DB must be %s (statusStore.mountPath + /status.sqlite3)" $actor $want) -}}
{{- end -}}
{{- end -}}
{{- end -}}
