{{/*
A Kafka worker (the sink, the transcriber): ConfigMap, Deployment, a Service for /metrics, PDB.
(list $ "sink" .Values.sink $ownedConfig $envYaml $volumesYaml $mountsYaml)
*/}}
{{- define "chorus.worker" -}}
{{- $ := index . 0 -}}{{- $component := index . 1 -}}{{- $svc := index . 2 -}}
{{- $owned := index . 3 -}}{{- $env := index . 4 -}}
{{- $name := include "chorus.name" (list $ $component) }}
{{- $config := mustMergeOverwrite (deepCopy $svc.config) $owned }}
{{- $configToml := include "chorus.toml" (dict "table" $config "prefix" "") | trim }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $name }}
  labels:
    {{- include "chorus.labels" (list $ $component) | nindent 4 }}
data:
  {{ $component }}.toml: |
    {{- $configToml | nindent 4 }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  labels:
    {{- include "chorus.labels" (list $ $component) | nindent 4 }}
spec:
  {{- if not (and $svc.autoscaling $svc.autoscaling.enabled) }}
  replicas: {{ $svc.replicaCount | int }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "chorus.selectorLabels" (list $ $component) | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  template:
    metadata:
      labels:
        {{- include "chorus.selectorLabels" (list $ $component) | nindent 8 }}
      annotations:
        checksum/config: {{ $configToml | sha256sum }}
        {{- with $svc.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- include "chorus.podSpecCommon" (list $ $component $svc) | nindent 6 }}
      containers:
        - name: {{ $component }}
          image: {{ include "chorus.image" (list $ $component) }}
          command: ["/usr/local/bin/chorus-{{ $component }}"]
          args:
            {{- if eq $component "transcriber" }}
            - serve
            {{- end }}
            - --config
            - /etc/chorus/{{ $component }}.toml
          ports:
            - name: http
              containerPort: {{ $svc.port | int }}
              protocol: TCP
          env:
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            # Static group membership: a container restarted in its pod (a crash, an OOM
            # kill) takes its partitions back at once instead of waiting out its old session.
            - name: CHORUS_{{ upper $component }}__KAFKA__INSTANCE_ID
              value: $(POD_NAME)
            {{- with $env }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- include "chorus.kafkaSecurityEnv" (list $ (printf "CHORUS_%s__KAFKA__LIBRDKAFKA__" (upper $component))) | nindent 12 }}
            {{- include "chorus.extraEnv" (list $ $svc) | nindent 12 }}
          {{- include "chorus.containerCommon" (list $ $svc "http") | nindent 10 }}
          volumeMounts:
            - name: config
              mountPath: /etc/chorus
              readOnly: true
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: config
          configMap:
            name: {{ $name }}
        - name: tmp
          emptyDir: {}
---
# /health and /metrics only: Prometheus reads it; nothing else calls a worker.
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  labels:
    {{- include "chorus.labels" (list $ $component) | nindent 4 }}
    chorus.dev/metrics: "true"
    chorus.dev/job: chorus-{{ $component }}
spec:
  type: ClusterIP
  selector:
    {{- include "chorus.selectorLabels" (list $ $component) | nindent 4 }}
  ports:
    - name: http
      port: {{ $svc.port | int }}
      targetPort: http
      protocol: TCP
{{- include "chorus.pdb" (list $ $component $svc) }}
{{- end -}}
