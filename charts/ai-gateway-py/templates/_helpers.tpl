{{/* The name of every object: fullnameOverride, or ai-gateway-controller (the name Envoy Gateway's values use). */}}
{{- define "aigw.fullname" -}}
{{- .Values.fullnameOverride | default "ai-gateway-controller" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "aigw.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aigw.fullname" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "aigw.labels" -}}
{{ include "aigw.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "aigw.serviceAccountName" -}}
{{- .Values.serviceAccount.name | default (include "aigw.fullname" .) -}}
{{- end -}}

{{- define "aigw.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "aigw.leaderElectionNamespace" -}}
{{- .Values.controller.leaderElectionNamespace | default .Release.Namespace -}}
{{- end -}}

{{/* aigw-controller's arguments: one per value under controller (values.yaml names the flag of each). */}}
{{- define "aigw.args" -}}
{{- $c := .Values.controller -}}
{{- if $c.enableInferenceExtension }}
- --enable-inference-extension
{{- end }}
- {{ printf "--extension-ref-name=%s" $c.extensionRefName | quote }}
- {{ printf "--cluster-domain=%s" $c.clusterDomain | quote }}
{{- with $c.dnsServer }}
- {{ printf "--dns-server=%s" . | quote }}
{{- end }}
- {{ printf "--extproc-image=%s" ($c.extprocImage | default (include "aigw.image" .)) | quote }}
- {{ printf "--extproc-log-level=%s" $c.extprocLogLevel | quote }}
{{- with $c.extprocAddress }}
- {{ printf "--extproc-address=%s" . | quote }}
{{- end }}
{{- with $c.extprocAuthDir }}
- {{ printf "--extproc-auth-dir=%s" . | quote }}
{{- end }}
- {{ printf "--max-body-bytes=%s" $c.maxBodyBytes | quote }}
{{- if $c.extprocMtls }}
- --extproc-mtls
{{- else }}
- --no-extproc-mtls
{{- end }}
- {{ printf "--extension-server-address=0.0.0.0:%d" (int $c.extensionServerPort) | quote }}
{{- if $c.leaderElect }}
- --leader-elect
{{- end }}
{{- with $c.leaderElectionNamespace }}
- {{ printf "--leader-election-namespace=%s" . | quote }}
{{- end }}
{{- if eq (int $c.metricsPort) 0 }}
- --metrics-bind-address=0
{{- else }}
- {{ printf "--metrics-bind-address=:%d" (int $c.metricsPort) | quote }}
{{- end }}
- {{ printf "--health-probe-bind-address=:%d" (int $c.healthProbePort) | quote }}
{{- with $c.watchNamespace }}
- {{ printf "--watch-namespace=%s" . | quote }}
{{- end }}
{{- with $c.awsStsEndpoint }}
- {{ printf "--aws-sts-endpoint=%s" . | quote }}
{{- end }}
- {{ printf "--azure-authority-host=%s" $c.azureAuthorityHost | quote }}
- {{ printf "--concurrent-reconciles=%d" (int $c.concurrentReconciles) | quote }}
- {{ printf "--log-level=%s" $c.logLevel | quote }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}
