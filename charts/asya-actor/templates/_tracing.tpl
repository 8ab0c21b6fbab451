{{/* OpenTelemetry env of a container (values `tracing`, docs/operations.md): nothing when tracing is off. */}}
{{- define "asya-actor.tracingEnv" -}}
{{- $t := .tracing -}}
{{- if and $t $t.enabled }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ required "tracing.endpoint is required when tracing.enabled" $t.endpoint | quote }}
- name: OTEL_SERVICE_NAME
  value: {{ default .serviceName $t.serviceName | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ $t.sampler | default "parentbased_always_on" | quote }}
{{- if ne (toString $t.samplerArg) "" }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ $t.samplerArg | toString | quote }}
{{- end }}
- name: OTEL_BSP_MAX_QUEUE_SIZE
  value: {{ $t.maxQueueSize | default 2048 | toString | quote }}
{{- with $t.headersSecret }}
- name: OTEL_EXPORTER_OTLP_HEADERS
  valueFrom:
    secretKeyRef:
      name: {{ . | quote }}
      key: headers
{{- end }}
{{- end }}
{{- end -}}
