{{/* Image of a component: an image with a "/" is used as is, else <global.hub>/<image>:<tag>. */}}
{{- define "ambit.image" -}}
{{- $root := .root -}}
{{- if contains "/" .image -}}
{{ .image }}
{{- else -}}
{{ $root.Values.global.hub }}/{{ .image }}:{{ $root.Values.global.tag | default $root.Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* Labels on every object (Kubernetes' recommended labels). */}}
{{- define "ambit.labels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: ambit
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* imagePullSecrets of a ServiceAccount or pod spec, indented by .indent; nothing when there are none. */}}
{{- define "ambit.imagePullSecrets" -}}
{{- with .root.Values.global.imagePullSecrets }}
{{- $list := list }}
{{- range . }}{{ $list = append $list (dict "name" .) }}{{ end }}
{{- dict "imagePullSecrets" $list | toYaml | trim | nindent $.indent }}
{{- end }}
{{- end -}}

{{/* The control plane's 15012 as ztunnel dials it. */}}
{{- define "ambit.istiodAddress" -}}
istiod.{{ .Release.Namespace }}.svc:15012
{{- end -}}

{{/* Selectors as the agent and the plugin take them (YAML/JSON). */}}
{{- define "ambit.enablementSelectors" -}}
{{ toJson .Values.ambient.enablementSelectors }}
{{- end -}}

{{- define "ambit.excludeNamespaces" -}}
{{ join "," .Values.cni.excludeNamespaces }}
{{- end -}}
