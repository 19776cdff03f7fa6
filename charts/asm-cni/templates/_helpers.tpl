{{/*
Helpers of the asm-cni chart. Object names are fixed (asm-cni-webhook, zz-asm-cni, ...): the webhook configuration and
the ClusterRoles are cluster-wide, so one release per cluster, and the names match manifests/ exactly.
*/}}

{{/* Labels of an object's metadata: the ones manifests/ sets, plus Helm's bookkeeping. Call with (dict "name" NAME "ctx" $). */}}
{{- define "asm-cni.labels" -}}
{{- with .name -}}
app.kubernetes.io/name: {{ . }}
{{ end -}}
app.kubernetes.io/part-of: asm-cni
{{ include "asm-cni.chartLabels" .ctx }}
{{- end }}

{{/* Helm's bookkeeping labels (not on pod templates or selectors, so an upgrade never changes a selector). */}}
{{- define "asm-cni.chartLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "asm-cni.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{- define "asm-cni.pullSecrets" -}}
{{- with .Values.image.pullSecrets -}}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/* config.excludeNamespaces with the release namespace: our own pods are never rewritten or redirected. */}}
{{- define "asm-cni.excludeNamespaces" -}}
{{- $ns := .Values.config.excludeNamespaces -}}
{{- if not (has .Release.Namespace $ns) }}{{ $ns = append $ns .Release.Namespace }}{{ end -}}
{{- toJson $ns -}}
{{- end }}

{{/* The plugin's log level for the shared logLevel (src/installer/entry.ts, pluginLogLevel). */}}
{{- define "asm-cni.pluginLogLevel" -}}
{{- $l := .Values.config.logLevel -}}
{{- if eq $l "trace" }}debug{{ else if eq $l "fatal" }}error{{ else }}{{ $l }}{{ end -}}
{{- end }}

{{/* The Secret the webhook serves from. */}}
{{- define "asm-cni.tlsSecretName" -}}
{{- if eq .Values.certificates.mode "existingSecret" -}}
{{- required "certificates.existingSecret.name is required with certificates.mode existingSecret" .Values.certificates.existingSecret.name -}}
{{- else -}}
asm-cni-webhook-tls
{{- end -}}
{{- end }}

{{/* The DNS names of the webhook Service (SANs of the serving certificate). */}}
{{- define "asm-cni.webhookDNSNames" -}}
{{- $ns := .Release.Namespace -}}
{{- toJson (list "asm-cni-webhook" (printf "asm-cni-webhook.%s" $ns) (printf "asm-cni-webhook.%s.svc" $ns) (printf "asm-cni-webhook.%s.svc.cluster.local" $ns)) -}}
{{- end }}

{{/*
certificates.mode generate: the Secret's data (base64), made once per render and shared by the Secret and the webhook
configuration's caBundle. On upgrade the existing Secret is looked up and kept as it is: the same CA, so the caBundle
stays valid for the certificate the running webhook serves. `helm template` cannot look up and generates new ones.
*/}}
{{- define "asm-cni.generatedTLS" -}}
{{- if not (hasKey .Values "_generatedTLS") -}}
{{- $found := lookup "v1" "Secret" .Release.Namespace "asm-cni-webhook-tls" -}}
{{- $data := dict -}}
{{- if and $found $found.data (hasKey $found.data "ca.crt") (hasKey $found.data "tls.crt") (hasKey $found.data "tls.key") -}}
{{- $data = dict "ca.crt" (index $found.data "ca.crt") "tls.crt" (index $found.data "tls.crt") "tls.key" (index $found.data "tls.key") -}}
{{- else -}}
{{- $days := int .Values.certificates.generate.validityDays -}}
{{- $ca := genCAWithKey "asm-cni-webhook-ca" $days (genPrivateKey "ecdsa") -}}
{{- $dns := concat (include "asm-cni.webhookDNSNames" . | fromJsonArray) .Values.certificates.generate.extraDNSNames -}}
{{- $cert := genSignedCertWithKey (printf "asm-cni-webhook.%s.svc" .Release.Namespace) .Values.certificates.generate.extraIPs $dns $days $ca (genPrivateKey "ecdsa") -}}
{{- $data = dict "ca.crt" ($ca.Cert | b64enc) "tls.crt" ($cert.Cert | b64enc) "tls.key" ($cert.Key | b64enc) -}}
{{- end -}}
{{- $_ := set .Values "_generatedTLS" $data -}}
{{- end -}}
{{- end }}

{{/* The caBundle of every webhook entry; empty with cert-manager (its cainjector fills it). */}}
{{- define "asm-cni.caBundle" -}}
{{- $mode := .Values.certificates.mode -}}
{{- if eq $mode "generate" -}}
{{- include "asm-cni.generatedTLS" . -}}
{{- index .Values._generatedTLS "ca.crt" -}}
{{- else if eq $mode "existingSecret" -}}
{{- if .Values.certificates.existingSecret.caBundle -}}
{{- .Values.certificates.existingSecret.caBundle -}}
{{- else -}}
{{- $s := lookup "v1" "Secret" .Release.Namespace (include "asm-cni.tlsSecretName" .) -}}
{{- if not (and $s $s.data (hasKey $s.data "ca.crt")) -}}
{{- fail (printf "certificates.existingSecret: Secret %s/%s with a ca.crt was not found; set certificates.existingSecret.caBundle (needed for helm template)" .Release.Namespace (include "asm-cni.tlsSecretName" .)) -}}
{{- end -}}
{{- index $s.data "ca.crt" -}}
{{- end -}}
{{- end -}}
{{- end }}

{{/* clientConfig of every webhook entry. */}}
{{- define "asm-cni.clientConfig" -}}
clientConfig:
  service:
    name: asm-cni-webhook
    namespace: {{ .Release.Namespace }}
    path: /mutate
    port: 443
  {{- with (include "asm-cni.caBundle" .) }}
  caBundle: {{ . }}
  {{- end }}
{{- end }}

{{/* The fields every webhook entry shares: versions, side effects, reinvocation, clientConfig, rules. */}}
{{- define "asm-cni.webhookCommon" -}}
admissionReviewVersions: [v1]
sideEffects: None
reinvocationPolicy: IfNeeded
matchPolicy: Equivalent
{{ include "asm-cni.clientConfig" . }}
rules:
  - operations: [CREATE]
    apiGroups: [""]
    apiVersions: [v1]
    resources: [pods]
    scope: Namespaced
{{- end }}

{{/*
The init container a pod must carry to be sent to the webhook: istio-init; with the Multus provider also
istio-validation, since a pod Istio rendered in CNI mode needs the network named too (mirrors
manifests/components/multus/webhook-patch.yaml, which says why). Returns (dict "name" "expression").
*/}}
{{- define "asm-cni.initCondition" -}}
{{- if eq .Values.config.cniProvider "multus" -}}
{{- toJson (dict "name" "has-istio-init-or-istio-validation" "expression" "has(object.spec.initContainers) && object.spec.initContainers.exists(c, c.name == 'istio-init' || c.name == 'istio-validation')") -}}
{{- else -}}
{{- toJson (dict "name" "has-istio-init" "expression" "has(object.spec.initContainers) && object.spec.initContainers.exists(c, c.name == 'istio-init')") -}}
{{- end -}}
{{- end }}

{{/* The rewrite entry's matchCondition. */}}
{{- define "asm-cni.rewriteMatchConditions" -}}
{{- $c := include "asm-cni.initCondition" . | fromJson -}}
matchConditions:
  - name: {{ $c.name }}
    expression: {{ $c.expression | quote }}
{{- end }}

{{/* The late-injection entries' matchCondition: the init container above, or not injected yet. */}}
{{- define "asm-cni.lateMatchConditions" -}}
{{- $c := include "asm-cni.initCondition" . | fromJson -}}
matchConditions:
  - name: {{ $c.name }}-or-not-injected-yet
    expression: >-
      ({{ $c.expression }})
      || !has(object.metadata.annotations)
      || !('sidecar.istio.io/status' in object.metadata.annotations)
{{- end }}

{{/* The client-CA ConfigMap's name, empty when the check is off. */}}
{{- define "asm-cni.clientCAConfigMap" -}}
{{- $c := .Values.webhook.clientCA -}}
{{- if and $c.pem $c.configMapName -}}
{{- fail "webhook.clientCA: set pem or configMapName, not both" -}}
{{- else if $c.pem -}}
asm-cni-webhook-client-ca
{{- else -}}
{{- $c.configMapName -}}
{{- end -}}
{{- end }}
