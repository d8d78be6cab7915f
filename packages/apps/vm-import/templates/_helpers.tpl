{{/*
Names of everything the chart renders. All objects live in the release namespace.
The Plan name also becomes the `cozystack.io/original-plan` label value on adopted VMs,
so it must stay a valid label value (at most 63 characters).
*/}}
{{- define "vm-import.name" -}}
{{- if gt (len .Release.Name) 63 -}}
{{- fail (printf "release name %q is longer than 63 characters; the Plan name must be a valid label value" .Release.Name) -}}
{{- end -}}
{{- .Release.Name -}}
{{- end -}}

{{- define "vm-import.sourceProvider" -}}
{{- .Values.source.existingProvider | default (printf "%s-vsphere" (include "vm-import.name" .) | trunc 63 | trimSuffix "-") -}}
{{- end -}}

{{- define "vm-import.destinationProvider" -}}
{{- .Values.destination.existingProvider | default (printf "%s-host" (include "vm-import.name" .) | trunc 63 | trimSuffix "-") -}}
{{- end -}}

{{- define "vm-import.credentialsSecret" -}}
{{- .Values.source.credentials.existingSecret | default (printf "%s-vsphere-credentials" (include "vm-import.name" .) | trunc 253) -}}
{{- end -}}

{{/*
Labels of every rendered object. Never Forklift's own `plan`, `plan-name` or
`plan-namespace` keys: Forklift 2.12+ deletes every object labelled with the latter two
when the Plan is deleted.
*/}}
{{- define "vm-import.labels" -}}
app.kubernetes.io/name: vm-import
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/part-of: cozystack
{{- end -}}

{{/* Kept on uninstall: the Providers and the credentials Secret. Nothing else. */}}
{{- define "vm-import.keep" -}}
helm.sh/resource-policy: keep
{{- end -}}

{{/*
The VDDK init image is platform configuration, never a tenant value: it comes from the
cluster-wide `_cluster` values that Cozystack injects into every application.
*/}}
{{- define "vm-import.vddkImage" -}}
{{- index (.Values._cluster | default dict) "vddk-image" | default "" -}}
{{- end -}}
