{{- define "controller.name" -}}vm-import-adoption-controller{{- end -}}

{{- define "controller.labels" -}}
app.kubernetes.io/name: {{ include "controller.name" . }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/part-of: cozystack
{{- end -}}

{{- define "controller.selectorLabels" -}}
app.kubernetes.io/name: {{ include "controller.name" . }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end -}}

{{- define "console.selectorLabels" -}}
app.kubernetes.io/name: vm-import-console
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end -}}

{{- define "console.labels" -}}
{{ include "console.selectorLabels" . }}
app.kubernetes.io/part-of: cozystack
{{- end -}}
