{{/*
Names and labels shared by every template.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "landlord.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name used for every object: fullnameOverride, or "<release>-<chart>", or just
"<release>" when the release name already contains the chart name. Truncated to 63
characters because some Kubernetes name fields are DNS labels.
*/}}
{{- define "landlord.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* "<chart>-<version>" for the helm.sh/chart label. */}}
{{- define "landlord.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: the stable subset used in the Deployment selector, the Service, the
PodDisruptionBudget, the NetworkPolicy and topology spread constraints. Never change
them in an upgrade: a Deployment's selector is immutable.
*/}}
{{- define "landlord.selectorLabels" -}}
{{- dict "app.kubernetes.io/name" (include "landlord.name" .) "app.kubernetes.io/instance" .Release.Name | toYaml }}
{{- end }}

{{/*
Labels on every object: commonLabels, then the chart's standard labels (which win; the
schema refuses commonLabels that would override them).
*/}}
{{- define "landlord.labels" -}}
{{- $labels := deepCopy (.Values.commonLabels | default dict) }}
{{- $_ := set $labels "helm.sh/chart" (include "landlord.chart" .) }}
{{- $_ := set $labels "app.kubernetes.io/version" (.Values.image.tag | default .Chart.AppVersion | toString | trunc 63 | trimSuffix "-") }}
{{- $_ := set $labels "app.kubernetes.io/managed-by" .Release.Service }}
{{- $_ := set $labels "app.kubernetes.io/part-of" "landlord" }}
{{- $_ := set $labels "app.kubernetes.io/component" "operator" }}
{{- $labels = merge (include "landlord.selectorLabels" . | fromYaml) $labels }}
{{- toYaml $labels }}
{{- end }}

{{/* Labels on the operator pods: the object labels plus podLabels. */}}
{{- define "landlord.podLabels" -}}
{{- $labels := include "landlord.labels" . | fromYaml }}
{{- $labels = merge $labels (deepCopy (.Values.podLabels | default dict)) }}
{{- toYaml $labels }}
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "landlord.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "landlord.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference: repository:tag, with @digest when a digest is set. */}}
{{- define "landlord.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion | toString }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* Whether a PodDisruptionBudget is rendered. */}}
{{- define "landlord.pdbEnabled" -}}
{{- if and .Values.podDisruptionBudget.enabled (or (gt (int .Values.replicaCount) 1) .Values.podDisruptionBudget.force) }}true{{ end }}
{{- end }}
