{{/*
Object names. The CSIDriver and the MutatingWebhookConfiguration are cluster singletons, so one
release per cluster; names are fixed so that the rendered manifests, the docs and the code's
generators (hack/webhookconfig, hack/csidriver, hack/syncrbac) agree.
*/}}
{{- define "ssi.webhookName" -}}ssi-webhook{{- end -}}
{{- define "ssi.nodeName" -}}ssi-node{{- end -}}
{{- define "ssi.syncName" -}}ssi-sync{{- end -}}
{{- define "ssi.mwcName" -}}secrets-store-injector{{- end -}}
{{- define "ssi.driverName" -}}secrets-store.csi.k8s.io{{- end -}}
{{- define "ssi.tlsSecretName" -}}{{ .Values.webhook.tls.secretName | default "ssi-webhook-tls" }}{{- end -}}

{{/* Labels on every object; component labels are added per object. */}}
{{- define "ssi.labels" -}}
app.kubernetes.io/name: secrets-store-injector
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Selector labels of a component: (dict "ctx" $ "component" "webhook"). */}}
{{- define "ssi.selector" -}}
app.kubernetes.io/name: secrets-store-injector
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ssi.componentLabels" -}}
{{ include "ssi.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ssi.agentImage" -}}
{{ .Values.agent.image.repository }}:{{ .Values.agent.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- define "ssi.webhookImage" -}}
{{ .Values.webhook.image.repository }}:{{ .Values.webhook.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* --log-level and --log-format of every component (the webhook, the
sync controller, the node shim and, through --agent-log-*, the agents):
info or debug from the upstream logVerbosity, json or text from the
upstream logFormatJSON. */}}
{{- define "ssi.logLevel" -}}
{{- if ge (int .Values.logVerbosity) 4 }}debug{{ else }}info{{ end -}}
{{- end -}}
{{- define "ssi.logFormat" -}}
{{- if .Values.logFormatJSON }}json{{ else }}text{{ end -}}
{{- end -}}

{{/* --native-sidecars of ssi-webhook serve: auto, true or false. */}}
{{- define "ssi.nativeSidecars" -}}
{{- $m := dict "auto" "auto" "on" "true" "off" "false" -}}
{{- index $m .Values.nativeSidecars -}}
{{- end -}}

{{/* DNS names of the webhook Service, for the serving certificate. */}}
{{- define "ssi.webhookDNSNames" -}}
{{- $svc := include "ssi.webhookName" . -}}
{{- $ns := .Release.Namespace -}}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson -}}
{{- end -}}

{{/*
Serving certificate for tls.mode helm, as YAML {ca, cert, key} of base64 PEM. The Secret of a
previous install or upgrade is reused (lookup), so upgrades keep the CA the API server trusts;
otherwise a new CA and certificate are generated. Include it ONCE per render: each call without a
previous Secret generates a new CA.
*/}}
{{- define "ssi.helmCerts" -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "ssi.tlsSecretName" .) -}}
{{- $data := dict -}}
{{- if $existing -}}{{- $data = $existing.data | default dict -}}{{- end -}}
{{- if and (index $data "ca.crt") (index $data "tls.crt") (index $data "tls.key") -}}
ca: {{ index $data "ca.crt" }}
cert: {{ index $data "tls.crt" }}
key: {{ index $data "tls.key" }}
{{- else -}}
{{- $days := int .Values.webhook.tls.validityDays -}}
{{- $ca := genCA "secrets-store-injector webhook CA" $days -}}
{{- $dns := include "ssi.webhookDNSNames" . | fromJsonArray -}}
{{- $cert := genSignedCert (index $dns 2) nil $dns $days $ca -}}
ca: {{ $ca.Cert | b64enc }}
cert: {{ $cert.Cert | b64enc }}
key: {{ $cert.Key | b64enc }}
{{- end -}}
{{- end -}}

{{/* Restricted-profile container security context (every container but the node shim's). */}}
{{- define "ssi.restrictedContainer" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
"true" when the cluster is at least the given version: (dict "ctx" $ "version" "1.35.0"). A
development build of kube-apiserver (version 0.x, or not semver such as v0.0.0-master+$Format:%H$)
counts as the newest.
*/}}
{{- define "ssi.kubeAtLeast" -}}
{{- $ver := toString .ctx.Capabilities.KubeVersion.Version -}}
{{- $semver := regexMatch "^v?[0-9]+[.][0-9]+[.][0-9]+(-[0-9A-Za-z.-]+)?([+][0-9A-Za-z.-]+)?$" $ver -}}
{{- if or (not $semver) (hasPrefix "v0." $ver) (hasPrefix "0." $ver) -}}
true
{{- else if semverCompare (printf ">=%s-0" .version) $ver -}}
true
{{- end -}}
{{- end -}}

{{/* Refuse clusters older than 1.30. */}}
{{- define "ssi.checkKubeVersion" -}}
{{- $v := .Capabilities.KubeVersion -}}
{{- if not (include "ssi.kubeAtLeast" (dict "ctx" . "version" "1.30.0")) -}}
{{- fail (printf "secrets-store-injector needs Kubernetes 1.30 or later (matchConditions, admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy); this cluster is %s" $v.Version) -}}
{{- end -}}
{{- end -}}

{{/*
A byte count value (maxObjectBytes, maxVolumeBytes) as a flag value: a quantity string as given
(1Mi), a number as an integer (YAML numbers arrive as floats).
*/}}
{{- define "ssi.bytes" -}}
{{- if kindIs "string" . }}{{ . }}{{ else }}{{ int64 . }}{{ end }}
{{- end }}
