{{/* Name of the chart, overridable with nameOverride. */}}
{{- define "tern-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, with the chart name appended unless it already holds it. */}}
{{- define "tern-operator.fullname" -}}
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

{{- define "tern-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: frozen (Deployment selectors are immutable). */}}
{{- define "tern-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tern-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tern-operator.labels" -}}
helm.sh/chart: {{ include "tern-operator.chart" . }}
{{ include "tern-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: tern
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "tern-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tern-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tern-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The rules the operator needs in every namespace it manages, and nothing more (no wildcards).
- Its own resources: read and watch them, patch them (finalizers), write their status;
  NatsClusters also created and deleted (the members a SuperCluster makes from templates).
  natsclusters/finalizers etc.: `update`, needed to set blockOwnerDeletion on owner references
  where the OwnerReferencesPermissionEnforcement admission plugin runs (OpenShift).
- What a resource renders into (ConfigMap, Services, StatefulSet, PodDisruptionBudget,
  ServiceAccount): server-side apply (create + patch), watch, and delete for orphan cleanup.
- Pods: read, watch, and evict one at a time for a health-gated rolling restart (the
  Eviction API, so a PodDisruptionBudget is honoured).
- Secrets (TLS, auth, leaf-node credentials): read only.
- Events for every disruptive action: create, and patch to count repeats (both API groups:
  kube-runtime's recorder writes events.k8s.io/v1).
Leases are not here: see the leader-election Role in the release namespace.
*/}}
{{- define "tern-operator.rules" -}}
- apiGroups: ["tern.dev"]
  resources: ["superclusters", "leafnodes"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["tern.dev"]
  resources: ["natsclusters"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["tern.dev"]
  resources: ["natsclusters/status", "superclusters/status", "leafnodes/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["tern.dev"]
  resources: ["natsclusters/finalizers", "superclusters/finalizers", "leafnodes/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["configmaps", "services", "serviceaccounts"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["pods/eviction"]
  verbs: ["create"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
