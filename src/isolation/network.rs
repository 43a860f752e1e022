//! The NetworkPolicies of each tenant namespace: one concern per policy, stable names.
//!
//! NetworkPolicies are additive allow-lists: once `landlord-default-deny` selects every pod
//! for ingress and egress, each further policy opens exactly one kind of traffic, and the
//! union is what the tenant may do.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::ValidatedTenant;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::labels::{
    DATABASE_SERVER_LABEL, MANAGED_BY, MANAGED_BY_LABEL, NAMESPACE_NAME_LABEL,
    RULE_DESCRIPTIONS_ANNOTATION, object_meta,
};
use crate::api::{DatabaseServer, NetworkPeer, NetworkPort, NetworkRule, Protocol};

/// Denies all ingress and egress of every pod in the namespace.
pub const DEFAULT_DENY: &str = "landlord-default-deny";
/// Allows traffic to and from every namespace of the same tenant.
pub const ALLOW_SAME_TENANT: &str = "landlord-allow-same-tenant";
/// Allows DNS (UDP and TCP 53) to the cluster DNS pods.
pub const ALLOW_DNS: &str = "landlord-allow-dns";
/// Allows egress to the tenant's DatabaseServer.
pub const ALLOW_DATABASE: &str = "landlord-allow-database";
/// Allows the ingress listed in `spec.isolation.network.ingress`.
pub const ALLOW_INGRESS: &str = "landlord-allow-ingress";
/// Allows the egress listed in `spec.isolation.network.egress`.
pub const ALLOW_EGRESS: &str = "landlord-allow-egress";

const INGRESS: &str = "Ingress";
const EGRESS: &str = "Egress";

/// A selector matching exactly these labels; `{}` (everything) when empty.
fn selector(labels: &BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: (!labels.is_empty()).then(|| labels.clone()),
        match_expressions: None,
    }
}

fn label(key: &str, value: &str) -> LabelSelector {
    selector(&BTreeMap::from([(key.to_owned(), value.to_owned())]))
}

/// The tenant's own namespaces, by the label the API server sets to each namespace's
/// name (`kubernetes.io/metadata.name In [...]`), which nobody can set to another value.
/// Never by `landlord.dev/tenant`: anyone who can label a namespace could join.
fn tenant_namespaces(tenant: &ValidatedTenant<'_>) -> LabelSelector {
    LabelSelector {
        match_labels: None,
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: NAMESPACE_NAME_LABEL.to_owned(),
            operator: "In".to_owned(),
            values: Some(tenant.namespaces().to_vec()),
        }]),
    }
}

fn policy(
    tenant: &ValidatedTenant<'_>,
    namespace: &str,
    name: &str,
    ingress: Option<Vec<NetworkPolicyIngressRule>>,
    egress: Option<Vec<NetworkPolicyEgressRule>>,
) -> NetworkPolicy {
    let mut policy_types = Vec::new();
    if ingress.is_some() {
        policy_types.push(INGRESS.to_owned());
    }
    if egress.is_some() {
        policy_types.push(EGRESS.to_owned());
    }
    NetworkPolicy {
        metadata: object_meta(tenant, Some(namespace), name),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(policy_types),
            ingress: ingress.filter(|r| !r.is_empty()),
            egress: egress.filter(|r| !r.is_empty()),
        }),
    }
}

fn protocol(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
    }
}

fn port(protocol_name: &str, number: i32, end_port: Option<i32>) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol_name.to_owned()),
        port: Some(IntOrString::Int(number)),
        end_port,
    }
}

fn ports(spec: &[NetworkPort]) -> Option<Vec<NetworkPolicyPort>> {
    (!spec.is_empty()).then(|| {
        spec.iter()
            .map(|p| port(protocol(p.protocol), p.port, p.end_port))
            .collect()
    })
}

/// A spec peer as a NetworkPolicy peer. A pod selector without a namespace selector means
/// "in the tenant's own namespaces" (as `spec.isolation.network` documents), not only the
/// policy's namespace, so it is paired with the tenant's namespaces by name.
fn peer(tenant: &ValidatedTenant<'_>, spec: &NetworkPeer) -> NetworkPolicyPeer {
    if let Some(block) = &spec.ip_block {
        return NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: block.cidr.clone(),
                except: (!block.except.is_empty()).then(|| block.except.clone()),
            }),
            ..NetworkPolicyPeer::default()
        };
    }
    let namespace_selector = match (&spec.namespace_selector, &spec.pod_selector) {
        (Some(labels), _) => Some(selector(labels)),
        (None, Some(_)) => Some(tenant_namespaces(tenant)),
        (None, None) => None,
    };
    NetworkPolicyPeer {
        ip_block: None,
        namespace_selector,
        pod_selector: spec.pod_selector.as_ref().map(selector),
    }
}

fn peers(tenant: &ValidatedTenant<'_>, rule: &NetworkRule) -> Option<Vec<NetworkPolicyPeer>> {
    (!rule.peers.is_empty()).then(|| rule.peers.iter().map(|p| peer(tenant, p)).collect())
}

fn same_tenant_peer(tenant: &ValidatedTenant<'_>) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(tenant_namespaces(tenant)),
        ..NetworkPolicyPeer::default()
    }
}

fn described(mut policy: NetworkPolicy, rules: &[NetworkRule]) -> NetworkPolicy {
    let descriptions = serde_json::Value::Array(
        rules
            .iter()
            .map(|r| serde_json::Value::String(r.description.clone().unwrap_or_default()))
            .collect(),
    );
    policy.metadata.annotations.get_or_insert_default().insert(
        RULE_DESCRIPTIONS_ANNOTATION.to_owned(),
        descriptions.to_string(),
    );
    policy
}

/// The tenant's NetworkPolicies in `namespace`, in this order:
///
/// - `landlord-default-deny`: every pod, Ingress and Egress, no rules;
/// - `landlord-allow-same-tenant`: ingress from and egress to every namespace of the
///   tenant, selected by name (`kubernetes.io/metadata.name In [...]`);
/// - `landlord-allow-dns`: egress on UDP and TCP 53 to the pods of
///   `spec.isolation.network.dns`;
/// - `landlord-allow-database`, when the tenant has a database and its DatabaseServer
///   has `spec.network`: egress on the server's TCP port to its CIDRs, and to the pods
///   matching its pod selector in its namespace (a pod selector without a namespace cannot
///   be placed and is left out);
/// - `landlord-allow-ingress` / `landlord-allow-egress`, when the spec lists rules: one
///   rule per entry, with the descriptions in the `landlord.dev/rule-descriptions`
///   annotation.
pub fn network_policies(tenant: &ValidatedTenant<'_>, namespace: &str) -> Vec<NetworkPolicy> {
    let network = &tenant.tenant().spec.isolation.network;
    let mut policies = vec![
        policy(tenant, namespace, DEFAULT_DENY, Some(vec![]), Some(vec![])),
        policy(
            tenant,
            namespace,
            ALLOW_SAME_TENANT,
            Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![same_tenant_peer(tenant)]),
                ports: None,
            }]),
            Some(vec![NetworkPolicyEgressRule {
                to: Some(vec![same_tenant_peer(tenant)]),
                ports: None,
            }]),
        ),
        policy(
            tenant,
            namespace,
            ALLOW_DNS,
            None,
            Some(vec![NetworkPolicyEgressRule {
                to: Some(vec![NetworkPolicyPeer {
                    ip_block: None,
                    namespace_selector: Some(selector(&network.dns.namespace_selector)),
                    pod_selector: Some(selector(&network.dns.pod_selector)),
                }]),
                ports: Some(vec![port("UDP", 53, None), port("TCP", 53, None)]),
            }]),
        ),
    ];
    if let Some(db) = database_rule(tenant) {
        policies.push(policy(
            tenant,
            namespace,
            ALLOW_DATABASE,
            None,
            Some(vec![db]),
        ));
    }
    if !network.ingress.is_empty() {
        let rules = network
            .ingress
            .iter()
            .map(|r| NetworkPolicyIngressRule {
                from: peers(tenant, r),
                ports: ports(&r.ports),
            })
            .collect();
        policies.push(described(
            policy(tenant, namespace, ALLOW_INGRESS, Some(rules), None),
            &network.ingress,
        ));
    }
    if !network.egress.is_empty() {
        let rules = network
            .egress
            .iter()
            .map(|r| NetworkPolicyEgressRule {
                to: peers(tenant, r),
                ports: ports(&r.ports),
            })
            .collect();
        policies.push(described(
            policy(tenant, namespace, ALLOW_EGRESS, None, Some(rules)),
            &network.egress,
        ));
    }
    policies
}

/// The egress rule to the tenant's database server, if its location is known.
fn database_rule(tenant: &ValidatedTenant<'_>) -> Option<NetworkPolicyEgressRule> {
    tenant.tenant().spec.database.as_ref()?;
    database_egress_rule(tenant.database_server()?)
}

/// Egress to a DatabaseServer on its TCP port, to its CIDRs and to its pods in its
/// namespace, as `spec.network` gives them; `None` when the server's location is not
/// given (a NetworkPolicy cannot select a DNS name).
pub fn database_egress_rule(server: &DatabaseServer) -> Option<NetworkPolicyEgressRule> {
    let network = server.spec.network.as_ref()?;
    let mut to: Vec<NetworkPolicyPeer> = network
        .cidrs
        .iter()
        .map(|cidr| NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: cidr.clone(),
                except: None,
            }),
            ..NetworkPolicyPeer::default()
        })
        .collect();
    if let Some(ns) = &network.namespace {
        to.push(NetworkPolicyPeer {
            ip_block: None,
            namespace_selector: Some(label(NAMESPACE_NAME_LABEL, ns)),
            pod_selector: Some(selector(&network.pod_selector)),
        });
    }
    (!to.is_empty()).then(|| NetworkPolicyEgressRule {
        to: Some(to),
        ports: Some(vec![port("TCP", server.spec.port, None)]),
    })
}

/// Name of the operator's egress NetworkPolicy to one DatabaseServer.
pub fn operator_database_policy_name(server: &str) -> String {
    const PREFIX: &str = "landlord-database-";
    // NetworkPolicy names are DNS subdomains of at most 253 characters, as are server names.
    let mut name = format!("{PREFIX}{server}");
    name.truncate(253);
    name.trim_end_matches(['-', '.']).to_owned()
}

/// The operator's own egress NetworkPolicy to a DatabaseServer, in the operator's
/// namespace, selecting the operator's pods by `pod_labels`: the chart's NetworkPolicy
/// denies the operator any egress it does not list, and database servers come and go with
/// their DatabaseServer objects. Owned by the DatabaseServer, so it goes with it. `None`
/// when the server's location is not given.
pub fn operator_database_policy(
    server: &DatabaseServer,
    namespace: &str,
    pod_labels: &BTreeMap<String, String>,
) -> Option<NetworkPolicy> {
    use kube::Resource;

    let rule = database_egress_rule(server)?;
    let server_name = server.meta().name.clone().unwrap_or_default();
    let mut labels = BTreeMap::from([(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned())]);
    labels.insert(DATABASE_SERVER_LABEL.to_owned(), server_name.clone());
    Some(NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(operator_database_policy_name(&server_name)),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels),
            owner_references: server.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(pod_labels)),
            policy_types: Some(vec!["Egress".to_owned()]),
            ingress: None,
            egress: Some(vec![rule]),
        }),
    })
}
