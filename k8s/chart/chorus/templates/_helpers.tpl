{{/* Names, labels and the pieces every Deployment shares. */}}

{{- define "chorus.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* chorus.name: the fullname and a component, e.g. "rel-chorus-hub". Takes (list $ "hub"). */}}
{{- define "chorus.name" -}}
{{- printf "%s-%s" (include "chorus.fullname" (index . 0)) (index . 1) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "chorus.selectorLabels" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ $.Chart.Name }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "chorus.labels" -}}
{{- $ := index . 0 -}}
{{ include "chorus.selectorLabels" . }}
app.kubernetes.io/version: {{ $.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" $.Chart.Name $.Chart.Version }}
{{- end -}}

{{- define "chorus.image" -}}
{{- $ := index . 0 -}}
{{- $tag := $.Values.image.tag | default $.Chart.AppVersion -}}
{{- if $.Values.image.registry -}}
{{ printf "%s/%s-%s:%s" $.Values.image.registry $.Values.image.repository (index . 1) $tag }}
{{- else -}}
{{ printf "%s-%s:%s" $.Values.image.repository (index . 1) $tag }}
{{- end -}}
{{- end -}}

{{- define "chorus.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{ default (include "chorus.fullname" .) .Values.serviceAccount.name }}
{{- else -}}
{{ default "default" .Values.serviceAccount.name }}
{{- end -}}
{{- end -}}

{{/* An env var from existingSecret: (list $ "ENV_NAME" "secretKeysField"). */}}
{{- define "chorus.secretEnv" -}}
{{- $ := index . 0 -}}
- name: {{ index . 1 }}
  valueFrom:
    secretKeyRef:
      name: {{ $.Values.existingSecret }}
      key: {{ index $.Values.secretKeys (index . 2) }}
{{- end -}}

{{/* librdkafka's security settings for a service whose env prefix is given: (list $ "CHORUS_API__KAFKA__LIBRDKAFKA__"). */}}
{{- define "chorus.kafkaSecurityEnv" -}}
{{- $ := index . 0 -}}{{- $p := index . 1 -}}
{{- if ne $.Values.kafka.securityProtocol "PLAINTEXT" }}
- name: {{ $p }}security.protocol
  value: {{ $.Values.kafka.securityProtocol | quote }}
{{- end }}
{{- if $.Values.kafka.sasl.mechanism }}
- name: {{ $p }}sasl.mechanisms
  value: {{ $.Values.kafka.sasl.mechanism | quote }}
- name: {{ $p }}sasl.username
  valueFrom:
    secretKeyRef:
      name: {{ $.Values.kafka.sasl.existingSecret }}
      key: {{ $.Values.kafka.sasl.usernameKey }}
- name: {{ $p }}sasl.password
  valueFrom:
    secretKeyRef:
      name: {{ $.Values.kafka.sasl.existingSecret }}
      key: {{ $.Values.kafka.sasl.passwordKey }}
{{- end }}
{{- end -}}

{{/* A service's own env, envSecret and the shared log settings: (list $ .Values.hub). */}}
{{- define "chorus.extraEnv" -}}
{{- $svc := index . 1 -}}
{{- range $svc.envSecret }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .key }}
{{- end }}
{{- with $svc.env }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
A TOML document from a map, for the services' config files. Helm reads every number in values as
a float; whole numbers are written as integers (5000, not 5000.0 or 5e+03), which the services'
TOML parser requires. Keys are quoted, so librdkafka's dotted properties stay one key.
*/}}
{{- define "chorus.tomlValue" -}}
{{- if kindIs "float64" . -}}
{{- if eq . (floor .) -}}{{ int64 . }}{{- else -}}{{ . }}{{- end -}}
{{- else if or (kindIs "int" .) (kindIs "int64" .) (kindIs "bool" .) -}}
{{ . }}
{{- else if kindIs "slice" . -}}
[{{- range $i, $e := . }}{{ if $i }}, {{ end }}{{ include "chorus.tomlValue" $e }}{{ end }}]
{{- else -}}
{{ toString . | toJson }}
{{- end -}}
{{- end -}}

{{- define "chorus.toml" -}}
{{- $table := .table -}}{{- $prefix := .prefix -}}
{{- range $k, $v := $table }}
{{- if not (kindIs "map" $v) }}
{{ $k | quote }} = {{ include "chorus.tomlValue" $v }}
{{- end }}
{{- end }}
{{- range $k, $v := $table }}
{{- if kindIs "map" $v }}
{{- $name := ternary ($k | quote) (printf "%s.%s" $prefix ($k | quote)) (eq $prefix "") }}

[{{ $name }}]
{{- include "chorus.toml" (dict "table" $v "prefix" $name) }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Pod-level settings every Deployment shares: (list $ "hub" .Values.hub). */}}
{{- define "chorus.podSpecCommon" -}}
{{- $ := index . 0 -}}{{- $component := index . 1 -}}{{- $svc := index . 2 -}}
serviceAccountName: {{ include "chorus.serviceAccountName" $ }}
automountServiceAccountToken: false
{{- with $.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $.Values.podSecurityContext | nindent 2 }}
terminationGracePeriodSeconds: {{ add $svc.shutdownGraceSeconds $.Values.preStopSleepSeconds 10 }}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "chorus.selectorLabels" (list $ $component) | nindent 8 }}
{{- with $svc.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $svc.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $svc.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Container-level settings every service shares: (list $ .Values.hub "internal-port-name"). */}}
{{- define "chorus.containerCommon" -}}
{{- $ := index . 0 -}}{{- $svc := index . 1 -}}{{- $probePort := index . 2 -}}
imagePullPolicy: {{ $.Values.image.pullPolicy }}
securityContext:
  {{- toYaml $.Values.securityContext | nindent 2 }}
resources:
  {{- toYaml $svc.resources | nindent 2 }}
livenessProbe:
  httpGet:
    path: /health
    port: {{ $probePort }}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 6
readinessProbe:
  httpGet:
    path: /health
    port: {{ $probePort }}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
lifecycle:
  preStop:
    sleep:
      seconds: {{ $.Values.preStopSleepSeconds | int }}
{{- with $svc.envFrom }}
envFrom:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* A PodDisruptionBudget: (list $ "hub" .Values.hub). */}}
{{- define "chorus.pdb" -}}
{{- $ := index . 0 -}}{{- $component := index . 1 -}}{{- $svc := index . 2 -}}
{{- if and $svc.enabled $svc.pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "chorus.name" (list $ $component) }}
  labels:
    {{- include "chorus.labels" (list $ $component) | nindent 4 }}
spec:
  maxUnavailable: {{ $svc.pdb.maxUnavailable | int }}
  selector:
    matchLabels:
      {{- include "chorus.selectorLabels" (list $ $component) | nindent 6 }}
{{- end }}
{{- end -}}

{{/* A CPU HorizontalPodAutoscaler, plus extra metrics: (list $ "api" .Values.api extraMetricsYaml). */}}
{{- define "chorus.hpa" -}}
{{- $ := index . 0 -}}{{- $component := index . 1 -}}{{- $svc := index . 2 -}}{{- $extra := index . 3 -}}
{{- if and $svc.enabled $svc.autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "chorus.name" (list $ $component) }}
  labels:
    {{- include "chorus.labels" (list $ $component) | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "chorus.name" (list $ $component) }}
  minReplicas: {{ $svc.autoscaling.minReplicas | int }}
  maxReplicas: {{ $svc.autoscaling.maxReplicas | int }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $svc.autoscaling.targetCPUUtilizationPercentage | int }}
    {{- with $extra }}
    {{- . | nindent 4 }}
    {{- end }}
{{- end }}
{{- end -}}
