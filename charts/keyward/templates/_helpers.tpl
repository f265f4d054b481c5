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
{{- if $p.gcp.enabled }}
{{- include "keyward.validateGcp" . }}
{{- with $p.gcp.keyRing }}
- name: KEYWARD_GCP_KEY_RING
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- if $p.azure.enabled }}
{{- include "keyward.validateAzure" . }}
- name: KEYWARD_AZURE_VAULT_URL
  value: {{ $p.azure.vaultUrl | quote }}
{{- if $p.azure.caSecret.name }}
- name: KEYWARD_AZURE_CA_FILE
  value: /etc/keyward/azure-ca/ca.crt
{{- end }}
{{- if $p.azure.skipChallengeResourceCheck }}
- name: KEYWARD_AZURE_SKIP_CHALLENGE_RESOURCE_CHECK
  value: "true"
{{- end }}
{{- end }}
{{- if and $p.local.enabled $p.local.rootKeyWrappingKey }}
- name: KEYWARD_ROOT_KEY_WRAPPING_KEY
  value: {{ $p.local.rootKeyWrappingKey | quote }}
{{- end }}
{{- end -}}

{{/* Cloud KMS needs its key ring. Before providers.gcp.keyRing existed it was
     set through extraEnv; that still works when both components have it. */}}
{{- define "keyward.validateGcp" -}}
{{- $p := .Values.providers }}
{{- if not $p.gcp.keyRing }}
{{- $inExtraEnv := true }}
{{- range (list .Values.operator.extraEnv .Values.webhook.extraEnv) }}
{{- $has := false }}
{{- range . }}{{ if eq (toString .name) "KEYWARD_GCP_KEY_RING" }}{{ $has = true }}{{ end }}{{ end }}
{{- if not $has }}{{ $inExtraEnv = false }}{{ end }}
{{- end }}
{{- if not $inExtraEnv }}
{{- fail "providers.gcp.enabled needs providers.gcp.keyRing: the key ring that holds Keyward's keys, projects/PROJECT/locations/LOCATION/keyRings/RING (it must exist)" }}
{{- end }}
{{- end }}
{{- end -}}

{{/* providers.azure: the vault URL, and the identity settings its mode needs. */}}
{{- define "keyward.validateAzure" -}}
{{- $a := .Values.providers.azure }}
{{- if not $a.vaultUrl }}
{{- fail "providers.azure.enabled needs providers.azure.vaultUrl: the vault's URL, e.g. https://NAME.vault.azure.net" }}
{{- end }}
{{- if not (regexMatch "^https://[^\\s/]+/?$" $a.vaultUrl) }}
{{- fail (printf "providers.azure.vaultUrl must be the vault's https:// URL without a path, e.g. https://NAME.vault.azure.net (Key Vault tokens are never sent over plain HTTP); got %q" $a.vaultUrl) }}
{{- end }}
{{- if and $a.skipChallengeResourceCheck (regexMatch "(?i)^https://[^/]*\\.(vault\\.azure\\.net|vault\\.azure\\.cn|vault\\.usgovcloudapi\\.net|vault\\.microsoftazure\\.de|managedhsm\\.azure\\.net)(:[0-9]+)?/?$" $a.vaultUrl) }}
{{- fail (printf "providers.azure.skipChallengeResourceCheck is only for a Key Vault test double, and %s is Azure's own vault; set it to false" $a.vaultUrl) }}
{{- end }}
{{- if $a.aksWorkloadIdentityWebhook }}
{{- $sa := dict "operator" .Values.operator.serviceAccount.annotations "webhook" .Values.webhook.serviceAccount.annotations }}
{{- range $component, $id := dict "operator" $a.operatorClientId "webhook" $a.webhookClientId }}
{{- if not (or $id (get (get $sa $component) "azure.workload.identity/client-id")) }}
{{- fail (printf "providers.azure needs providers.azure.%sClientId: the client id of the %s's managed identity, which AKS's workload identity webhook reads from the ServiceAccount annotation azure.workload.identity/client-id" $component $component) }}
{{- end }}
{{- end }}
{{- else }}
{{- $missing := list }}
{{- range $name := list "tenantId" "operatorClientId" "webhookClientId" }}
{{- if not (get $a $name) }}{{ $missing = append $missing (printf "providers.azure.%s" $name) }}{{ end }}
{{- end }}
{{- if $missing }}
{{- fail (printf "providers.azure.aksWorkloadIdentityWebhook is false, so the chart sets AZURE_TENANT_ID and AZURE_CLIENT_ID itself: set %s" (join ", " $missing)) }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Pod labels for providers.azure (dict root, podLabels): AKS's workload
     identity webhook mutates only pods labelled azure.workload.identity/use. */}}
{{- define "keyward.azurePodLabels" -}}
{{- $a := .root.Values.providers.azure }}
{{- if and $a.enabled $a.aksWorkloadIdentityWebhook (not (hasKey (.podLabels | default dict) "azure.workload.identity/use")) }}
azure.workload.identity/use: "true"
{{- end }}
{{- end -}}

{{/* ServiceAccount annotations for providers.azure, into the dict .ann. */}}
{{- define "keyward.azureServiceAccountAnnotations" -}}
{{- $a := .root.Values.providers.azure }}
{{- if and $a.enabled $a.aksWorkloadIdentityWebhook }}
{{- with get $a (printf "%sClientId" .component) }}{{ $_ := set $.ann "azure.workload.identity/client-id" . }}{{ end }}
{{- with $a.tenantId }}{{ $_ := set $.ann "azure.workload.identity/tenant-id" . }}{{ end }}
{{- end }}
{{- end -}}

{{/* The Entra ID workload identity env of one component (dict root, component).
     With AKS's webhook it injects AZURE_CLIENT_ID, AZURE_TENANT_ID,
     AZURE_FEDERATED_TOKEN_FILE and AZURE_AUTHORITY_HOST itself (it keeps
     variables the container already has). */}}
{{- define "keyward.azureIdentityEnv" -}}
{{- $a := .root.Values.providers.azure }}
{{- if $a.enabled }}
{{- if not $a.aksWorkloadIdentityWebhook }}
- name: AZURE_CLIENT_ID
  value: {{ get $a (printf "%sClientId" .component) | quote }}
- name: AZURE_TENANT_ID
  value: {{ $a.tenantId | quote }}
- name: AZURE_FEDERATED_TOKEN_FILE
  value: /var/run/secrets/azure/tokens/azure-identity-token
{{- end }}
{{- with $a.authorityHost }}
- name: AZURE_AUTHORITY_HOST
  value: {{ . | quote }}
{{- end }}
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
{{- if $p.azure.enabled }}
{{- if not $p.azure.aksWorkloadIdentityWebhook }}
- name: azure-identity-token
  mountPath: /var/run/secrets/azure/tokens
  readOnly: true
{{- end }}
{{- if $p.azure.caSecret.name }}
- name: azure-ca
  mountPath: /etc/keyward/azure-ca
  readOnly: true
{{- end }}
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
{{- if $p.azure.enabled }}
{{- if not $p.azure.aksWorkloadIdentityWebhook }}
# The ServiceAccount token Entra ID exchanges for an access token (the
# audience and conventional path of Azure Workload Identity).
- name: azure-identity-token
  projected:
    sources:
      - serviceAccountToken:
          path: azure-identity-token
          audience: api://AzureADTokenExchange
          expirationSeconds: 3600
{{- end }}
{{- if $p.azure.caSecret.name }}
- name: azure-ca
  secret:
    secretName: {{ $p.azure.caSecret.name }}
    defaultMode: 0444
    items:
      - key: {{ $p.azure.caSecret.key }}
        path: ca.crt
{{- end }}
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
