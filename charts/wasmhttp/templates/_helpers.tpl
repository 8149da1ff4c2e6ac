{{- define "wasmhttp.name" -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "wasmhttp.labels" -}}
app.kubernetes.io/name: wasmhttp
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "wasmhttp.installerArgs" -}}
- --host-root
- /host
- --restart
- {{ .Values.installer.restart }}
{{- with .Values.installer.flavour }}
- --flavour
- {{ . }}
{{- end }}
{{- end -}}
