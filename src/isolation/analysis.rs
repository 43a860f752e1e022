//! The isolation proof: can any pod of one tenant open a connection to any pod of another?
//!
//! [`analyze`] reads every NetworkPolicy in every tenant namespace — Landlord's and any a
//! tenant admin created — with the namespaces' labels and which tenant each belongs to,
//! and answers per tenant. It is pure and knows nothing about the pods that actually run.
//!
//! # The model
//!
//! A connection from pod *P* (namespace *A*, tenant *a*) to pod *Q* (namespace *B*, tenant
//! *b ≠ a*) on protocol/port *x* is possible when **both** hold, as Kubernetes specifies:
//!
//! - *egress of P*: no NetworkPolicy in *A* whose effective `policyTypes` contain `Egress`
//!   selects *P*, or one that does has an egress rule whose peers match *Q* and whose
//!   ports contain *x*;
//! - *ingress of Q*: the same with `Ingress`, ingress rules and *P*.
//!
//! Semantics followed exactly: effective `policyTypes` are the listed ones, or when none
//! are listed `Ingress` plus `Egress` if the policy has at least one egress rule; a rule
//! list that is absent or empty allows nothing; a rule without `from`/`to` (or with an
//! empty one) matches every peer, and without `ports` every port; separate peers are OR,
//! a `namespaceSelector` and `podSelector` in one peer are AND; a peer with only a
//! `podSelector` means the policy's own namespace; `namespaceSelector: {}` and an empty or
//! absent `podSelector` select everything; `matchLabels` and `matchExpressions` (`In`,
//! `NotIn`, `Exists`, `DoesNotExist`) are ANDed, and `NotIn` matches a missing key; a
//! numeric port with `endPort` is the range, `protocol` defaults to TCP.
//!
//! What is not known is made conservative, so that "isolated" is a proof and "not
//! isolated" at worst a false alarm:
//!
//! - **Pods and their labels are unknown.** Tenants choose their own pod labels, so *P*
//!   and *Q* range over every possible label set: a path exists when *some* label set for
//!   *P* and *some* for *Q* satisfy all the selectors involved at once — the selecting
//!   policy's `podSelector` (or, for an unselected pod, failing every selector of that
//!   direction) on one side and the peer's `podSelector` on the other. This is decided
//!   exactly for `matchLabels` and the four operators (contradictions such as `a In [x]`
//!   with `a NotIn [x]`, or `Exists` with `DoesNotExist`, rule a path out). An operator
//!   Kubernetes would reject is treated as matching anything.
//! - **Namespace labels are known.** Tenant admins (ClusterRole `admin`) cannot edit their
//!   Namespace, so namespace selectors are evaluated on the labels given, to which
//!   `kubernetes.io/metadata.name=<name>` is added as the API server always does.
//! - **Pod IPs are unknown.** Kubernetes leaves it to the network plugin whether an
//!   `ipBlock` matches pod IPs; most plugins do. With [`AnalysisConfig::pod_cidrs`] set, an
//!   `ipBlock` is a path to pods when it overlaps a pod CIDR in a range its `except` list
//!   does not remove. With no pod CIDRs configured, every `ipBlock` is assumed to possibly
//!   cover pods unless its `except` list removes all of it — so `0.0.0.0/0` on both sides
//!   is a breach, and so is a payment provider's CIDR on one side if the other side admits
//!   an `ipBlock` too. Configure the pod CIDRs to remove such false alarms.
//! - **Ports are numbers and names.** A named port (`http`) is resolved on the destination
//!   pod, whose container ports the tenant chooses: it is taken as every port of its
//!   protocol.
//!
//! Not modelled: host-network pods (Pod Security `baseline` and `restricted` forbid them),
//! traffic from nodes (always allowed by Kubernetes), and cluster-wide policy APIs beyond
//! NetworkPolicy (AdminNetworkPolicy, CNI-specific CRDs), which can only close paths
//! further.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::rc::Rc;
use std::str::FromStr;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::labels::NAMESPACE_NAME_LABEL;

/// How many partial label sets the search for a pod that no policy selects may try before
/// it gives up and assumes such a pod exists.
const SEARCH_BUDGET: usize = 100_000;

/// One namespace of one tenant, as the analyzer sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceInfo {
    /// The namespace's name.
    pub name: String,
    /// The tenant it belongs to.
    pub tenant: String,
    /// Its labels (`kubernetes.io/metadata.name` is added when missing).
    pub labels: BTreeMap<String, String>,
}

/// What the analyzer knows about the cluster beyond the policies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnalysisConfig {
    /// The cluster's pod CIDRs, e.g. `10.244.0.0/16`. Empty: unknown, and any `ipBlock`
    /// may cover pods (see the module documentation).
    pub pod_cidrs: Vec<Cidr>,
}

/// An IPv4 or IPv6 network in CIDR notation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    v6: bool,
    network: u128,
    prefix: u8,
}

/// A string that is not a CIDR.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a CIDR such as 10.244.0.0/16 or fd00::/48")]
pub struct CidrError {
    value: String,
}

impl CidrError {
    /// Stable short category.
    pub fn category(&self) -> &'static str {
        "invalid_cidr"
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || CidrError {
            value: s.to_owned(),
        };
        let (addr, prefix) = s.split_once('/').ok_or_else(err)?;
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        let prefix: u8 = prefix.parse().map_err(|_| err())?;
        let (v6, bits, value) = match addr {
            IpAddr::V4(a) => (false, 32u8, u128::from(u32::from(a))),
            IpAddr::V6(a) => (true, 128u8, u128::from(a)),
        };
        if prefix > bits {
            return Err(err());
        }
        let cidr = Cidr {
            v6,
            network: 0,
            prefix,
        };
        Ok(Cidr {
            network: value & !cidr.host_mask(),
            ..cidr
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addr: IpAddr = if self.v6 {
            IpAddr::V6(self.network.into())
        } else {
            IpAddr::V4(u32::try_from(self.network).unwrap_or(u32::MAX).into())
        };
        write!(f, "{addr}/{}", self.prefix)
    }
}

impl Cidr {
    fn bits(self) -> u8 {
        if self.v6 { 128 } else { 32 }
    }

    fn host_mask(self) -> u128 {
        let host_bits = u32::from(self.bits() - self.prefix);
        1u128.checked_shl(host_bits).map_or(u128::MAX, |v| v - 1)
    }

    fn first(self) -> u128 {
        self.network
    }

    fn last(self) -> u128 {
        self.network | self.host_mask()
    }

    /// The common part of two networks (one always contains the other, or they are
    /// disjoint).
    fn intersection(self, other: Cidr) -> Option<Cidr> {
        if self.v6 != other.v6 {
            return None;
        }
        let (wide, narrow) = if self.prefix <= other.prefix {
            (self, other)
        } else {
            (other, self)
        };
        (narrow.network & !wide.host_mask() == wide.network).then_some(narrow)
    }
}

/// Whether the union of `holes` covers all of `range`.
fn covered(range: Cidr, holes: &[Cidr]) -> bool {
    let mut spans: Vec<(u128, u128)> = holes
        .iter()
        .filter_map(|h| h.intersection(range))
        .map(|h| (h.first(), h.last()))
        .collect();
    spans.sort_unstable();
    let mut next = range.first();
    for (first, last) in spans {
        if first > next {
            return false;
        }
        match last.checked_add(1) {
            Some(after) => next = next.max(after),
            None => return true,
        }
        if next > range.last() {
            return true;
        }
    }
    next > range.last()
}

/// Whether an `ipBlock` may match the IP of some pod.
fn ip_block_covers_pods(block: &IPBlock, pod_cidrs: &[Cidr]) -> bool {
    let Ok(cidr) = block.cidr.parse::<Cidr>() else {
        return true;
    };
    let holes: Vec<Cidr> = block
        .except
        .iter()
        .flatten()
        .filter_map(|e| e.parse().ok())
        .collect();
    if pod_cidrs.is_empty() {
        return !covered(cidr, &holes);
    }
    pod_cidrs
        .iter()
        .filter_map(|pods| pods.intersection(cidr))
        .any(|part| !covered(part, &holes))
}

/// One label requirement of a selector.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Req {
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    DoesNotExist(String),
    /// An operator Kubernetes would reject: matches anything, and so does its negation.
    Unknown,
}

impl Req {
    fn negate(&self) -> Req {
        match self {
            Req::In(k, v) => Req::NotIn(k.clone(), v.clone()),
            Req::NotIn(k, v) => Req::In(k.clone(), v.clone()),
            Req::Exists(k) => Req::DoesNotExist(k.clone()),
            Req::DoesNotExist(k) => Req::Exists(k.clone()),
            Req::Unknown => Req::Unknown,
        }
    }

    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Req::In(k, v) => labels.get(k).is_some_and(|l| v.contains(l)),
            Req::NotIn(k, v) => labels.get(k).is_none_or(|l| !v.contains(l)),
            Req::Exists(k) => labels.contains_key(k),
            Req::DoesNotExist(k) => !labels.contains_key(k),
            Req::Unknown => true,
        }
    }

    fn key(&self) -> Option<&str> {
        match self {
            Req::In(k, _) | Req::NotIn(k, _) | Req::Exists(k) | Req::DoesNotExist(k) => Some(k),
            Req::Unknown => None,
        }
    }
}

/// A selector as the conjunction of its requirements; empty selects everything.
fn requirements(selector: Option<&LabelSelector>) -> Vec<Req> {
    let Some(selector) = selector else {
        return Vec::new();
    };
    let mut reqs: Vec<Req> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| Req::In(k.clone(), BTreeSet::from([v.clone()])))
        .collect();
    for e in selector.match_expressions.iter().flatten() {
        let values = || e.values.iter().flatten().cloned().collect::<BTreeSet<_>>();
        reqs.push(match e.operator.as_str() {
            "In" => Req::In(e.key.clone(), values()),
            "NotIn" => Req::NotIn(e.key.clone(), values()),
            "Exists" => Req::Exists(e.key.clone()),
            "DoesNotExist" => Req::DoesNotExist(e.key.clone()),
            _ => Req::Unknown,
        });
    }
    reqs
}

/// Whether some label set satisfies every requirement.
fn consistent(reqs: &[&Req]) -> bool {
    let keys: BTreeSet<&str> = reqs.iter().filter_map(|r| r.key()).collect();
    keys.into_iter().all(|key| {
        let mut present = false;
        let mut absent = false;
        let mut allowed: Option<BTreeSet<&String>> = None;
        let mut refused: BTreeSet<&String> = BTreeSet::new();
        for r in reqs.iter().filter(|r| r.key() == Some(key)) {
            match r {
                Req::In(_, v) => {
                    present = true;
                    allowed = Some(match allowed {
                        None => v.iter().collect(),
                        Some(a) => a.into_iter().filter(|x| v.contains(*x)).collect(),
                    });
                }
                Req::NotIn(_, v) => refused.extend(v),
                Req::Exists(_) => present = true,
                Req::DoesNotExist(_) => absent = true,
                Req::Unknown => {}
            }
        }
        if present && absent {
            return false;
        }
        allowed.is_none_or(|a| a.iter().any(|v| !refused.contains(v)))
    })
}

/// Whether some label set satisfies `base` and at least one requirement of every clause.
fn satisfiable<'r>(base: &mut Vec<&'r Req>, clauses: &'r [Vec<Req>], budget: &mut usize) -> bool {
    if !consistent(base) {
        return false;
    }
    let Some((clause, rest)) = clauses.split_first() else {
        return true;
    };
    for r in clause {
        if *budget == 0 {
            return true;
        }
        *budget -= 1;
        base.push(r);
        let found = satisfiable(base, rest, budget);
        base.pop();
        if found {
            return true;
        }
    }
    false
}

/// The ports a rule allows.
#[derive(Clone, Debug, PartialEq, Eq)]
enum PortSet {
    All,
    Only(Vec<PortRange>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct PortRange {
    protocol: String,
    first: i32,
    last: i32,
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.first, self.last) {
            (1, 65535) => write!(f, "any {} port", self.protocol),
            (a, b) if a == b => write!(f, "{} {a}", self.protocol),
            (a, b) => write!(f, "{} {a}-{b}", self.protocol),
        }
    }
}

fn port_set(ports: Option<&Vec<NetworkPolicyPort>>) -> PortSet {
    let Some(ports) = ports.filter(|p| !p.is_empty()) else {
        return PortSet::All;
    };
    PortSet::Only(
        ports
            .iter()
            .map(|p| {
                let protocol = p.protocol.clone().unwrap_or_else(|| "TCP".to_owned());
                let (first, last) = match &p.port {
                    Some(IntOrString::Int(n)) => (*n, p.end_port.unwrap_or(*n).max(*n)),
                    Some(IntOrString::String(_)) | None => (1, 65535),
                };
                PortRange {
                    protocol,
                    first,
                    last,
                }
            })
            .collect(),
    )
}

/// Some port both sets allow, described; `None` when they share none.
fn common_port(a: &PortSet, b: &PortSet) -> Option<String> {
    match (a, b) {
        (PortSet::All, PortSet::All) => Some("any port".to_owned()),
        (PortSet::All, PortSet::Only(v)) | (PortSet::Only(v), PortSet::All) => {
            v.first().map(ToString::to_string)
        }
        (PortSet::Only(x), PortSet::Only(y)) => x.iter().find_map(|p| {
            y.iter().filter(|q| q.protocol == p.protocol).find_map(|q| {
                let first = p.first.max(q.first);
                let last = p.last.min(q.last);
                (first <= last).then(|| {
                    PortRange {
                        protocol: p.protocol.clone(),
                        first,
                        last,
                    }
                    .to_string()
                })
            })
        }),
    }
}

/// A NetworkPolicy by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyRef {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl fmt::Display for PolicyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Why one side of a connection lets it through.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Opening {
    /// A rule of this NetworkPolicy allows it.
    Policy(PolicyRef),
    /// Some pods of the namespace are not isolated in this direction: no NetworkPolicy
    /// with that policy type selects them.
    NotIsolated {
        /// The namespace.
        namespace: String,
    },
}

impl Opening {
    fn describe(&self, direction: &str) -> String {
        match self {
            Opening::Policy(p) => format!("{direction} allowed by NetworkPolicy {p}"),
            Opening::NotIsolated { namespace } => format!(
                "{direction} unrestricted for some pods of {namespace} (no NetworkPolicy with policyType {direction} selects them)"
            ),
        }
    }
}

/// A possible connection from a pod of one tenant to a pod of another.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Breach {
    /// The tenant of the connecting pod.
    pub from_tenant: String,
    /// The namespace of the connecting pod.
    pub from_namespace: String,
    /// The tenant of the pod connected to.
    pub to_tenant: String,
    /// The namespace of the pod connected to.
    pub to_namespace: String,
    /// What lets the connection out of the source pod.
    pub egress: Opening,
    /// What lets the connection into the destination pod.
    pub ingress: Opening,
    /// A port (and protocol) both sides allow, e.g. `TCP 80` or `any port`.
    pub port: String,
}

impl Breach {
    /// The NetworkPolicies that open this path (one or two).
    pub fn policies(&self) -> Vec<&PolicyRef> {
        [&self.egress, &self.ingress]
            .into_iter()
            .filter_map(|o| match o {
                Opening::Policy(p) => Some(p),
                Opening::NotIsolated { .. } => None,
            })
            .collect()
    }

    /// The tenant on the other side, seen from `tenant`.
    pub fn other_tenant(&self, tenant: &str) -> &str {
        if self.from_tenant == tenant {
            &self.to_tenant
        } else {
            &self.from_tenant
        }
    }
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pods in {} (tenant {}) can connect to pods in {} (tenant {}) on {}: {}; {}",
            self.from_namespace,
            self.from_tenant,
            self.to_namespace,
            self.to_tenant,
            self.port,
            self.egress.describe("Egress"),
            self.ingress.describe("Ingress"),
        )
    }
}

/// The verdict for one tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantIsolation {
    /// The tenant.
    pub tenant: String,
    /// Every pair of namespaces with a path into or out of this tenant (one path per
    /// ordered pair), sorted. Empty when the tenant is isolated.
    pub breaches: Vec<Breach>,
}

impl TenantIsolation {
    /// Whether no pod of another tenant can connect to or from this tenant's pods.
    pub fn is_isolated(&self) -> bool {
        self.breaches.is_empty()
    }

    /// The first breach: the one to name in the `Isolated` condition and Warning event.
    pub fn offending(&self) -> Option<&Breach> {
        self.breaches.first()
    }

    /// The message of the `Isolated` condition.
    pub fn message(&self) -> String {
        match self.breaches.split_first() {
            None => "no NetworkPolicy lets a pod of another tenant connect to or from this tenant's pods".to_owned(),
            Some((first, [])) => format!("{first}"),
            Some((first, rest)) => format!(
                "{first} (and {} more path{} between this tenant and others)",
                rest.len(),
                if rest.len() == 1 { "" } else { "s" }
            ),
        }
    }
}

/// A set of namespaces, by index.
#[derive(Clone, Debug, PartialEq, Eq)]
struct NamespaceSet(Vec<u64>);

impl NamespaceSet {
    fn new(len: usize) -> Self {
        NamespaceSet(vec![0; len.div_ceil(64)])
    }

    fn insert(&mut self, i: usize) {
        if let Some(word) = self.0.get_mut(i / 64) {
            *word |= 1 << (i % 64);
        }
    }

    fn contains(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, word)| {
            (0..64)
                .filter(move |bit| word & (1 << bit) != 0)
                .map(move |bit| w * 64 + bit)
        })
    }

    fn union_with(&mut self, other: &NamespaceSet) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
    }
}

/// Which namespaces' pods a peer can be.
#[derive(Clone, Debug)]
enum Admits {
    All,
    Some(Rc<NamespaceSet>),
}

impl Admits {
    fn contains(&self, i: usize) -> bool {
        match self {
            Admits::All => true,
            Admits::Some(set) => set.contains(i),
        }
    }
}

/// One way a namespace's pods may send (egress) or receive (ingress) a connection: the
/// constraints on the local pod's labels, the namespaces and labels of the remote pod, and
/// the ports.
#[derive(Debug)]
struct Way {
    /// The local pod must match all of these ...
    local: Vec<Req>,
    /// ... and at least one requirement of each clause (it escapes every policy).
    local_clauses: Vec<Vec<Req>>,
    /// The remote pod's namespace.
    remote_namespaces: Admits,
    /// The remote pod must match all of these.
    remote: Vec<Req>,
    ports: PortSet,
    opening: Opening,
}

struct Analyzer<'a> {
    namespaces: Vec<(&'a NamespaceInfo, BTreeMap<String, String>)>,
    index: HashMap<&'a str, usize>,
    /// The namespaces carrying each label, to evaluate `In` selectors without a scan.
    label_index: HashMap<(String, String), Vec<usize>>,
    selector_cache: HashMap<Vec<Req>, Rc<NamespaceSet>>,
    pod_cidrs: &'a [Cidr],
}

/// The peers and ports of one rule, whichever its direction.
type Rule<'p> = (
    Option<&'p Vec<NetworkPolicyPeer>>,
    Option<&'p Vec<NetworkPolicyPort>>,
);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Direction::Ingress => "Ingress",
            Direction::Egress => "Egress",
        }
    }
}

impl<'a> Analyzer<'a> {
    fn namespaces_matching(&mut self, reqs: Vec<Req>) -> Rc<NamespaceSet> {
        if let Some(set) = self.selector_cache.get(&reqs) {
            return Rc::clone(set);
        }
        let mut set = NamespaceSet::new(self.namespaces.len());
        let candidates: Vec<usize> = match reqs.iter().find_map(|r| match r {
            Req::In(key, values) => Some((key, values)),
            _ => None,
        }) {
            Some((key, values)) => values
                .iter()
                .filter_map(|v| self.label_index.get(&(key.clone(), v.clone())))
                .flatten()
                .copied()
                .collect(),
            None => (0..self.namespaces.len()).collect(),
        };
        for i in candidates {
            if self
                .namespaces
                .get(i)
                .is_some_and(|(_, labels)| reqs.iter().all(|r| r.matches(labels)))
            {
                set.insert(i);
            }
        }
        let set = Rc::new(set);
        self.selector_cache.insert(reqs, Rc::clone(&set));
        set
    }

    /// Which remote pods a peer of a policy in `namespace` admits; `None` for none.
    fn peer(&mut self, peer: &NetworkPolicyPeer, namespace: &str) -> Option<(Admits, Vec<Req>)> {
        if let Some(block) = &peer.ip_block {
            return ip_block_covers_pods(block, self.pod_cidrs)
                .then_some((Admits::All, Vec::new()));
        }
        let admits = match &peer.namespace_selector {
            Some(selector) => Admits::Some(self.namespaces_matching(requirements(Some(selector)))),
            None => {
                let mut set = NamespaceSet::new(self.namespaces.len());
                if let Some(&i) = self.index.get(namespace) {
                    set.insert(i);
                }
                Admits::Some(Rc::new(set))
            }
        };
        Some((admits, requirements(peer.pod_selector.as_ref())))
    }

    /// Every way pods of the namespace at `ns` may take part in a connection in `direction`.
    fn ways(&mut self, ns: &str, policies: &[&NetworkPolicy], direction: Direction) -> Vec<Way> {
        let mut ways = Vec::new();
        let mut clauses = Vec::new();
        // A policy without spec is what the API server would store for `spec: {}`.
        let empty = NetworkPolicySpec::default();
        for policy in policies {
            let spec = policy.spec.as_ref().unwrap_or(&empty);
            let has_egress_rules = spec.egress.as_ref().is_some_and(|e| !e.is_empty());
            let applies = match spec.policy_types.as_ref().filter(|t| !t.is_empty()) {
                Some(types) => types.iter().any(|t| t == direction.name()),
                None => direction == Direction::Ingress || has_egress_rules,
            };
            if !applies {
                continue;
            }
            let local = requirements(spec.pod_selector.as_ref());
            clauses.push(local.iter().map(Req::negate).collect::<Vec<_>>());
            let opening = Opening::Policy(PolicyRef {
                namespace: ns.to_owned(),
                name: policy.metadata.name.clone().unwrap_or_default(),
            });
            let rules: Vec<Rule<'_>> = match direction {
                Direction::Ingress => spec
                    .ingress
                    .iter()
                    .flatten()
                    .map(|r| (r.from.as_ref(), r.ports.as_ref()))
                    .collect(),
                Direction::Egress => spec
                    .egress
                    .iter()
                    .flatten()
                    .map(|r| (r.to.as_ref(), r.ports.as_ref()))
                    .collect(),
            };
            for (peers, ports) in rules {
                let ports = port_set(ports);
                let peers: Vec<(Admits, Vec<Req>)> = match peers.filter(|p| !p.is_empty()) {
                    None => vec![(Admits::All, Vec::new())],
                    Some(peers) => peers.iter().filter_map(|p| self.peer(p, ns)).collect(),
                };
                for (remote_namespaces, remote) in peers {
                    ways.push(Way {
                        local: local.clone(),
                        local_clauses: Vec::new(),
                        remote_namespaces,
                        remote,
                        ports: ports.clone(),
                        opening: opening.clone(),
                    });
                }
            }
        }
        let mut budget = SEARCH_BUDGET;
        if satisfiable(&mut Vec::new(), &clauses, &mut budget) {
            ways.push(Way {
                local: Vec::new(),
                local_clauses: clauses,
                remote_namespaces: Admits::All,
                remote: Vec::new(),
                ports: PortSet::All,
                opening: Opening::NotIsolated {
                    namespace: ns.to_owned(),
                },
            });
        }
        ways
    }
}

/// Whether a pod can satisfy one side's local constraints and the other side's remote ones.
fn pod_exists(local: &Way, remote: &Way) -> bool {
    let mut base: Vec<&Req> = local.local.iter().chain(&remote.remote).collect();
    let mut budget = SEARCH_BUDGET;
    satisfiable(&mut base, &local.local_clauses, &mut budget)
}

/// Decides, for every tenant with a namespace in `namespaces`, whether a pod of another
/// tenant can connect to or from its pods, given every NetworkPolicy in those namespaces
/// (policies in other namespaces are ignored: they select no tenant pod). The result has
/// one entry per tenant, by name.
pub fn analyze(
    namespaces: &[NamespaceInfo],
    policies: &[NetworkPolicy],
    config: &AnalysisConfig,
) -> BTreeMap<String, TenantIsolation> {
    let mut sorted: Vec<&NamespaceInfo> = namespaces.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    sorted.dedup_by(|a, b| a.name == b.name);
    let mut analyzer = Analyzer {
        namespaces: sorted
            .iter()
            .map(|ns| {
                let mut labels = ns.labels.clone();
                labels
                    .entry(NAMESPACE_NAME_LABEL.to_owned())
                    .or_insert_with(|| ns.name.clone());
                (*ns, labels)
            })
            .collect(),
        index: sorted
            .iter()
            .enumerate()
            .map(|(i, ns)| (ns.name.as_str(), i))
            .collect(),
        label_index: HashMap::new(),
        selector_cache: HashMap::new(),
        pod_cidrs: &config.pod_cidrs,
    };
    for (i, (_, labels)) in analyzer.namespaces.iter().enumerate() {
        for (k, v) in labels {
            analyzer
                .label_index
                .entry((k.clone(), v.clone()))
                .or_default()
                .push(i);
        }
    }
    let mut by_namespace: Vec<Vec<&NetworkPolicy>> = vec![Vec::new(); sorted.len()];
    for policy in policies {
        let ns = policy.metadata.namespace.as_deref().unwrap_or_default();
        if let Some(&i) = analyzer.index.get(ns) {
            by_namespace[i].push(policy);
        }
    }
    for list in &mut by_namespace {
        list.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    }
    let (egress, ingress): (Vec<Vec<Way>>, Vec<Vec<Way>>) = sorted
        .iter()
        .zip(&by_namespace)
        .map(|(ns, list)| {
            (
                analyzer.ways(&ns.name, list, Direction::Egress),
                analyzer.ways(&ns.name, list, Direction::Ingress),
            )
        })
        .unzip();
    let reach = |ways: &[Way]| {
        let mut set = NamespaceSet::new(sorted.len());
        for way in ways {
            match &way.remote_namespaces {
                Admits::All => return Admits::All,
                Admits::Some(s) => set.union_with(s),
            }
        }
        Admits::Some(Rc::new(set))
    };
    let egress_reach: Vec<Admits> = egress.iter().map(|w| reach(w)).collect();
    let ingress_reach: Vec<Admits> = ingress.iter().map(|w| reach(w)).collect();

    let mut report: BTreeMap<String, TenantIsolation> = sorted
        .iter()
        .map(|ns| {
            (
                ns.tenant.clone(),
                TenantIsolation {
                    tenant: ns.tenant.clone(),
                    breaches: Vec::new(),
                },
            )
        })
        .collect();
    for (b, destination) in sorted.iter().enumerate() {
        // Only the namespaces the destination admits can be sources: usually its own.
        let sources: Vec<usize> = match &ingress_reach[b] {
            Admits::All => (0..sorted.len()).collect(),
            Admits::Some(set) => set.iter().collect(),
        };
        for a in sources {
            let Some(source) = sorted.get(a) else {
                continue;
            };
            if source.tenant == destination.tenant || !egress_reach[a].contains(b) {
                continue;
            }
            let found = egress[a]
                .iter()
                .filter(|e| e.remote_namespaces.contains(b))
                .find_map(|e| {
                    ingress[b]
                        .iter()
                        .filter(|i| i.remote_namespaces.contains(a))
                        .find_map(|i| {
                            let port = common_port(&e.ports, &i.ports)?;
                            (pod_exists(e, i) && pod_exists(i, e)).then(|| Breach {
                                from_tenant: source.tenant.clone(),
                                from_namespace: source.name.clone(),
                                to_tenant: destination.tenant.clone(),
                                to_namespace: destination.name.clone(),
                                egress: e.opening.clone(),
                                ingress: i.opening.clone(),
                                port,
                            })
                        })
                });
            if let Some(breach) = found {
                for tenant in [&source.tenant, &destination.tenant] {
                    if let Some(entry) = report.get_mut(tenant) {
                        entry.breaches.push(breach.clone());
                    }
                }
            }
        }
    }
    for entry in report.values_mut() {
        entry.breaches.sort();
    }
    report
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::isolation::labels::TENANT_LABEL;

    fn ns(name: &str, tenant: &str) -> NamespaceInfo {
        NamespaceInfo {
            name: name.to_owned(),
            tenant: tenant.to_owned(),
            labels: BTreeMap::from([(TENANT_LABEL.to_owned(), tenant.to_owned())]),
        }
    }

    /// Namespaces tenant-a, tenant-b and tenant-c of tenants a, b and c.
    fn abc() -> Vec<NamespaceInfo> {
        vec![
            ns("tenant-a", "a"),
            ns("tenant-b", "b"),
            ns("tenant-c", "c"),
        ]
    }

    fn np(namespace: &str, name: &str, spec: serde_json::Value) -> NetworkPolicy {
        serde_json::from_value(json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"namespace": namespace, "name": name},
            "spec": spec,
        }))
        .unwrap()
    }

    fn deny_all(namespace: &str) -> NetworkPolicy {
        np(
            namespace,
            "deny-all",
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        )
    }

    fn allow_all_ingress(namespace: &str) -> NetworkPolicy {
        np(
            namespace,
            "allow-all-ingress",
            json!({"podSelector": {}, "ingress": [{}], "policyTypes": ["Ingress"]}),
        )
    }

    fn allow_all_egress(namespace: &str) -> NetworkPolicy {
        np(
            namespace,
            "allow-all-egress",
            json!({"podSelector": {}, "egress": [{}], "policyTypes": ["Egress"]}),
        )
    }

    fn run(
        namespaces: &[NamespaceInfo],
        policies: &[NetworkPolicy],
    ) -> BTreeMap<String, TenantIsolation> {
        analyze(namespaces, policies, &AnalysisConfig::default())
    }

    fn run_with_pod_cidrs(
        pod_cidrs: &[&str],
        namespaces: &[NamespaceInfo],
        policies: &[NetworkPolicy],
    ) -> BTreeMap<String, TenantIsolation> {
        let config = AnalysisConfig {
            pod_cidrs: pod_cidrs.iter().map(|c| c.parse().unwrap()).collect(),
        };
        analyze(namespaces, policies, &config)
    }

    fn isolated(report: &BTreeMap<String, TenantIsolation>, tenant: &str) -> bool {
        report[tenant].is_isolated()
    }

    /// The single breach of `tenant`, asserting there is exactly one.
    fn only_breach<'r>(report: &'r BTreeMap<String, TenantIsolation>, tenant: &str) -> &'r Breach {
        let breaches = &report[tenant].breaches;
        assert_eq!(breaches.len(), 1, "{breaches:#?}");
        &breaches[0]
    }

    fn policy(namespace: &str, name: &str) -> Opening {
        Opening::Policy(PolicyRef {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }

    #[test]
    fn no_policies_at_all_is_not_isolated() {
        let report = run(&abc(), &[]);
        assert!(!isolated(&report, "a"));
        let b = &report["a"].breaches[0];
        assert_eq!(
            b.egress,
            Opening::NotIsolated {
                namespace: "tenant-a".into()
            }
        );
        assert_eq!(b.port, "any port");
    }

    #[test]
    fn default_deny_everywhere_is_isolated() {
        let report = run(
            &abc(),
            &[
                deny_all("tenant-a"),
                deny_all("tenant-b"),
                deny_all("tenant-c"),
            ],
        );
        assert!(
            report.values().all(TenantIsolation::is_isolated),
            "{report:#?}"
        );
        assert_eq!(
            report["a"].message(),
            "no NetworkPolicy lets a pod of another tenant connect to or from this tenant's pods"
        );
    }

    #[test]
    fn allow_all_ingress_alone_is_not_a_breach_under_default_deny() {
        let namespaces = &abc()[..2];
        let report = run(
            namespaces,
            &[
                deny_all("tenant-a"),
                deny_all("tenant-b"),
                allow_all_ingress("tenant-a"),
            ],
        );
        assert!(isolated(&report, "a"), "{report:#?}");
        assert!(isolated(&report, "b"));
    }

    #[test]
    fn allow_all_ingress_meets_allow_all_egress_of_another_tenant() {
        let namespaces = &abc()[..2];
        let report = run(
            namespaces,
            &[
                deny_all("tenant-a"),
                deny_all("tenant-b"),
                allow_all_ingress("tenant-a"),
                allow_all_egress("tenant-b"),
            ],
        );
        let breach = only_breach(&report, "a");
        assert_eq!(
            breach,
            only_breach(&report, "b"),
            "reported on both tenants"
        );
        assert_eq!(
            (breach.from_tenant.as_str(), breach.to_tenant.as_str()),
            ("b", "a")
        );
        assert_eq!(breach.egress, policy("tenant-b", "allow-all-egress"));
        assert_eq!(breach.ingress, policy("tenant-a", "allow-all-ingress"));
        assert_eq!(breach.other_tenant("a"), "b");
        assert_eq!(
            report["a"].message(),
            "pods in tenant-b (tenant b) can connect to pods in tenant-a (tenant a) on any port: \
             Egress allowed by NetworkPolicy tenant-b/allow-all-egress; \
             Ingress allowed by NetworkPolicy tenant-a/allow-all-ingress"
        );
    }

    #[test]
    fn same_tenant_namespaces_may_talk_freely() {
        let namespaces = [ns("tenant-a", "a"), ns("a-staging", "a")];
        let report = run(&namespaces, &[]);
        assert!(isolated(&report, "a"));
    }

    #[test]
    fn empty_ingress_list_isolates_without_allowing() {
        let namespaces = &abc()[..2];
        let closed = np(
            "tenant-a",
            "closed",
            json!({"podSelector": {}, "ingress": [], "policyTypes": ["Ingress"]}),
        );
        let report = run(
            namespaces,
            &[closed, deny_all("tenant-b"), allow_all_egress("tenant-b")],
        );
        assert!(isolated(&report, "a"), "{report:#?}");
    }

    #[test]
    fn rule_without_from_admits_every_peer() {
        let namespaces = &abc()[..2];
        let open = np(
            "tenant-a",
            "open",
            json!({"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]}),
        );
        let report = run(
            namespaces,
            &[
                deny_all("tenant-a"),
                open,
                deny_all("tenant-b"),
                allow_all_egress("tenant-b"),
            ],
        );
        assert_eq!(only_breach(&report, "a").port, "TCP 80");
    }

    #[test]
    fn policy_types_default_to_ingress_only_without_egress_rules() {
        let namespaces = &abc()[..2];
        // No policyTypes and no egress rules: Ingress only, so tenant-a's egress is open.
        let ingress_only = np(
            "tenant-a",
            "ingress-only",
            json!({"podSelector": {}, "egress": []}),
        );
        let report = run(
            namespaces,
            &[
                ingress_only,
                deny_all("tenant-b"),
                allow_all_ingress("tenant-b"),
            ],
        );
        let breach = only_breach(&report, "a");
        assert_eq!(
            breach.egress,
            Opening::NotIsolated {
                namespace: "tenant-a".into()
            }
        );
        assert_eq!(breach.ingress, policy("tenant-b", "allow-all-ingress"));
    }

    #[test]
    fn policy_types_default_includes_egress_when_it_has_egress_rules() {
        let namespaces = &abc()[..2];
        let own_tenant_only = np(
            "tenant-a",
            "own-tenant",
            json!({"podSelector": {}, "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"landlord.dev/tenant": "a"}}}]}]}),
        );
        let report = run(
            namespaces,
            &[
                own_tenant_only,
                deny_all("tenant-b"),
                allow_all_ingress("tenant-b"),
            ],
        );
        assert!(isolated(&report, "a"), "{report:#?}");
    }

    #[test]
    fn only_egress_policy_type_leaves_ingress_open() {
        let namespaces = &abc()[..2];
        // Ingress rules of a policy whose policyTypes are [Egress] are ignored, and the
        // pods are not isolated for ingress.
        let egress_only = np(
            "tenant-a",
            "egress-only",
            json!({"podSelector": {}, "policyTypes": ["Egress"], "ingress": [{"from": [{"podSelector": {}}]}]}),
        );
        let report = run(
            namespaces,
            &[
                egress_only,
                deny_all("tenant-b"),
                allow_all_egress("tenant-b"),
            ],
        );
        let breach = only_breach(&report, "a");
        assert_eq!(breach.egress, policy("tenant-b", "allow-all-egress"));
        assert_eq!(
            breach.ingress,
            Opening::NotIsolated {
                namespace: "tenant-a".into()
            }
        );
    }

    #[test]
    fn pods_no_policy_selects_are_not_isolated() {
        let namespaces = &abc()[..2];
        let web_only = np(
            "tenant-a",
            "web",
            json!({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress", "Egress"]}),
        );
        let b = [deny_all("tenant-b"), allow_all_egress("tenant-b")];
        let report = run(
            namespaces,
            &[&b[..], std::slice::from_ref(&web_only)].concat(),
        );
        assert_eq!(
            only_breach(&report, "a").ingress,
            Opening::NotIsolated {
                namespace: "tenant-a".into()
            }
        );
        // A second policy selecting exactly the pods without app=web closes the gap.
        let others = np(
            "tenant-a",
            "others",
            json!({"podSelector": {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}, "policyTypes": ["Ingress", "Egress"]}),
        );
        let report = run(namespaces, &[&b[..], &[web_only, others]].concat());
        assert!(isolated(&report, "a"), "{report:#?}");
    }

    #[test]
    fn empty_namespace_selector_with_pod_selector_reaches_every_namespace() {
        let namespaces = &abc()[..2];
        let to_web_anywhere = np(
            "tenant-b",
            "to-web",
            json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "web"}}}]}]}),
        );
        let report = run(
            namespaces,
            &[
                deny_all("tenant-a"),
                allow_all_ingress("tenant-a"),
                deny_all("tenant-b"),
                to_web_anywhere,
            ],
        );
        let breach = only_breach(&report, "b");
        assert_eq!(breach.egress, policy("tenant-b", "to-web"));
        assert_eq!(breach.to_namespace, "tenant-a");
    }

    #[test]
    fn pod_selector_without_namespace_selector_stays_in_own_namespace() {
        let namespaces = &abc()[..2];
        let to_own_pods = np(
            "tenant-b",
            "to-own",
            json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{"podSelector": {}}]}]}),
        );
        let report = run(
            namespaces,
            &[
                deny_all("tenant-a"),
                allow_all_ingress("tenant-a"),
                deny_all("tenant-b"),
                to_own_pods,
            ],
        );
        assert!(isolated(&report, "a"), "{report:#?}");
    }

    /// tenant-b's pods may only send from pods labelled role=backend.
    fn backend_egress() -> Vec<NetworkPolicy> {
        vec![
            deny_all("tenant-b"),
            np(
                "tenant-b",
                "backend-out",
                json!({"podSelector": {"matchLabels": {"role": "backend"}}, "policyTypes": ["Egress"], "egress": [{}]}),
            ),
        ]
    }

    #[test]
    fn namespace_and_pod_selector_in_one_peer_are_anded() {
        let namespaces = &abc()[..2];
        let from_b_frontends = np(
            "tenant-a",
            "from-b-frontends",
            json!({"podSelector": {}, "ingress": [{"from": [{
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "tenant-b"}},
                "podSelector": {"matchLabels": {"role": "frontend"}},
            }]}]}),
        );
        let policies = [
            backend_egress(),
            vec![deny_all("tenant-a"), from_b_frontends],
        ]
        .concat();
        // A pod of tenant-b would need role=backend to send and role=frontend to be admitted.
        assert!(isolated(&run(namespaces, &policies), "a"));
    }

    #[test]
    fn separate_peers_are_ored() {
        let namespaces = &abc()[..2];
        let from_b_or_frontends = np(
            "tenant-a",
            "from-b-or-frontends",
            json!({"podSelector": {}, "ingress": [{"from": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "tenant-b"}}},
                {"podSelector": {"matchLabels": {"role": "frontend"}}},
            ]}]}),
        );
        let policies = [
            backend_egress(),
            vec![deny_all("tenant-a"), from_b_or_frontends],
        ]
        .concat();
        let report = run(namespaces, &policies);
        let breach = only_breach(&report, "a");
        assert_eq!(breach.egress, policy("tenant-b", "backend-out"));
        assert_eq!(breach.ingress, policy("tenant-a", "from-b-or-frontends"));
    }

    #[test]
    fn match_expressions_not_in() {
        let from_all_but_b = np(
            "tenant-a",
            "from-all-but-b",
            json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["tenant-b"]},
            ]}}]}]}),
        );
        let policies = [
            deny_all("tenant-a"),
            from_all_but_b,
            deny_all("tenant-b"),
            allow_all_egress("tenant-b"),
            deny_all("tenant-c"),
            allow_all_egress("tenant-c"),
        ];
        let report = run(&abc(), &policies);
        assert!(isolated(&report, "b"), "{report:#?}");
        assert_eq!(only_breach(&report, "a").from_tenant, "c");
    }

    #[test]
    fn match_expressions_exists_and_does_not_exist_contradict() {
        let namespaces = &abc()[..2];
        let from_unteamed = |operator: &str| {
            np(
                "tenant-a",
                "from-b",
                json!({"podSelector": {}, "ingress": [{"from": [{
                    "namespaceSelector": {},
                    "podSelector": {"matchExpressions": [{"key": "team", "operator": operator}]},
                }]}]}),
            )
        };
        let teamed_out = np(
            "tenant-b",
            "teamed-out",
            json!({"podSelector": {"matchExpressions": [{"key": "team", "operator": "Exists"}]}, "policyTypes": ["Egress"], "egress": [{}]}),
        );
        let b = [deny_all("tenant-b"), teamed_out];
        let contradiction = [
            &b[..],
            &[deny_all("tenant-a"), from_unteamed("DoesNotExist")],
        ]
        .concat();
        assert!(isolated(&run(namespaces, &contradiction), "a"));
        let agreement = [&b[..], &[deny_all("tenant-a"), from_unteamed("Exists")]].concat();
        assert!(!isolated(&run(namespaces, &agreement), "a"));
    }

    #[test]
    fn match_expressions_in_needs_a_common_value() {
        let namespaces = &abc()[..2];
        let ingress = |values: serde_json::Value| {
            np(
                "tenant-a",
                "from-tiers",
                json!({"podSelector": {}, "ingress": [{"from": [{
                    "namespaceSelector": {},
                    "podSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": values}]},
                }]}]}),
            )
        };
        let api_out = np(
            "tenant-b",
            "api-out",
            json!({"podSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["api", "worker"]}]}, "egress": [{}]}),
        );
        let b = [deny_all("tenant-b"), api_out];
        let common = [
            &b[..],
            &[deny_all("tenant-a"), ingress(json!(["web", "api"]))],
        ]
        .concat();
        assert!(!isolated(&run(namespaces, &common), "a"));
        let disjoint = [&b[..], &[deny_all("tenant-a"), ingress(json!(["web"]))]].concat();
        assert!(isolated(&run(namespaces, &disjoint), "a"));
    }

    fn ip_policies(
        ingress_block: serde_json::Value,
        egress_block: serde_json::Value,
    ) -> Vec<NetworkPolicy> {
        vec![
            deny_all("tenant-a"),
            np(
                "tenant-a",
                "from-ips",
                json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": ingress_block}]}]}),
            ),
            deny_all("tenant-b"),
            np(
                "tenant-b",
                "to-ips",
                json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{"ipBlock": egress_block}]}]}),
            ),
        ]
    }

    #[test]
    fn ip_block_everything_is_a_breach_when_pod_cidrs_are_unknown() {
        let policies = ip_policies(json!({"cidr": "0.0.0.0/0"}), json!({"cidr": "0.0.0.0/0"}));
        let report = run(&abc()[..2], &policies);
        let breach = only_breach(&report, "a");
        assert_eq!(breach.egress, policy("tenant-b", "to-ips"));
        assert_eq!(breach.ingress, policy("tenant-a", "from-ips"));
    }

    #[test]
    fn ip_block_except_covering_the_whole_block_is_no_path() {
        let policies = ip_policies(
            json!({"cidr": "10.0.0.0/8", "except": ["10.0.0.0/9", "10.128.0.0/9"]}),
            json!({"cidr": "0.0.0.0/0"}),
        );
        assert!(isolated(&run(&abc()[..2], &policies), "a"));
    }

    #[test]
    fn ip_block_outside_the_pod_cidrs_is_no_path() {
        let namespaces = &abc()[..2];
        let pods = ["10.244.0.0/16"];
        let outside = ip_policies(
            json!({"cidr": "203.0.113.0/24"}),
            json!({"cidr": "203.0.113.0/24"}),
        );
        assert!(isolated(
            &run_with_pod_cidrs(&pods, namespaces, &outside),
            "a"
        ));
        let all_but_pods = ip_policies(
            json!({"cidr": "0.0.0.0/0", "except": ["10.244.0.0/16"]}),
            json!({"cidr": "0.0.0.0/0"}),
        );
        assert!(isolated(
            &run_with_pod_cidrs(&pods, namespaces, &all_but_pods),
            "a"
        ));
        let half_excepted = ip_policies(
            json!({"cidr": "0.0.0.0/0", "except": ["10.244.0.0/17"]}),
            json!({"cidr": "10.0.0.0/8"}),
        );
        assert!(!isolated(
            &run_with_pod_cidrs(&pods, namespaces, &half_excepted),
            "a"
        ));
        // Without pod CIDRs, the payment provider's range might hold pods.
        assert!(!isolated(&run(namespaces, &outside), "a"));
    }

    #[test]
    fn ip_block_of_the_other_family_is_no_path() {
        let policies = ip_policies(json!({"cidr": "::/0"}), json!({"cidr": "0.0.0.0/0"}));
        let report = run_with_pod_cidrs(&["10.244.0.0/16"], &abc()[..2], &policies);
        assert!(isolated(&report, "a"));
    }

    fn port_policies(
        ingress_ports: serde_json::Value,
        egress_ports: serde_json::Value,
    ) -> Vec<NetworkPolicy> {
        vec![
            deny_all("tenant-a"),
            np(
                "tenant-a",
                "in",
                json!({"podSelector": {}, "ingress": [{"ports": ingress_ports}]}),
            ),
            deny_all("tenant-b"),
            np(
                "tenant-b",
                "out",
                json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": egress_ports}]}),
            ),
        ]
    }

    #[test]
    fn port_mismatch_between_the_two_sides_is_no_path() {
        let namespaces = &abc()[..2];
        let mismatch = port_policies(json!([{"port": 80}]), json!([{"port": 443}]));
        assert!(isolated(&run(namespaces, &mismatch), "a"));
        let protocols = port_policies(
            json!([{"port": 53, "protocol": "UDP"}]),
            json!([{"port": 53}]),
        );
        assert!(isolated(&run(namespaces, &protocols), "a"));
        let same = port_policies(
            json!([{"port": 80}]),
            json!([{"port": 443}, {"port": 80, "protocol": "TCP"}]),
        );
        assert_eq!(only_breach(&run(namespaces, &same), "a").port, "TCP 80");
    }

    #[test]
    fn end_port_ranges_overlap() {
        let namespaces = &abc()[..2];
        let overlap = port_policies(
            json!([{"port": 8000, "endPort": 8080}]),
            json!([{"port": 8080, "endPort": 9000}]),
        );
        assert_eq!(
            only_breach(&run(namespaces, &overlap), "a").port,
            "TCP 8080"
        );
        let apart = port_policies(
            json!([{"port": 8000, "endPort": 8080}]),
            json!([{"port": 8081, "endPort": 9000}]),
        );
        assert!(isolated(&run(namespaces, &apart), "a"));
    }

    #[test]
    fn named_port_is_any_port_of_its_protocol() {
        let namespaces = &abc()[..2];
        let named = port_policies(json!([{"port": "http"}]), json!([{"port": 8080}]));
        assert_eq!(only_breach(&run(namespaces, &named), "a").port, "TCP 8080");
        let other_protocol = port_policies(
            json!([{"port": "dns", "protocol": "UDP"}]),
            json!([{"port": 8080}]),
        );
        assert!(isolated(&run(namespaces, &other_protocol), "a"));
    }

    #[test]
    fn policies_outside_tenant_namespaces_are_ignored() {
        let report = run(
            &abc()[..2],
            &[
                deny_all("tenant-a"),
                deny_all("tenant-b"),
                allow_all_egress("kube-system"),
            ],
        );
        assert!(isolated(&report, "a"));
    }

    #[test]
    fn several_paths_are_all_listed_and_counted_in_the_message() {
        let policies = [
            deny_all("tenant-a"),
            allow_all_ingress("tenant-a"),
            deny_all("tenant-b"),
            allow_all_egress("tenant-b"),
            deny_all("tenant-c"),
            allow_all_egress("tenant-c"),
        ];
        let report = run(&abc(), &policies);
        assert_eq!(report["a"].breaches.len(), 2);
        assert!(
            report["a"]
                .message()
                .ends_with("(and 1 more path between this tenant and others)")
        );
        assert_eq!(
            report["a"].offending().map(|b| b.from_tenant.as_str()),
            Some("b")
        );
        assert_eq!(report["c"].breaches.len(), 1);
    }

    #[test]
    fn cidr_parsing() {
        let c: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert_eq!(
            "fd00::1/48".parse::<Cidr>().unwrap().to_string(),
            "fd00::/48"
        );
        for bad in ["10.0.0.0", "10.0.0.0/33", "nonsense/8", "::/129"] {
            let err = bad.parse::<Cidr>().unwrap_err();
            assert_eq!(err.category(), "invalid_cidr");
        }
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(covered(
            all,
            &["0.0.0.0/1".parse().unwrap(), "128.0.0.0/1".parse().unwrap()]
        ));
        assert!(!covered(all, &["0.0.0.0/1".parse().unwrap()]));
    }
}
