{{/* Names, labels and small derived values shared by every template. */}}

{{- define "remediator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: "<release>" when it already contains the chart name, else "<release>-<chart>". */}}
{{- define "remediator.fullname" -}}
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

{{- define "remediator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "remediator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "remediator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "remediator.labels" -}}
helm.sh/chart: {{ include "remediator.chart" . }}
{{ include "remediator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: remediator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "remediator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "remediator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "remediator.intakeSecretName" -}}
{{- default (printf "%s-intake-token" (include "remediator.fullname" .)) .Values.intake.tokenSecret.name }}
{{- end }}

{{- define "remediator.approverRoleName" -}}
{{- printf "%s-approver" (include "remediator.fullname" .) }}
{{- end }}

{{/* Leader election is forced on with more than one replica: two leaders would both execute. */}}
{{- define "remediator.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) }}true{{ else }}false{{ end }}
{{- end }}

{{- define "remediator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The controller's rules: a ClusterRole, or a Role per watched namespace (rbac.yaml). */}}
{{- define "remediator.controllerRules" -}}
# Informers: list and watch both kinds.
- apiGroups: [remediator.dev]
  resources: [alertpolicies, remediationrequests]
  verbs: [get, list, watch]
# The controller writes only status (a GitOps re-apply never sees it change the spec).
- apiGroups: [remediator.dev]
  resources: [alertpolicies/status, remediationrequests/status]
  verbs: [update, patch]
# Requests: the execution finalizer (metadata only, never the spec) and retention.
- apiGroups: [remediator.dev]
  resources: [remediationrequests]
  verbs: [patch, delete]
{{- if .Values.intake.enabled }}
# The intake turns alerts into requests, and cancels them when the alert resolves.
- apiGroups: [remediator.dev]
  resources: [remediationrequests]
  verbs: [create, patch]
{{- end }}
# An Event for every transition, on the object, in its own namespace: events.k8s.io/v1
# (a repeat patches the first one's series), core/v1 as the fallback.
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}
