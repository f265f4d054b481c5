{{/* Names, labels and shared snippets of the Keyward chart. */}}

{{- define "keyward.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "keyward.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "keyward.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "keyward.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "keyward.operator.fullname" -}}
{{- printf "%s-operator" (include "keyward.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "keyward.webhook.fullname" -}}
{{- printf "%s-webhook" (include "keyward.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Cluster-scoped objects carry the namespace so two releases never collide.
     trimPrefix: `helm lint` renders with no namespace, and a name may not start with "-". */}}
{{- define "keyward.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "keyward.fullname" .) | trimPrefix "-" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "keyward.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "keyward.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: keyward
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "keyward.selectorLabels" -}}
app.kubernetes.io/name: {{ include "keyward.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "keyward.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "keyward.webhook.tlsSecret" -}}
{{- default (printf "%s-tls" (include "keyward.webhook.fullname" .)) .Values.webhook.tls.secretName -}}
{{- end -}}

{{- define "keyward.webhook.mutatingName" -}}
{{- printf "%s-mutate" (include "keyward.clusterName" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "keyward.webhook.validatingName" -}}
{{- printf "%s-validate" (include "keyward.clusterName" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Environment for every provider that is enabled, shared by operator and webhook. */}}
{{- define "keyward.providerEnv" -}}
{{- $p := .Values.providers }}
{{- if $p.local.enabled }}
- name: KEYWARD_KEYRING_SECRET
  value: {{ $p.local.keyringSecret | quote }}
- name: KEYWARD_ROOT_KEY_SECRET
  value: {{ $p.local.rootKeySecret | quote }}
{{- end }}
{{- if and $p.aws.enabled $p.aws.region }}
- name: AWS_REGION
  value: {{ $p.aws.region | quote }}
{{- end }}
{{- include "keyward.providerFlagsEnv" . }}
{{- if $p.pkcs11.enabled }}
{{- with $p.pkcs11.env }}
{{ toYaml . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The binaries' provider flags (keyward-provider-select), as env vars. */}}
{{- define "keyward.providerFlagsEnv" -}}
{{- $p := .Values.providers }}
{{- if and $p.aws.enabled $p.aws.region }}
- name: KEYWARD_AWS_REGION
  value: {{ $p.aws.region | quote }}
{{- end }}
{{- if $p.pkcs11.enabled }}
- name: KEYWARD_PKCS11_MODULE
  value: {{ $p.pkcs11.module | quote }}
- name: KEYWARD_PKCS11_TOKEN_LABEL
  value: {{ $p.pkcs11.tokenLabel | quote }}
{{- if not (kindIs "invalid" $p.pkcs11.slot) }}
- name: KEYWARD_PKCS11_SLOT
  value: {{ int64 $p.pkcs11.slot | quote }}
{{- end }}
- name: KEYWARD_PKCS11_PIN_FILE
  value: /etc/keyward/pkcs11-pin/pin
- name: KEYWARD_PKCS11_MAX_SESSIONS
  value: {{ int64 $p.pkcs11.maxSessions | quote }}
- name: KEYWARD_PKCS11_TOKEN_GENERATES_IV
  value: {{ $p.pkcs11.tokenGeneratesIv | quote }}
{{- end }}
{{- if and $p.local.enabled $p.local.rootKeyWrappingKey }}
- name: KEYWARD_ROOT_KEY_WRAPPING_KEY
  value: {{ $p.local.rootKeyWrappingKey | quote }}
{{- end }}
{{- end -}}

{{/* The local keyring's Secrets: keyring, clear and wrapped root key. */}}
{{- define "keyward.localSecrets" -}}
{{- $l := .Values.providers.local }}
{{- toJson (list $l.keyringSecret $l.rootKeySecret (printf "%s-wrapped" $l.rootKeySecret)) }}
{{- end -}}

{{/* The ConfigMap recording the highest keyring generation written. */}}
{{- define "keyward.keyringGeneration" -}}
{{- printf "%s-generation" .Values.providers.local.keyringSecret }}
{{- end -}}

{{- define "keyward.providerVolumeMounts" -}}
{{- $p := .Values.providers }}
{{- if $p.pkcs11.enabled }}
- name: pkcs11-module
  mountPath: {{ $p.pkcs11.moduleMountPath }}
  readOnly: true
- name: pkcs11-config
  mountPath: /etc/keyward/pkcs11
  readOnly: true
- name: pkcs11-pin
  mountPath: /etc/keyward/pkcs11-pin
  readOnly: true
{{- end }}
{{- end -}}

{{- define "keyward.providerVolumes" -}}
{{- $p := .Values.providers }}
{{- if $p.pkcs11.enabled }}
- name: pkcs11-module
  {{- if $p.pkcs11.moduleVolume }}
  {{- toYaml $p.pkcs11.moduleVolume | nindent 2 }}
  {{- else }}
  {{- fail "providers.pkcs11.enabled needs providers.pkcs11.moduleVolume (a volume source holding the vendor's PKCS#11 library)" }}
  {{- end }}
- name: pkcs11-config
  configMap:
    name: {{ include "keyward.fullname" . }}-pkcs11
- name: pkcs11-pin
  secret:
    secretName: {{ $p.pkcs11.pinSecret.name }}
    defaultMode: 0400
    items:
      - key: {{ $p.pkcs11.pinSecret.key }}
        path: pin
{{- end }}
{{- end -}}

{{- define "keyward.podAntiAffinity" -}}
{{- $sel := include "keyward.selectorLabels" (dict "root" .root "component" .component) }}
{{- if eq .mode "hard" }}
podAntiAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- $sel | nindent 10 }}
{{- else if eq .mode "soft" }}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- $sel | nindent 12 }}
{{- end }}
{{- end -}}

{{/* clientConfig of a webhook: the Service, or webhook.admission.urlOverride. */}}
{{- define "keyward.webhook.clientConfig" -}}
{{- $w := .root.Values.webhook }}
{{- if $w.admission.urlOverride }}
url: {{ printf "%s%s" (trimSuffix "/" $w.admission.urlOverride) .path | quote }}
{{- else }}
service:
  name: {{ include "keyward.webhook.fullname" .root }}
  namespace: {{ .root.Release.Namespace }}
  path: {{ .path }}
  port: {{ $w.port }}
{{- end }}
{{- if eq $w.tls.mode "secret" }}
caBundle: {{ $w.tls.caBundle }}
{{- end }}
{{- end }}

{{- define "keyward.webhook.namespaceSelector" -}}
# Never the release namespace (Keyward must start while its webhook is down)
# nor kube-system. kubernetes.io/metadata.name is set by the API server from
# 1.21 on; on 1.20 also label those namespaces keyward.io/ignore=true.
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: {{ toJson .excluded }}
    - key: keyward.io/ignore
      operator: NotIn
      values: ["true"]
{{- end }}

{{/* Audit log rotation flags, from an auditLog value block. */}}
{{- define "keyward.auditEnv" -}}
- name: KEYWARD_AUDIT_MAX_BYTES
  value: {{ .maxBytes | int64 | quote }}
- name: KEYWARD_AUDIT_KEEP_SEGMENTS
  value: {{ .keepSegments | int64 | quote }}
- name: KEYWARD_AUDIT_STDOUT
  value: {{ .stdout | toString | quote }}
{{- end }}

{{/*
The audit emptyDir: at most keepSegments rotated segments and the active one
exist, each under maxBytes; one more segment of headroom, because a pod whose
emptyDir passes its sizeLimit is evicted. No limit when every segment is kept.
*/}}
{{- define "keyward.auditEmptyDir" -}}
{{- $keep := .keepSegments | int64 -}}
{{- if gt $keep 0 -}}
{sizeLimit: {{ mul (add $keep 2) (.maxBytes | int64) }}}
{{- else -}}
{}
{{- end -}}
{{- end }}
