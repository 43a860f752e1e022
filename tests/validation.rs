//! Bad input is refused by the CRD schema and its CEL rules with a message naming the
//! field; every example in `examples/` is accepted.
//!
//! The checks run the generated CRDs through the emulator's CRD validation — the same
//! code that serves them to `kubectl` in the other tests: structural schema validation,
//! pruning, defaulting and `x-kubernetes-validations` (CEL, with `oldSelf` for updates).

use std::path::{Path, PathBuf};

use kube_emulator::schema::{CrdValidator, FieldError};
use serde_json::Value;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo(dir))
        .unwrap_or_else(|e| panic!("cannot read {dir}: {e}"))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{dir} holds no YAML files");
    files
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("readable file");
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

fn validator_for(object: &Value) -> CrdValidator {
    let kind = object["kind"].as_str().expect("kind");
    let crd = landlord::api::crds()
        .into_iter()
        .map(|crd| serde_json::to_value(crd).expect("CRD serializes"))
        .find(|crd| crd["spec"]["names"]["kind"] == kind)
        .unwrap_or_else(|| panic!("no Landlord CRD for kind {kind}"));
    CrdValidator::new(&crd, "v1alpha1").expect("Landlord's CRDs are structural")
}

/// Admits `object` (an update of `old` when given) as the API server would.
fn admit(object: &Value, old: Option<&Value>) -> Result<Value, Vec<FieldError>> {
    let validator = validator_for(object);
    let old = old.map(|old| {
        validator
            .admit(old.clone(), None)
            .unwrap_or_else(|errors| panic!("the stored object must be valid: {errors:?}"))
            .object
    });
    validator
        .admit(object.clone(), old.as_ref())
        .map(|admitted| {
            assert!(
                admitted.unknown_fields.is_empty(),
                "unknown fields: {:?}",
                admitted.unknown_fields
            );
            admitted.object
        })
}

#[test]
fn every_example_is_accepted() {
    for path in yaml_files("examples") {
        for object in documents(&path) {
            if let Err(errors) = admit(&object, None) {
                let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
                panic!("{} is refused: {messages:#?}", path.display());
            }
        }
    }
}

#[test]
fn examples_are_defaulted_like_the_api_server_does() {
    let tenant = documents(&repo("examples/tenant.yaml")).remove(0);
    let stored = admit(&tenant, None).expect("example tenant is valid");
    // Defaults the example does not spell out.
    assert_eq!(stored["spec"]["encryption"]["keyProvider"], "Kubernetes");
    assert_eq!(stored["spec"]["backup"]["suspend"], false);
    assert_eq!(
        stored["spec"]["isolation"]["network"]["dns"]["podSelector"]["k8s-app"],
        "kube-dns"
    );
}

struct Expectation {
    field: String,
    message: String,
}

fn expectation(path: &Path) -> Expectation {
    let text = std::fs::read_to_string(path).expect("readable file");
    let header = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("# {key}: ")))
            .unwrap_or_else(|| panic!("{} lacks a `# {key}:` line", path.display()))
            .to_owned()
    };
    Expectation {
        field: header("field"),
        message: header("message"),
    }
}

#[test]
fn every_invalid_object_is_refused_naming_the_field() {
    let mut checked = 0;
    for path in yaml_files("tests/invalid") {
        let expected = expectation(&path);
        let mut docs = documents(&path);
        let object = docs.pop().expect("at least one document");
        let old = docs.pop();
        let errors = match admit(&object, old.as_ref()) {
            Ok(_) => panic!("{} was accepted", path.display()),
            Err(errors) => errors,
        };
        let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            errors
                .iter()
                .any(|e| e.field == expected.field && e.to_string().contains(&expected.message)),
            "{}: expected an error on {} containing {:?}, got {rendered:#?}",
            path.display(),
            expected.field,
            expected.message
        );
        println!("{}: {}", path.display(), rendered.join("; "));
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} invalid examples");
}

#[test]
fn unchanged_immutable_fields_are_accepted_on_update() {
    // The transition rules refuse changes, not updates: re-applying the same Tenant with a
    // new display name must pass.
    let tenant = documents(&repo("examples/tenant.yaml")).remove(0);
    let mut edited = tenant.clone();
    edited["spec"]["displayName"] = Value::from("ACME Corp (renamed)");
    admit(&edited, Some(&tenant)).expect("a display name change is allowed");
}
