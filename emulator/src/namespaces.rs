//! Namespace lifecycle: the `kubernetes` finalizer, the Terminating phase, deletion of
//! everything inside, and the namespace's removal once it is empty.
//!
//! <https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/>,
//! <https://kubernetes.io/docs/tasks/administer-cluster/namespaces/#deleting-a-namespace>.

use serde_json::json;

use crate::cluster::{Cluster, Propagation, WriteOptions, namespaces_gr};
use crate::meta;

/// The namespaces every cluster starts with.
const INITIAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// The namespaces the NamespaceLifecycle admission plugin refuses to delete (403 "this
/// namespace may not be deleted"; `kube-node-lease` is not among them), see
/// k8s.io/apiserver/pkg/admission/plugin/namespace/lifecycle/admission.go.
const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

pub fn is_immortal(name: &str) -> bool {
    IMMORTAL_NAMESPACES.contains(&name)
}

impl Cluster {
    pub(crate) fn bootstrap_namespaces(&mut self) {
        for ns in INITIAL_NAMESPACES {
            let Some(rt) = self.resolve("", "v1", "namespaces") else {
                return;
            };
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            if let Err(e) = self.create(&rt, "v1", "", obj, &WriteOptions::default()) {
                tracing::error!(namespace = ns, error = %e, "bootstrap namespace");
            }
        }
    }

    /// The service account controller's part: every new namespace gets `default`.
    fn ensure_default_service_account(&mut self, ns: &str) {
        let Some(rt) = self.resolve("", "v1", "serviceaccounts") else {
            return;
        };
        if self.store.get(&rt.storage, ns, "default").is_some() {
            return;
        }
        let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}});
        if let Err(e) = self.create(&rt, "v1", ns, sa, &WriteOptions::default()) {
            tracing::debug!(namespace = ns, error = %e, "default service account");
        }
    }

    pub(crate) fn namespace_lifecycle(&mut self, name: &str) {
        let Some(ns) = self
            .store
            .get(&namespaces_gr(), "", name)
            .map(|o| o.as_ref().clone())
        else {
            return;
        };
        if !meta::is_deleting(&ns) {
            self.ensure_default_service_account(name);
            return;
        }
        for (gr, (ons, oname)) in self.store.in_namespace(name) {
            let Some(rt) = self.registry.get(&gr).cloned() else {
                continue;
            };
            let deleting = self
                .store
                .get(&gr, &ons, &oname)
                .is_some_and(|o| meta::is_deleting(o));
            if !deleting {
                let version = rt.preferred_version().to_string();
                self.delete_object(
                    &rt,
                    &version,
                    &ons,
                    &oname,
                    Some(Propagation::Background),
                    false,
                );
            }
        }
        let remaining = self.store.in_namespace(name);
        let mut updated = ns.clone();
        if remaining.is_empty() {
            let mut f = meta::string_list(ns.pointer("/spec/finalizers"));
            f.retain(|x| x != "kubernetes");
            updated["spec"]["finalizers"] = json!(f);
            meta::set_condition(
                &mut updated,
                "NamespaceContentRemaining",
                "False",
                "ContentRemoved",
                "All content successfully removed",
            );
            meta::set_condition(
                &mut updated,
                "NamespaceFinalizersRemaining",
                "False",
                "ContentHasNoFinalizers",
                "All content-preserving finalizers finished",
            );
        } else {
            let mut kinds: Vec<String> = remaining.iter().map(|(gr, _)| gr.to_string()).collect();
            kinds.dedup();
            let counts: Vec<String> = kinds
                .iter()
                .map(|k| {
                    format!(
                        "{k} has {} resource instances",
                        remaining
                            .iter()
                            .filter(|(gr, _)| &gr.to_string() == k)
                            .count()
                    )
                })
                .collect();
            meta::set_condition(
                &mut updated,
                "NamespaceContentRemaining",
                "True",
                "SomeResourcesRemain",
                &format!("Some resources are remaining: {}", counts.join(", ")),
            );
            let mut finalizers: Vec<String> = remaining
                .iter()
                .filter_map(|(gr, (n, o))| self.store.get(gr, n, o))
                .flat_map(|o| meta::finalizers(o))
                .collect();
            finalizers.sort();
            finalizers.dedup();
            if finalizers.is_empty() {
                meta::set_condition(
                    &mut updated,
                    "NamespaceFinalizersRemaining",
                    "False",
                    "ContentHasNoFinalizers",
                    "All content-preserving finalizers finished",
                );
            } else {
                meta::set_condition(
                    &mut updated,
                    "NamespaceFinalizersRemaining",
                    "True",
                    "SomeFinalizersRemain",
                    &format!(
                        "Some content in the namespace has finalizers remaining: {}",
                        finalizers.join(", ")
                    ),
                );
            }
        }
        if updated != ns {
            self.commit_stored(&namespaces_gr(), updated);
        }
    }
}
