{{/*
Named templates of the asya-actor chart. The label and annotation names are the contract with the
controller (docs/configuration.md, "Actor Deployment metadata").
*/}}

{{- define "asya-actor.name" -}}
{{- required "name is required: the actor name (queue <queuePrefix><name>)" .Values.name -}}
{{- end -}}

{{- define "asya-actor.fullname" -}}
{{- $name := include "asya-actor.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "asya-actor.queue" -}}
{{- printf "%s%s" .Values.transport.queuePrefix (include "asya-actor.name" .) -}}
{{- end -}}

{{- define "asya-actor.selectorLabels" -}}
asya.sh/actor: {{ include "asya-actor.name" . | quote }}
app.kubernetes.io/name: asya-actor
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end -}}

{{- define "asya-actor.labels" -}}
{{ include "asya-actor.selectorLabels" . }}
app.kubernetes.io/component: actor
app.kubernetes.io/part-of: asya
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
{{- end -}}

{{- define "asya-actor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "asya-actor.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Seconds (integer, rounded up) of a duration written 30, 1.5s, 500ms, 2m or 1h. */}}
{{- define "asya-actor.seconds" -}}
{{- $raw := toString . | trim | lower -}}
{{- $unit := regexFind "(ms|s|m|h)$" $raw -}}
{{- $number := trimSuffix $unit $raw -}}
{{- if not (regexMatch "^[0-9]+(\\.[0-9]+)?$" $number) -}}
{{- fail (printf "%q is not a duration (examples: 30, 1.5s, 500ms, 2m, 1h)" $raw) -}}
{{- end -}}
{{- $factor := get (dict "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 "" 1.0) $unit -}}
{{- mulf (float64 $number) $factor | ceil | int -}}
{{- end -}}

{{- define "asya-actor.image" -}}
{{- $tag := default .root.Chart.AppVersion .image.tag -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}

{{- define "asya-actor.shutdownGrace" -}}
{{- default .Values.resiliency.actorTimeout .Values.sidecar.shutdownGrace -}}
{{- end -}}

{{- define "asya-actor.terminationGracePeriodSeconds" -}}
{{- if .Values.terminationGracePeriodSeconds -}}
{{- .Values.terminationGracePeriodSeconds -}}
{{- else -}}
{{- add (include "asya-actor.seconds" (include "asya-actor.shutdownGrace" .)) 30 -}}
{{- end -}}
{{- end -}}

{{/* Queue URL KEDA's aws-sqs-queue scaler polls. */}}
{{- define "asya-actor.sqsQueueUrl" -}}
{{- $sqs := .Values.transport.sqs -}}
{{- if $sqs.queueUrl -}}
{{- $sqs.queueUrl -}}
{{- else if $sqs.endpointUrl -}}
{{- printf "%s/%s/%s" (trimSuffix "/" $sqs.endpointUrl) (required "transport.sqs.accountId is required to build the SQS queue URL KEDA polls (or set transport.sqs.queueUrl)" $sqs.accountId) (include "asya-actor.queue" .) -}}
{{- else -}}
{{- printf "https://sqs.%s.amazonaws.com/%s/%s" $sqs.region (required "transport.sqs.accountId is required to build the SQS queue URL KEDA polls (or set transport.sqs.queueUrl)" $sqs.accountId) (include "asya-actor.queue" .) -}}
{{- end -}}
{{- end -}}

{{- define "asya-actor.pubsubSubscription" -}}
{{- default (include "asya-actor.queue" .) .Values.transport.pubsub.subscription -}}
{{- end -}}

{{/* Restricted security context shared by every container. */}}
{{- define "asya-actor.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Broker env shared by the sidecar (credentials only through secretKeyRef). */}}
{{- define "asya-actor.transportEnv" -}}
{{- $t := .Values.transport -}}
- name: ASYA_TRANSPORT
  value: {{ $t.type | quote }}
- name: ASYA_QUEUE_PREFIX
  value: {{ $t.queuePrefix | quote }}
{{- if eq $t.type "rabbitmq" }}
- name: ASYA_RABBITMQ_URL
  valueFrom:
    secretKeyRef:
      name: {{ required "transport.rabbitmq.existingSecret is required for transport.type=rabbitmq: a Secret holding the AMQP URL" $t.rabbitmq.existingSecret | quote }}
      key: {{ $t.rabbitmq.urlKey | quote }}
- name: ASYA_RABBITMQ_EXCHANGE
  value: {{ $t.rabbitmq.exchange | quote }}
{{- else if eq $t.type "sqs" }}
- name: ASYA_SQS_REGION
  value: {{ $t.sqs.region | quote }}
- name: ASYA_SQS_ENDPOINT_URL
  value: {{ $t.sqs.endpointUrl | quote }}
{{- if $t.sqs.existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $t.sqs.existingSecret | quote }}
      key: AWS_ACCESS_KEY_ID
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $t.sqs.existingSecret | quote }}
      key: AWS_SECRET_ACCESS_KEY
{{- end }}
{{- else if eq $t.type "pubsub" }}
- name: ASYA_PUBSUB_PROJECT
  value: {{ required "transport.pubsub.project is required for transport.type=pubsub" $t.pubsub.project | quote }}
- name: ASYA_PUBSUB_EMULATOR_HOST
  value: {{ $t.pubsub.emulatorHost | quote }}
{{- if $t.pubsub.existingSecret }}
- name: GOOGLE_APPLICATION_CREDENTIALS
  value: /var/run/asya-gcp/{{ $t.pubsub.credentialsKey }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The handler image: `image: repo:tag` (compact, as in AsyncActor examples) or {repository, tag, pullPolicy}. */}}
{{- define "asya-actor.handlerImage" -}}
{{- $image := .Values.image -}}
{{- if kindIs "string" $image -}}
{{- required "image is required: the image holding the handler code (repo:tag)" $image -}}
{{- else -}}
{{- $image = default dict $image -}}
{{- printf "%s:%s" (required "image.repository is required: the image holding the handler code" $image.repository) (required "image.tag is required: pin the handler image (1.2.3 or 1.2.3@sha256:...)" $image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "asya-actor.handlerImagePullPolicy" -}}
{{- if kindIs "map" .Values.image -}}
{{- default "IfNotPresent" .Values.image.pullPolicy -}}
{{- else -}}
IfNotPresent
{{- end -}}
{{- end -}}

{{/* PYTHONPATH the user set in `env` (map or EnvVar list form), merged into the runtime's own. */}}
{{- define "asya-actor.userPythonPath" -}}
{{- $env := .Values.env -}}
{{- if kindIs "map" $env -}}
{{- get $env "PYTHONPATH" | default "" | toString -}}
{{- else -}}
{{- range $env -}}
{{- if eq .name "PYTHONPATH" -}}
{{- if not (hasKey . "value") -}}
{{- fail "env: PYTHONPATH must be a plain value (it is merged with the runtime's own PYTHONPATH)" -}}
{{- end -}}
{{- .value | toString -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
