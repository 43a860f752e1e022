//! Tenant databases end to end (the DatabaseServer and Tenant controllers): the operator
//! against the emulator, provisioning on a real PostgreSQL 15 (started by `support::postgres`). Each test has its own emulator
//! and its own tenant names on the shared server.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use landlord::api::{DatabaseServer, find_condition};
use landlord::database::Password;
use serde_json::json;
use support::cluster::{Harness, exists};
use support::postgres::{ADMIN_USER, shared};
use support::wait::{eventually, stays, wait_for};
use tokio_postgres::error::SqlState;

/// Creates the admin credentials and CA Secrets in `landlord` and a DatabaseServer `name`
/// for the test server, with `tls` (`disable`, `require`, `verify-full`).
async fn create_server(client: &Client, name: &str, tls: &str) {
    let pg = shared();
    put_secret(
        client,
        &format!("{name}-admin"),
        &[("username", ADMIN_USER), ("password", &pg.admin_password)],
    )
    .await;
    put_secret(
        client,
        &format!("{name}-ca"),
        &[("ca.crt", std::str::from_utf8(&pg.ca_pem).expect("PEM"))],
    )
    .await;
    let mut spec = json!({
        "host": "127.0.0.1",
        "port": pg.port,
        "tls": {"mode": tls},
        "adminCredentials": {"secret": {"name": format!("{name}-admin"), "namespace": "landlord"}},
        "maxConnections": 3,
        "network": {"cidrs": ["127.0.0.1/32"]}
    });
    if tls != "disable" {
        spec["tls"]["caSecret"] =
            json!({"name": format!("{name}-ca"), "namespace": "landlord", "key": "ca.crt"});
    }
    servers(client)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "landlord.dev/v1alpha1", "kind": "DatabaseServer",
                "metadata": {"name": name}, "spec": spec
            }))
            .expect("DatabaseServer"),
        )
        .await
        .expect("DatabaseServer created");
}

async fn put_secret(client: &Client, name: &str, data: &[(&str, &str)]) {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some("landlord".to_owned()),
            ..ObjectMeta::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Secret::default()
    };
    let api: Api<Secret> = Api::namespaced(client.clone(), "landlord");
    api.patch(
        name,
        &PatchParams::apply("test").force(),
        &Patch::Apply(&secret),
    )
    .await
    .expect("Secret written");
}

fn servers(client: &Client) -> Api<DatabaseServer> {
    Api::all(client.clone())
}

async fn server_condition(client: &Client, name: &str) -> Option<(String, String, String)> {
    let server = servers(client).get_opt(name).await.expect("readable")?;
    let c = find_condition(&server.status?.conditions, "Reachable")?.clone();
    Some((format!("{:?}", c.status), c.reason, c.message))
}

async fn wait_server(client: &Client, name: &str, status: &str, reason: &str) -> String {
    wait_for(
        &format!("DatabaseServer {name} is Reachable={status} ({reason})"),
        || async {
            server_condition(client, name)
                .await
                .filter(|(s, r, _)| s == status && r == reason)
                .map(|(_, _, m)| m)
        },
    )
    .await
}

/// The tenant's credentials Secret, field by field.
async fn credentials(client: &Client, namespace: &str, tenant: &str) -> BTreeMap<String, String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = api
        .get(&format!("{tenant}-db"))
        .await
        .expect("credentials Secret");
    secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).expect("UTF-8")))
        .collect()
}

/// Waits until a condition of the tenant has `status` and `reason`.
async fn wait_reason(h: &Harness, tenant: &str, type_: &str, status: &str, reason: &str) -> String {
    wait_for(
        &format!("{tenant}: {type_} is {status} ({reason})"),
        || async {
            h.condition(tenant, type_)
                .await
                .filter(|(s, r, _)| s == status && r == reason)
                .map(|(_, _, m)| m)
        },
    )
    .await
}

async fn tenant_login(
    secret: &BTreeMap<String, String>,
    database: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    shared()
        .connect(&secret["user"], &secret["password"], database)
        .await
}

fn sqlstate(error: &tokio_postgres::Error) -> Option<SqlState> {
    error.as_db_error().map(|e| e.code().clone())
}

async fn events_about(client: &Client, name: &str) -> Vec<(String, String)> {
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), "default");
    events
        .list(&Default::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}

/// Every test must leave no role behind on the shared server, so that the server's
/// catalog proves what the erasure did.
async fn role_exists(role: &str) -> bool {
    let su = shared().superuser("postgres").await;
    let rows = su
        .query("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
        .await
        .expect("query");
    !rows.is_empty()
}

async fn database_exists(database: &str) -> bool {
    let su = shared().superuser("postgres").await;
    let rows = su
        .query("SELECT 1 FROM pg_database WHERE datname = $1", &[&database])
        .await
        .expect("query");
    !rows.is_empty()
}

/// Provisioned with exactly the chart's permissions (RBAC mode), over verify-full TLS:
/// the tenant's own credentials reach its own database and nothing else.
#[tokio::test]
async fn a_tenant_gets_its_own_database_reachable_only_with_its_credentials() {
    let h = Harness::start_with(true).await;
    create_server(&h.client, "pg-one", "verify-full").await;
    let message = wait_server(&h.client, "pg-one", "True", "Connected").await;
    assert!(message.contains("PostgreSQL 15"), "{message}");
    let server = servers(&h.client).get("pg-one").await.expect("server");
    assert!(
        server
            .finalizers()
            .contains(&"landlord.dev/in-use".to_owned())
    );
    assert!(
        server
            .status
            .as_ref()
            .and_then(|s| s.server_version.as_deref())
            .is_some_and(|v| v.starts_with("15"))
    );

    for name in ["initech", "umbrella"] {
        h.create_tenant(
            name,
            json!({"database": {"serverRef": "pg-one", "connectionLimit": 7}}),
        )
        .await;
    }
    for name in ["initech", "umbrella"] {
        h.wait_condition(name, "Ready", "True").await;
    }
    let (_, reason, message) = h
        .condition("initech", "DatabaseReady")
        .await
        .expect("DatabaseReady");
    assert_eq!(reason, "Provisioned");
    assert!(message.contains("tenant_initech"), "{message}");

    let status = h
        .tenants()
        .get("initech")
        .await
        .expect("tenant")
        .status
        .expect("status");
    let db = status.database.expect("status.database");
    assert_eq!(
        (db.server.as_str(), db.name.as_str(), db.role.as_str()),
        ("pg-one", "tenant_initech", "tenant_initech")
    );
    let secret_ref = db.credentials_secret.expect("credentials Secret");
    assert_eq!(
        (secret_ref.namespace.as_str(), secret_ref.name.as_str()),
        ("tenant-initech", "initech-db")
    );
    assert!(db.password_set_at.is_some());
    eventually("the server counts both tenants", || async {
        servers(&h.client)
            .get("pg-one")
            .await
            .ok()
            .and_then(|s| s.status?.tenants)
            == Some(2)
    })
    .await;

    let initech = credentials(&h.client, "tenant-initech", "initech").await;
    let umbrella = credentials(&h.client, "tenant-umbrella", "umbrella").await;
    assert_eq!(initech["host"], "127.0.0.1");
    assert_eq!(initech["port"], shared().port.to_string());
    assert_eq!(initech["dbname"], "tenant_initech");
    assert_eq!(initech["user"], "tenant_initech");
    assert_eq!(initech["sslmode"], "verify-full");
    assert_eq!(initech["ca.crt"].as_bytes(), shared().ca_pem.as_slice());
    assert_eq!(initech["password"].len(), 40);
    assert_eq!(
        initech["uri"],
        format!(
            "postgresql://tenant_initech:{}@127.0.0.1:{}/tenant_initech?sslmode=verify-full",
            initech["password"],
            shared().port
        )
    );
    // Never in status, events or conditions.
    let tenant_json =
        serde_json::to_string(&h.tenants().get("initech").await.expect("tenant")).expect("JSON");
    assert!(!tenant_json.contains(&initech["password"]));
    for (_, note) in events_about(&h.client, "initech").await {
        assert!(!note.contains(&initech["password"]));
    }
    assert!(
        events_about(&h.client, "initech")
            .await
            .iter()
            .any(|(reason, _)| reason == "DatabaseCreated")
    );

    // Its own database: tables can be created and used.
    let own = tenant_login(&initech, "tenant_initech")
        .await
        .expect("the tenant's credentials open its database");
    own.batch_execute("CREATE TABLE invoices (id int); INSERT INTO invoices VALUES (1)")
        .await
        .expect("the tenant owns its database");
    // Role attributes as the issue asks for.
    let su = shared().superuser("postgres").await;
    let row = su
        .query_one(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolconnlimit \
             FROM pg_roles WHERE rolname = 'tenant_initech'",
            &[],
        )
        .await
        .expect("role");
    assert_eq!(
        (
            row.get::<_, bool>(0),
            row.get::<_, bool>(1),
            row.get::<_, bool>(2),
            row.get::<_, bool>(3),
            row.get::<_, bool>(4),
            row.get::<_, i32>(5)
        ),
        (false, false, false, false, false, 7)
    );
    // Not another tenant's database, even knowing its name.
    let refused = tenant_login(&initech, "tenant_umbrella")
        .await
        .err()
        .unwrap_or_else(|| panic!("another tenant's database refuses the connection"));
    assert_eq!(
        sqlstate(&refused),
        Some(SqlState::INSUFFICIENT_PRIVILEGE),
        "{refused}"
    );
    // Not another tenant's password for its own database either.
    let crossed = shared()
        .connect("tenant_umbrella", &initech["password"], "tenant_umbrella")
        .await
        .err()
        .unwrap_or_else(|| panic!("one tenant's password is not another's"));
    assert_eq!(
        sqlstate(&crossed),
        Some(SqlState::INVALID_PASSWORD),
        "{crossed}"
    );
    // No databases, no roles.
    for statement in [
        "CREATE DATABASE initech_extra",
        "CREATE ROLE initech_friend",
    ] {
        let error = own.batch_execute(statement).await.expect_err("not allowed");
        assert_eq!(
            sqlstate(&error),
            Some(SqlState::INSUFFICIENT_PRIVILEGE),
            "{statement}: {error}"
        );
    }
    // Another tenant's table, named in full from its own database: cross-database
    // references do not exist in PostgreSQL, and its schema is not visible.
    let other = tenant_login(&umbrella, "tenant_umbrella")
        .await
        .expect("umbrella's own database");
    other
        .batch_execute("CREATE TABLE secrets (v text); INSERT INTO secrets VALUES ('x')")
        .await
        .expect("umbrella's table");
    let error = own
        .query("SELECT * FROM tenant_umbrella.public.secrets", &[])
        .await
        .expect_err("no cross-database read");
    assert_eq!(
        sqlstate(&error),
        Some(SqlState::FEATURE_NOT_SUPPORTED),
        "{error}"
    );

    // Deleting the tenants erases their databases and roles; the server then counts none.
    for name in ["initech", "umbrella"] {
        h.tenants()
            .delete(name, &DeleteParams::default())
            .await
            .expect("tenant deleted");
    }
    drop((own, other));
    eventually("both tenants are gone", || async {
        !exists(&h.tenants(), "initech").await && !exists(&h.tenants(), "umbrella").await
    })
    .await;
    for name in ["tenant_initech", "tenant_umbrella"] {
        assert!(!database_exists(name).await, "{name} database left");
        assert!(!role_exists(name).await, "{name} role left");
    }
}

/// Rotation on request, a deleted Secret re-created with a new password, and a restart
/// that changes nothing.
#[tokio::test]
async fn passwords_rotate_on_request_and_a_deleted_secret_is_recreated() {
    let mut h = Harness::start().await;
    create_server(&h.client, "pg-two", "require").await;
    h.create_tenant("hooli", json!({"database": {"serverRef": "pg-two"}}))
        .await;
    h.wait_condition("hooli", "Ready", "True").await;
    let first = credentials(&h.client, "tenant-hooli", "hooli").await;
    assert_eq!(first["sslmode"], "require");
    tenant_login(&first, "tenant_hooli")
        .await
        .expect("first password works");

    // Rotation: the annotation asks, role and Secret change together.
    h.tenants()
        .patch(
            "hooli",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"landlord.dev/rotate-password": "2026-11-23"}}})),
        )
        .await
        .expect("annotated");
    eventually("the Secret holds a new password", || async {
        credentials(&h.client, "tenant-hooli", "hooli").await["password"] != first["password"]
    })
    .await;
    let rotated = credentials(&h.client, "tenant-hooli", "hooli").await;
    tenant_login(&rotated, "tenant_hooli")
        .await
        .expect("the new password works");
    let old = tenant_login(&first, "tenant_hooli")
        .await
        .err()
        .unwrap_or_else(|| panic!("the old password no longer works"));
    assert_eq!(sqlstate(&old), Some(SqlState::INVALID_PASSWORD), "{old}");
    eventually("a PasswordRotated event is published", || async {
        events_about(&h.client, "hooli")
            .await
            .iter()
            .any(|(reason, _)| reason == "PasswordRotated")
    })
    .await;

    // The same annotation value does not rotate again, not even after a restart; the
    // restarted operator writes nothing at all.
    let before_restart = verifier("tenant_hooli").await;
    h.stop_operator().await;
    h.emulator.reset_request_counts();
    h.start_operator().await;
    // Evidence that the new operator reconciled: Landlord keeps no cache of Secrets, so
    // its look at the server reads the admin username, password and CA (3 GETs) and the
    // tenant's database step reads the credentials Secret (1 more).
    eventually(
        "the restarted operator reconciled the server and the tenant",
        || async { h.emulator.request_count("get", "secrets") >= 4 },
    )
    .await;
    let writes: Vec<_> = h
        .emulator
        .request_counts()
        .into_iter()
        .filter(|((verb, resource), _)| {
            !matches!(verb.as_str(), "get" | "list" | "watch") && resource != "leases"
        })
        .collect();
    assert!(writes.is_empty(), "a restart wrote {writes:?}");
    assert_eq!(verifier("tenant_hooli").await, before_restart);
    assert_eq!(
        credentials(&h.client, "tenant-hooli", "hooli").await["password"],
        rotated["password"]
    );

    // A deleted Secret comes back with a new password that works, the old one does not.
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), "tenant-hooli");
    secrets
        .delete("hooli-db", &DeleteParams::default())
        .await
        .expect("Secret deleted");
    // Landlord does not watch Secrets (it may not list them): the next reconcile of the
    // Tenant writes it again, here one that a change to the Tenant starts.
    h.tenants()
        .patch(
            "hooli",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"example.com/touched": "1"}}})),
        )
        .await
        .expect("labelled");
    eventually("the Secret is re-created with a password", || async {
        secrets
            .get_opt("hooli-db")
            .await
            .expect("readable")
            .and_then(|s| s.data)
            .is_some_and(|d| d.contains_key("password") && !d.contains_key("password-pending"))
    })
    .await;
    let recreated = credentials(&h.client, "tenant-hooli", "hooli").await;
    assert_ne!(recreated["password"], rotated["password"]);
    tenant_login(&recreated, "tenant_hooli")
        .await
        .expect("the re-created Secret's password works");
    assert!(tenant_login(&rotated, "tenant_hooli").await.is_err());
    eventually("a CredentialsRecreated event is published", || async {
        events_about(&h.client, "hooli")
            .await
            .iter()
            .any(|(reason, _)| reason == "CredentialsRecreated")
    })
    .await;

    h.tenants()
        .delete("hooli", &DeleteParams::default())
        .await
        .expect("deleted");
    eventually("the tenant is gone", || async {
        !exists(&h.tenants(), "hooli").await
    })
    .await;
    assert!(!role_exists("tenant_hooli").await);
}

/// The role's stored SCRAM verifier: changes exactly when the password is set.
async fn verifier(role: &str) -> String {
    shared()
        .superuser("postgres")
        .await
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&role],
        )
        .await
        .expect("role")
        .get(0)
}

/// Missing Secret, wrong password, closed port, untrusted certificate: each is a
/// `Reachable` reason on the server and `ServerNotReady` on its tenants, and fixing it
/// lets provisioning go on.
#[tokio::test]
async fn server_problems_are_conditions_with_reasons_and_recover() {
    let h = Harness::start().await;
    let pg = shared();
    let create = |name: &str, spec: serde_json::Value| {
        let servers = servers(&h.client);
        let server: DatabaseServer = serde_json::from_value(json!({
            "apiVersion": "landlord.dev/v1alpha1", "kind": "DatabaseServer",
            "metadata": {"name": name}, "spec": spec
        }))
        .expect("DatabaseServer");
        async move {
            servers
                .create(&PostParams::default(), &server)
                .await
                .expect("created");
        }
    };
    let admin = json!({"secret": {"name": "pg-three-admin", "namespace": "landlord"}});
    create(
        "pg-three",
        json!({"host": "127.0.0.1", "port": pg.port, "tls": {"mode": "disable"}, "adminCredentials": admin}),
    )
    .await;
    let message = wait_server(&h.client, "pg-three", "False", "SecretMissing").await;
    assert!(
        message.contains("landlord/pg-three-admin"),
        "names the Secret: {message}"
    );
    h.create_tenant("wonka", json!({"database": {"serverRef": "pg-three"}}))
        .await;
    wait_reason(&h, "wonka", "DatabaseReady", "False", "ServerNotReady").await;
    let (_, _, message) = h.condition("wonka", "Ready").await.expect("Ready");
    assert!(message.contains("DatabaseReady"), "{message}");

    put_secret(
        &h.client,
        "pg-three-admin",
        &[("username", ADMIN_USER), ("password", "wrong-password")],
    )
    .await;
    let message = wait_server(&h.client, "pg-three", "False", "AuthFailed").await;
    assert!(!message.contains("wrong-password"), "{message}");

    put_secret(
        &h.client,
        "pg-three-admin",
        &[("username", ADMIN_USER), ("password", &pg.admin_password)],
    )
    .await;
    wait_server(&h.client, "pg-three", "True", "Connected").await;
    h.wait_condition("wonka", "Ready", "True").await;

    // A closed port: unreachable.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("address")
        .port();
    create(
        "pg-closed",
        json!({"host": "127.0.0.1", "port": closed, "tls": {"mode": "disable"}, "adminCredentials": admin}),
    )
    .await;
    wait_server(&h.client, "pg-closed", "False", "Unreachable").await;
    // verify-full with the system roots: the test CA is not among them.
    create(
        "pg-untrusted",
        json!({"host": "127.0.0.1", "port": pg.port, "tls": {"mode": "verify-full"}, "adminCredentials": admin}),
    )
    .await;
    wait_server(&h.client, "pg-untrusted", "False", "TLSFailed").await;
    // The Event follows the status write.
    eventually("a TLSFailed event", || async {
        events_about(&h.client, "pg-untrusted")
            .await
            .iter()
            .any(|(reason, _)| reason == "TLSFailed")
    })
    .await;

    h.tenants()
        .delete("wonka", &DeleteParams::default())
        .await
        .expect("deleted");
    eventually("the tenant is gone", || async {
        !exists(&h.tenants(), "wonka").await
    })
    .await;
    assert!(!role_exists("tenant_wonka").await);
}

/// A DatabaseServer that tenants use waits for them before it goes.
#[tokio::test]
async fn a_server_in_use_waits_for_its_tenants() {
    let h = Harness::start().await;
    create_server(&h.client, "pg-four", "disable").await;
    h.create_tenant("soylent", json!({"database": {"serverRef": "pg-four"}}))
        .await;
    h.create_tenant(
        "cyberdyne",
        json!({"database": {"serverRef": "pg-four"}, "deletionPolicy": "Retain"}),
    )
    .await;
    h.wait_condition("soylent", "Ready", "True").await;
    h.wait_condition("cyberdyne", "Ready", "True").await;

    servers(&h.client)
        .delete("pg-four", &DeleteParams::default())
        .await
        .expect("deletion accepted");
    eventually("the server reports who still uses it", || async {
        servers(&h.client)
            .get_opt("pg-four")
            .await
            .ok()
            .flatten()
            .and_then(|s| find_condition(&s.status?.conditions, "InUse").map(|c| c.message.clone()))
            .is_some_and(|m| m.contains("cyberdyne") && m.contains("soylent"))
    })
    .await;
    assert!(exists(&servers(&h.client), "pg-four").await);

    // Erase: the database goes first, then the namespaces.
    h.tenants()
        .delete("soylent", &DeleteParams::default())
        .await
        .expect("deleted");
    eventually("soylent is gone", || async {
        !exists(&h.tenants(), "soylent").await
    })
    .await;
    assert!(!database_exists("tenant_soylent").await);
    assert!(!role_exists("tenant_soylent").await);

    // Retain: database, role and credentials stay; the Secret no longer belongs to the
    // Tenant.
    h.tenants()
        .delete("cyberdyne", &DeleteParams::default())
        .await
        .expect("deleted");
    eventually("cyberdyne is gone", || async {
        !exists(&h.tenants(), "cyberdyne").await
    })
    .await;
    assert!(database_exists("tenant_cyberdyne").await);
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), "tenant-cyberdyne");
    let kept = secrets.get("cyberdyne-db").await.expect("Secret kept");
    assert!(kept.owner_references().is_empty(), "{kept:?}");
    let retained = credentials(&h.client, "tenant-cyberdyne", "cyberdyne").await;
    tenant_login(&retained, "tenant_cyberdyne")
        .await
        .expect("retained credentials still work");

    eventually("the unused server is finally deleted", || async {
        !exists(&servers(&h.client), "pg-four").await
    })
    .await;

    // Clean up the shared server by hand: nothing can erase without its DatabaseServer.
    let su = shared().superuser("postgres").await;
    for statement in [
        "DROP DATABASE tenant_cyberdyne WITH (FORCE)",
        "DROP ROLE tenant_cyberdyne",
    ] {
        su.batch_execute(statement).await.expect("cleanup");
    }
}

/// A DatabaseServer removed by force while a Tenant uses it leaves the tenant saying so.
#[tokio::test]
async fn a_server_removed_by_force_is_reported_by_its_tenant() {
    let h = Harness::start().await;
    create_server(&h.client, "pg-five", "disable").await;
    h.create_tenant("tyrell", json!({"database": {"serverRef": "pg-five"}}))
        .await;
    h.wait_condition("tyrell", "Ready", "True").await;
    servers(&h.client)
        .delete("pg-five", &DeleteParams::default())
        .await
        .expect("deletion accepted");
    servers(&h.client)
        .patch(
            "pg-five",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("finalizer removed by hand");
    eventually("the server is gone", || async {
        !exists(&servers(&h.client), "pg-five").await
    })
    .await;
    // The server went without a change to the tenant, and its last watch event looks like
    // the one before (the server-to-tenants trigger fires on a changed spec or
    // reachability): the tenant's next reconcile notices, here one a change to it starts.
    h.tenants()
        .patch(
            "tyrell",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"example.com/touched": "1"}}})),
        )
        .await
        .expect("labelled");
    wait_reason(&h, "tyrell", "DatabaseReady", "False", "ServerNotFound").await;

    // Clean up the shared server by hand: nothing can erase without its DatabaseServer.
    let su = shared().superuser("postgres").await;
    for statement in [
        "DROP DATABASE tenant_tyrell WITH (FORCE)",
        "DROP ROLE tenant_tyrell",
    ] {
        su.batch_execute(statement).await.expect("cleanup");
    }
}

/// Hostile names never reach SQL: the schema refuses them with a message naming the field;
/// the longest valid name is provisioned and quoted correctly.
#[tokio::test]
async fn hostile_tenant_names_are_refused_and_the_longest_name_is_provisioned() {
    let h = Harness::start().await;
    for name in [
        "robert'); DROP TABLE students;--".to_owned(),
        "a;b".to_owned(),
        "tenant\"quoted".to_owned(),
        "unicodé".to_owned(),
        "x".repeat(200),
        "x".repeat(57),
    ] {
        let body = json!({
            "apiVersion": "landlord.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": name}, "spec": {"database": {"serverRef": "pg-six"}}
        });
        let tenant = serde_json::from_value(body).expect("Tenant");
        match h.tenants().create(&PostParams::default(), &tenant).await {
            Err(kube::Error::Api(status)) => {
                assert!(
                    status.code == 422 || status.code == 400,
                    "{name}: {status:?}"
                );
                assert!(
                    status.message.contains("metadata.name"),
                    "{name}: {status:?}"
                );
            }
            other => panic!("{name:?} was not refused: {other:?}"),
        }
    }

    create_server(&h.client, "pg-six", "disable").await;
    let longest = format!("a-{}", "9".repeat(54));
    assert_eq!(longest.len(), 56);
    h.create_tenant(&longest, json!({"database": {"serverRef": "pg-six"}}))
        .await;
    h.wait_condition(&longest, "Ready", "True").await;
    let identifier = format!("tenant_a_{}", "9".repeat(54));
    assert!(identifier.len() <= 63);
    assert!(role_exists(&identifier).await);
    let secret = credentials(&h.client, &format!("tenant-{longest}"), &longest).await;
    assert_eq!(secret["dbname"], identifier);
    tenant_login(&secret, &identifier)
        .await
        .expect("the longest name works");
    h.tenants()
        .delete(&longest, &DeleteParams::default())
        .await
        .expect("deleted");
    eventually("the tenant is gone", || async {
        !exists(&h.tenants(), &longest).await
    })
    .await;
    assert!(!role_exists(&identifier).await);
}

/// With `--pod-labels`, the operator keeps its own egress NetworkPolicy to each server.
#[tokio::test]
async fn the_operator_gets_an_egress_policy_per_database_server() {
    let mut h = Harness::start().await;
    h.stop_operator().await;
    h.pod_labels = Some(BTreeMap::from([(
        "app.kubernetes.io/name".to_owned(),
        "landlord".to_owned(),
    )]));
    h.start_operator().await;
    create_server(&h.client, "pg-seven", "disable").await;
    let policies: Api<NetworkPolicy> = Api::namespaced(h.client.clone(), "landlord");
    eventually("the egress policy exists", || async {
        exists(&policies, "landlord-database-pg-seven").await
    })
    .await;
    let policy = policies
        .get("landlord-database-pg-seven")
        .await
        .expect("policy");
    let spec = policy.spec.expect("spec");
    assert_eq!(
        spec.pod_selector
            .as_ref()
            .and_then(|s| s.match_labels.clone()),
        h.pod_labels.clone()
    );
    assert_eq!(spec.policy_types, Some(vec!["Egress".to_owned()]));
    let rule = &spec.egress.expect("egress")[0];
    assert_eq!(
        rule.to.as_ref().expect("to")[0]
            .ip_block
            .as_ref()
            .map(|b| b.cidr.as_str()),
        Some("127.0.0.1/32")
    );
    assert_eq!(
        rule.ports.as_ref().expect("ports")[0].port,
        Some(
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i32::from(
                shared().port
            ))
        )
    );
    assert_eq!(
        policy.metadata.owner_references.expect("owner")[0].kind,
        "DatabaseServer"
    );

    // No spec.network: no policy.
    servers(&h.client)
        .patch(
            "pg-seven",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"network": null}})),
        )
        .await
        .expect("network removed");
    eventually("the egress policy is deleted", || async {
        !exists(&policies, "landlord-database-pg-seven").await
    })
    .await;
}

/// The flow of the README with the real kubectl: the examples applied unchanged, except
/// that the DatabaseServer points at the test server; the Tenant becomes Ready with its
/// database, and `kubectl delete --wait` returns once the erasure dropped it.
#[tokio::test]
async fn kubectl_apply_wait_get_and_delete() {
    const KUBECTL: &str = "/usr/bin/kubectl";
    assert!(
        std::path::Path::new(KUBECTL).exists(),
        "kubectl is missing at {KUBECTL}: install kubectl 1.33 to run this test"
    );
    let h = Harness::start().await;
    let dir = std::env::temp_dir().join(format!("landlord-kubectl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let kubeconfig = dir.join("kubeconfig");
    h.emulator
        .write_kubeconfig(&kubeconfig)
        .expect("kubeconfig");
    let repo = env!("CARGO_MANIFEST_DIR");
    // The example's Secrets, for the test server.
    put_secret(
        &h.client,
        "pg-main-admin",
        &[
            ("username", ADMIN_USER),
            ("password", &shared().admin_password),
        ],
    )
    .await;
    put_secret(
        &h.client,
        "pg-main-ca",
        &[(
            "ca.crt",
            std::str::from_utf8(&shared().ca_pem).expect("PEM"),
        )],
    )
    .await;
    let example =
        std::fs::read_to_string(format!("{repo}/examples/databaseserver.yaml")).expect("example");
    let server_yaml = dir.join("databaseserver.yaml");
    std::fs::write(
        &server_yaml,
        example
            .replace("pg-main.databases.svc.cluster.local", "127.0.0.1")
            .replace("port: 5432", &format!("port: {}", shared().port)),
    )
    .expect("server manifest");
    let server_yaml = server_yaml.display().to_string();
    let home = dir.clone();
    let kubectl = move |args: &[&str]| {
        let output = std::process::Command::new(KUBECTL)
            .args(args)
            .current_dir(repo)
            .env("KUBECONFIG", &kubeconfig)
            .env("HOME", &home)
            .env("KUBECACHEDIR", home.join("cache"))
            .output()
            .expect("kubectl runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {stdout}{stderr}"
        );
        stdout
    };
    let applied = tokio::task::spawn_blocking({
        let kubectl = kubectl.clone();
        move || {
            kubectl(&[
                "apply",
                "-f",
                &server_yaml,
                "-f",
                "examples/backupstorage.yaml",
                "-f",
                "examples/tenant.yaml",
            ])
        }
    })
    .await
    .expect("apply");
    assert!(
        applied.contains("tenant.landlord.dev/acme created"),
        "{applied}"
    );
    // The example's bucket is not reachable here: the same BackupStorage, pointed at a
    // directory (without Object Lock, which a directory cannot enforce), is.
    let directory = std::env::temp_dir().join(format!("landlord-kubectl-{}", std::process::id()));
    std::fs::create_dir_all(&directory).expect("backup directory");
    let patch = serde_json::json!({"spec": {"s3": null, "objectLock": null,
        "filesystem": {"path": directory.display().to_string()}}})
    .to_string();
    tokio::task::spawn_blocking({
        let kubectl = kubectl.clone();
        move || {
            kubectl(&[
                "patch",
                "backupstorage",
                "backups",
                "--type=merge",
                "-p",
                &patch,
            ])
        }
    })
    .await
    .expect("patch");
    let waited = tokio::task::spawn_blocking({
        let kubectl = kubectl.clone();
        move || {
            kubectl(&[
                "wait",
                "--for=condition=Ready",
                "--timeout=30s",
                "tenant/acme",
            ])
        }
    })
    .await
    .expect("wait");
    assert!(waited.contains("condition met"), "{waited}");
    let table = tokio::task::spawn_blocking({
        let kubectl = kubectl.clone();
        move || kubectl(&["get", "tenants"])
    })
    .await
    .expect("get");
    let row = table
        .lines()
        .find(|l| l.starts_with("acme"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        row.contains("Ready") && row.contains("tenant-acme") && row.contains("True"),
        "{table}"
    );
    let deleted = tokio::task::spawn_blocking({
        let kubectl = kubectl.clone();
        move || kubectl(&["delete", "tenant", "acme", "--wait", "--timeout=60s"])
    })
    .await
    .expect("delete");
    assert!(deleted.contains("deleted"), "{deleted}");
    let namespaces: Api<Namespace> = Api::all(h.client.clone());
    assert!(!exists(&namespaces, "tenant-acme").await);
    assert!(!exists(&namespaces, "acme-staging").await);
    assert!(!database_exists("tenant_acme").await);
    assert!(!role_exists("tenant_acme").await);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

async fn annotate(h: &Harness, tenant: &str, key: &str, value: &str) {
    h.tenants()
        .patch(
            tenant,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {key: value}}})),
        )
        .await
        .expect("annotated");
}

/// The attack of a reused name: Tenant globex keeps a table of its client's rows and is
/// deleted with `Retain`; the platform removes its namespace. A new Tenant globex gets no
/// old rows and no old credentials, and says what is in the way; only the opt-in naming
/// the old UID adopts the data, with credentials that work.
#[tokio::test]
async fn a_reused_name_gets_no_retained_data_unless_it_adopts_by_uid() {
    let h = Harness::start().await;
    create_server(&h.client, "pg-reuse", "disable").await;
    let spec = json!({"database": {"serverRef": "pg-reuse"}, "deletionPolicy": "Retain"});
    let old = h.create_tenant("globex", spec.clone()).await;
    let old_uid = old.uid().expect("uid");
    h.wait_condition("globex", "Ready", "True").await;
    let old_secret = credentials(&h.client, "tenant-globex", "globex").await;
    let client = tenant_login(&old_secret, "tenant_globex")
        .await
        .expect("login");
    client
        .batch_execute(
            "CREATE TABLE clients (name text); INSERT INTO clients VALUES ('the old client')",
        )
        .await
        .expect("old client's data");
    drop(client);
    h.tenants()
        .delete("globex", &DeleteParams::default())
        .await
        .expect("deleted");
    eventually("the old Tenant is gone", || async {
        !exists(&h.tenants(), "globex").await
    })
    .await;
    let namespaces: Api<Namespace> = Api::all(h.client.clone());
    namespaces
        .delete("tenant-globex", &DeleteParams::default())
        .await
        .expect("namespace deleted");
    eventually("the old namespace is gone", || async {
        !exists(&namespaces, "tenant-globex").await
    })
    .await;
    let before = verifier("tenant_globex").await;

    let new = h.create_tenant("globex", spec).await;
    let new_uid = new.uid().expect("uid");
    assert_ne!(new_uid, old_uid);
    let message = wait_reason(&h, "globex", "DatabaseReady", "False", "RetainedDataExists").await;
    assert!(
        message.contains("tenant_globex")
            && message.contains(&format!("landlord.dev/adopt-retained-from={old_uid}")),
        "{message}"
    );
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), "tenant-globex");
    stays(
        "the new Tenant gets no credentials and the old role keeps its password",
        Duration::from_secs(3),
        || async {
            !exists(&secrets, "globex-db").await && verifier("tenant_globex").await == before
        },
    )
    .await;
    tenant_login(&old_secret, "tenant_globex")
        .await
        .expect("the retained data is untouched");

    // The opt-in with a wrong UID changes nothing; the right one adopts.
    annotate(&h, "globex", "landlord.dev/adopt-retained-from", &new_uid).await;
    wait_reason(&h, "globex", "DatabaseReady", "False", "RetainedDataExists").await;
    assert_eq!(verifier("tenant_globex").await, before);
    annotate(&h, "globex", "landlord.dev/adopt-retained-from", &old_uid).await;
    h.wait_condition("globex", "Ready", "True").await;
    let adopted = credentials(&h.client, "tenant-globex", "globex").await;
    assert_ne!(adopted["password"], old_secret["password"]);
    let client = tenant_login(&adopted, "tenant_globex")
        .await
        .expect("the adopting Tenant's credentials work");
    let rows = client
        .query("SELECT name FROM clients", &[])
        .await
        .expect("adopted data");
    assert_eq!(rows.len(), 1);
    assert!(tenant_login(&old_secret, "tenant_globex").await.is_err());
    let tenant = h.tenants().get("globex").await.expect("tenant");
    assert_eq!(
        tenant
            .status
            .as_ref()
            .and_then(|s| s.adopted_from.as_deref()),
        Some(old_uid.as_str())
    );
    let secret = secrets.get("globex-db").await.expect("Secret");
    assert_eq!(
        secret.annotations().get("landlord.dev/tenant-uid"),
        Some(&new_uid)
    );
    assert!(secret.owner_references().is_empty());
    eventually("a RetainedDataAdopted event is published", || async {
        events_about(&h.client, "globex")
            .await
            .iter()
            .any(|(reason, note)| reason == "RetainedDataAdopted" && note.contains(&old_uid))
    })
    .await;

    // Cleanup: the role is now this Tenant's, so an erasure drops it.
    h.tenants()
        .patch(
            "globex",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"deletionPolicy": "Erase"}})),
        )
        .await
        .expect("erase");
    h.tenants()
        .delete("globex", &DeleteParams::default())
        .await
        .expect("deleted");
    eventually("the tenant is erased", || async {
        !exists(&h.tenants(), "globex").await
    })
    .await;
    assert!(!role_exists("tenant_globex").await);
}

/// What is in the tenant's way and not Landlord's is never touched, and says so: a
/// foreign `<tenant>-db` Secret (`SecretTaken`), a role made by hand (`NameConflict`), a
/// server that refuses a statement (`ServerError`, here a lock held elsewhere).
#[tokio::test]
async fn foreign_objects_and_server_errors_are_reasons_on_the_tenant() {
    let h = Harness::start().await;
    // SecretTaken: the Secret is there before the server is.
    h.create_tenant("initrode", json!({"database": {"serverRef": "pg-eight"}}))
        .await;
    wait_reason(&h, "initrode", "DatabaseReady", "False", "ServerNotFound").await;
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), "tenant-initrode");
    let foreign = Secret {
        metadata: ObjectMeta {
            name: Some("initrode-db".to_owned()),
            labels: Some(BTreeMap::from([
                (
                    "app.kubernetes.io/managed-by".to_owned(),
                    "landlord".to_owned(),
                ),
                ("landlord.dev/tenant".to_owned(), "initrode".to_owned()),
            ])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            "password".to_owned(),
            ByteString(b"theirs".to_vec()),
        )])),
        ..Secret::default()
    };
    secrets
        .create(&PostParams::default(), &foreign)
        .await
        .expect("foreign Secret");
    create_server(&h.client, "pg-eight", "disable").await;
    let message = wait_reason(&h, "initrode", "DatabaseReady", "False", "SecretTaken").await;
    assert!(message.contains("tenant-initrode/initrode-db"), "{message}");
    let kept = secrets.get("initrode-db").await.expect("Secret");
    assert_eq!(
        kept.data, foreign.data,
        "the foreign Secret was overwritten"
    );
    assert!(!kept.annotations().contains_key("landlord.dev/tenant-uid"));
    assert!(!role_exists("tenant_initrode").await, "a role was created");

    // NameConflict: a role of the tenant's name made by hand.
    let su = shared().superuser("postgres").await;
    su.batch_execute("CREATE ROLE tenant_vandelay LOGIN PASSWORD 'theirs'")
        .await
        .expect("role by hand");
    h.create_tenant("vandelay", json!({"database": {"serverRef": "pg-eight"}}))
        .await;
    let message = wait_reason(&h, "vandelay", "DatabaseReady", "False", "NameConflict").await;
    assert!(message.contains("tenant_vandelay"), "{message}");
    shared()
        .connect("tenant_vandelay", "theirs", "postgres")
        .await
        .expect("the role is untouched");
    let vandelay_secrets: Api<Secret> = Api::namespaced(h.client.clone(), "tenant-vandelay");
    assert!(!exists(&vandelay_secrets, "vandelay-db").await);

    // ServerError: another session holds the tenant's advisory lock; lock_timeout ends the
    // wait, the tenant says so, and provisioning goes on once the lock is free.
    let holder = shared().superuser("postgres").await;
    holder
        .query(
            "SELECT pg_advisory_lock(hashtextextended('landlord.dev/tenant-role:tenant_pendant', 0))",
            &[],
        )
        .await
        .expect("lock");
    h.create_tenant("pendant", json!({"database": {"serverRef": "pg-eight"}}))
        .await;
    let message = wait_reason(&h, "pendant", "DatabaseReady", "False", "ServerError").await;
    assert!(message.contains("55P03"), "{message}");
    drop(holder);
    h.wait_condition("pendant", "Ready", "True").await;

    for tenant in ["initrode", "vandelay", "pendant"] {
        h.tenants()
            .delete(tenant, &DeleteParams::default())
            .await
            .expect("deleted");
    }
    for tenant in ["initrode", "vandelay", "pendant"] {
        eventually("the tenant is gone", || async {
            !exists(&h.tenants(), tenant).await
        })
        .await;
    }
    assert!(!role_exists("tenant_pendant").await);
    // The role made by hand is not Landlord's: the erasure left it.
    assert!(role_exists("tenant_vandelay").await);
    su.batch_execute("DROP ROLE tenant_vandelay")
        .await
        .expect("cleanup");
}

/// The attack of a DatabaseServer naming a Secret in another namespace, with exactly the
/// chart's permissions: refused with `SecretForbidden`, and no Secret is ever requested.
#[tokio::test]
async fn a_server_naming_a_secret_elsewhere_is_refused_without_reading_it() {
    let h = Harness::start_with(true).await;
    let victims: Api<Namespace> = Api::all(h.client.clone());
    victims
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some("victim".to_owned()),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            },
        )
        .await
        .expect("namespace");
    let pg = shared();
    let stolen = Secret {
        metadata: ObjectMeta {
            name: Some("their-db".to_owned()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            (
                "username".to_owned(),
                ByteString(ADMIN_USER.as_bytes().to_vec()),
            ),
            (
                "password".to_owned(),
                ByteString(pg.admin_password.as_bytes().to_vec()),
            ),
        ])),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(h.client.clone(), "victim")
        .create(&PostParams::default(), &stolen)
        .await
        .expect("Secret");
    h.emulator.reset_request_counts();
    for (name, tls) in [
        ("pg-steal", json!({"mode": "disable"})),
        (
            "pg-steal-ca",
            json!({"mode": "verify-full", "caSecret": {"name": "their-db", "namespace": "victim", "key": "password"}}),
        ),
    ] {
        let admin_namespace = if name == "pg-steal" {
            "victim"
        } else {
            "landlord"
        };
        let server: DatabaseServer = serde_json::from_value(json!({
            "apiVersion": "landlord.dev/v1alpha1", "kind": "DatabaseServer",
            "metadata": {"name": name},
            "spec": {"host": "127.0.0.1", "port": pg.port, "tls": tls,
                     "adminCredentials": {"secret": {"name": "their-db", "namespace": admin_namespace}}}
        }))
        .expect("DatabaseServer");
        servers(&h.client)
            .create(&PostParams::default(), &server)
            .await
            .expect("created");
        let message = wait_server(&h.client, name, "False", "SecretForbidden").await;
        assert!(message.contains("victim/their-db"), "{message}");
    }
    assert_eq!(
        h.emulator.request_count("get", "secrets"),
        0,
        "the operator requested a Secret: {:?}",
        h.emulator.request_counts()
    );
}

/// A rotation whose Secret cannot be written leaves the role's password alone, however
/// often it is retried; once the Secret can be written, the rotation completes and only
/// the new password works.
#[tokio::test]
async fn a_rotation_that_cannot_write_the_secret_keeps_the_role_password() {
    let h = Harness::start().await;
    create_server(&h.client, "pg-nine", "disable").await;
    h.create_tenant("stark", json!({"database": {"serverRef": "pg-nine"}}))
        .await;
    h.wait_condition("stark", "Ready", "True").await;
    let first = credentials(&h.client, "tenant-stark", "stark").await;
    let before = verifier("tenant_stark").await;
    h.emulator.inject_fault(kube_emulator::FaultRule::fail(
        Some("patch"),
        Some("secrets"),
        500,
    ));
    annotate(&h, "stark", "landlord.dev/rotate-password", "1").await;
    wait_reason(&h, "stark", "DatabaseReady", "False", "CredentialsFailed").await;
    let failed_writes = h.emulator.request_count("patch", "secrets");
    assert!(failed_writes >= 1, "the fault never fired");
    stays(
        "the role keeps its password while the Secret cannot be written",
        Duration::from_secs(12),
        || async { verifier("tenant_stark").await == before },
    )
    .await;
    assert!(
        h.emulator.request_count("patch", "secrets") > failed_writes,
        "no retry happened while the faults fired"
    );
    tenant_login(&first, "tenant_stark")
        .await
        .expect("the old password still works");
    h.emulator.clear_faults();
    h.wait_condition("stark", "Ready", "True").await;
    eventually("the Secret holds the rotated password", || async {
        credentials(&h.client, "tenant-stark", "stark").await["password"] != first["password"]
    })
    .await;
    let rotated = credentials(&h.client, "tenant-stark", "stark").await;
    assert!(
        !rotated.contains_key("password-pending"),
        "{:?}",
        rotated.keys()
    );
    tenant_login(&rotated, "tenant_stark")
        .await
        .expect("the new password works");
    assert!(tenant_login(&first, "tenant_stark").await.is_err());
    h.tenants()
        .delete("stark", &DeleteParams::default())
        .await
        .expect("deleted");
    eventually("the tenant is gone", || async {
        !exists(&h.tenants(), "stark").await
    })
    .await;
}

/// Drift outside Kubernetes, which only the periodic resync notices (so this test, and
/// only this kind, runs the operator with a short resync): a role and database dropped
/// behind Landlord's back come back, the role with the password the Secret already holds.
#[tokio::test]
async fn a_dropped_role_comes_back_with_the_secrets_password() {
    let mut h = Harness::start().await;
    h.stop_operator().await;
    h.resync = Duration::from_secs(2);
    h.start_operator().await;
    create_server(&h.client, "pg-ten", "disable").await;
    h.create_tenant("duff", json!({"database": {"serverRef": "pg-ten"}}))
        .await;
    h.wait_condition("duff", "Ready", "True").await;
    let secret = credentials(&h.client, "tenant-duff", "duff").await;
    let su = shared().superuser("postgres").await;
    for statement in [
        "DROP DATABASE tenant_duff WITH (FORCE)",
        "DROP ROLE tenant_duff",
    ] {
        su.batch_execute(statement).await.expect("dropped by hand");
    }
    eventually("the role and database are back", || async {
        tenant_login(&secret, "tenant_duff").await.is_ok()
    })
    .await;
    assert_eq!(
        credentials(&h.client, "tenant-duff", "duff").await["password"],
        secret["password"]
    );
    h.tenants()
        .delete("duff", &DeleteParams::default())
        .await
        .expect("deleted");
    eventually("the tenant is gone", || async {
        !exists(&h.tenants(), "duff").await
    })
    .await;
    assert!(!role_exists("tenant_duff").await);
}

/// The Secret's value under `key`, if the Secret and the key exist.
async fn secret_value(client: &Client, namespace: &str, name: &str, key: &str) -> Option<String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let data = api.get_opt(name).await.expect("readable")?.data?;
    data.get(key)
        .map(|v| String::from_utf8(v.0.clone()).expect("UTF-8"))
}

/// A crash between the role's write and the Secret's: the first provisioning creates the
/// Secret with the pending password, the role gets it, and every promotion of the Secret
/// fails. Retries keep the role's password (the pending one); a restarted operator
/// promotes exactly that password, and it works.
#[tokio::test]
async fn a_crash_between_the_role_and_the_secret_keeps_one_password() {
    let mut h = Harness::start().await;
    create_server(&h.client, "pg-crash", "disable").await;
    h.emulator.inject_fault(kube_emulator::FaultRule::fail(
        Some("patch"),
        Some("secrets"),
        500,
    ));
    h.create_tenant("wayne", json!({"database": {"serverRef": "pg-crash"}}))
        .await;
    wait_reason(&h, "wayne", "DatabaseReady", "False", "CredentialsFailed").await;
    let pending = secret_value(&h.client, "tenant-wayne", "wayne-db", "password-pending")
        .await
        .expect("the pending password was recorded before the role got it");
    assert!(
        secret_value(&h.client, "tenant-wayne", "wayne-db", "password")
            .await
            .is_none()
    );
    let login = |password: String| async move {
        shared()
            .connect("tenant_wayne", &password, "tenant_wayne")
            .await
            .is_ok()
    };
    assert!(
        login(pending.clone()).await,
        "the role has the pending password"
    );
    let failed = h.emulator.request_count("patch", "secrets");
    assert!(failed >= 1, "the fault never fired");
    stays(
        "retries keep the role's password and the pending value",
        Duration::from_secs(12),
        || async {
            login(pending.clone()).await
                && secret_value(&h.client, "tenant-wayne", "wayne-db", "password-pending")
                    .await
                    .as_ref()
                    == Some(&pending)
        },
    )
    .await;
    assert!(
        h.emulator.request_count("patch", "secrets") > failed,
        "no retry while the faults fired"
    );

    h.stop_operator().await;
    h.emulator.clear_faults();
    h.start_operator().await;
    h.wait_condition("wayne", "Ready", "True").await;
    let secret = credentials(&h.client, "tenant-wayne", "wayne").await;
    assert_eq!(
        secret["password"], pending,
        "a different password was promoted"
    );
    assert!(
        !secret.contains_key("password-pending"),
        "{:?}",
        secret.keys()
    );
    tenant_login(&secret, "tenant_wayne")
        .await
        .expect("the credentials work");
    h.tenants()
        .delete("wayne", &DeleteParams::default())
        .await
        .expect("deleted");
    eventually("the tenant is gone", || async {
        !exists(&h.tenants(), "wayne").await
    })
    .await;
    assert!(!role_exists("tenant_wayne").await);
}

/// A crash in the middle of a rotation, after the role got the new password and before
/// the Secret was promoted (the state a stopped operator leaves): the restarted operator
/// finishes the rotation with that password, not another one.
#[tokio::test]
async fn a_rotation_interrupted_after_the_role_is_finished_after_restart() {
    let mut h = Harness::start().await;
    create_server(&h.client, "pg-crash-two", "disable").await;
    h.create_tenant("oscorp", json!({"database": {"serverRef": "pg-crash-two"}}))
        .await;
    h.wait_condition("oscorp", "Ready", "True").await;
    let old = credentials(&h.client, "tenant-oscorp", "oscorp").await;
    h.stop_operator().await;
    // What the stopped operator had done: the pending password recorded, then given to
    // the role; the rotation request is on the Tenant.
    let pending = Password::generate().expect("password");
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), "tenant-oscorp");
    let encoded = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(pending.expose())
    };
    secrets
        .patch(
            "oscorp-db",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"password-pending": encoded}})),
        )
        .await
        .expect("pending recorded");
    let pending_recorded =
        secret_value(&h.client, "tenant-oscorp", "oscorp-db", "password-pending")
            .await
            .expect("pending");
    assert_eq!(pending_recorded, pending.expose());
    shared()
        .superuser("postgres")
        .await
        .batch_execute(&format!(
            "ALTER ROLE tenant_oscorp PASSWORD '{}'",
            pending.expose()
        ))
        .await
        .expect("role has the pending password");
    annotate(&h, "oscorp", "landlord.dev/rotate-password", "crash").await;

    h.start_operator().await;
    eventually(
        "the rotation is finished with the pending password",
        || async {
            secret_value(&h.client, "tenant-oscorp", "oscorp-db", "password")
                .await
                .as_deref()
                == Some(pending.expose())
        },
    )
    .await;
    eventually("the pending value is gone", || async {
        secret_value(&h.client, "tenant-oscorp", "oscorp-db", "password-pending")
            .await
            .is_none()
    })
    .await;
    let secret = secrets.get("oscorp-db").await.expect("Secret");
    assert_eq!(
        secret
            .annotations()
            .get("landlord.dev/password-rotation")
            .map(String::as_str),
        Some("crash")
    );
    let rotated = credentials(&h.client, "tenant-oscorp", "oscorp").await;
    tenant_login(&rotated, "tenant_oscorp")
        .await
        .expect("the promoted password works");
    assert!(tenant_login(&old, "tenant_oscorp").await.is_err());
    h.tenants()
        .delete("oscorp", &DeleteParams::default())
        .await
        .expect("deleted");
    eventually("the tenant is gone", || async {
        !exists(&h.tenants(), "oscorp").await
    })
    .await;
    assert!(!role_exists("tenant_oscorp").await);
}

/// A restart while a DatabaseServer is being deleted: the new operator has no connection
/// to it yet, and the server waits for its tenants, whose erasure needs the server. The
/// server stays usable for them: the tenant's database is dropped, then the server goes.
#[tokio::test]
async fn a_server_being_deleted_still_serves_its_tenants_after_a_restart() {
    let mut h = Harness::start().await;
    create_server(&h.client, "pg-going", "disable").await;
    h.create_tenant("lexcorp", json!({"database": {"serverRef": "pg-going"}}))
        .await;
    h.wait_condition("lexcorp", "Ready", "True").await;
    servers(&h.client)
        .delete("pg-going", &DeleteParams::default())
        .await
        .expect("deletion accepted");
    eventually("the server reports its tenant", || async {
        servers(&h.client)
            .get_opt("pg-going")
            .await
            .ok()
            .flatten()
            .and_then(|s| find_condition(&s.status?.conditions, "InUse").map(|c| c.message.clone()))
            .is_some_and(|m| m.contains("lexcorp"))
    })
    .await;
    h.stop_operator().await;
    h.start_operator().await;
    h.tenants()
        .delete("lexcorp", &DeleteParams::default())
        .await
        .expect("deleted");
    eventually("the tenant is erased", || async {
        !exists(&h.tenants(), "lexcorp").await
    })
    .await;
    assert!(!database_exists("tenant_lexcorp").await);
    assert!(!role_exists("tenant_lexcorp").await);
    eventually("the server is deleted", || async {
        !exists(&servers(&h.client), "pg-going").await
    })
    .await;
}

/// An upgrade from a release that recorded no UIDs: the role and database carry only the
/// comment `landlord.dev/tenant=<name>`, the Secret an owner reference to its Tenant. The
/// Tenant's own Secret proves continuity: everything is re-recorded with the UID, the
/// owner reference goes, and the credentials keep working.
#[tokio::test]
async fn an_upgrade_from_name_only_markers_records_the_uid() {
    let mut h = Harness::start().await;
    create_server(&h.client, "pg-upgrade", "disable").await;
    let tenant = h
        .create_tenant(
            "umbrella-corp",
            json!({"database": {"serverRef": "pg-upgrade"}}),
        )
        .await;
    let uid = tenant.uid().expect("uid");
    h.wait_condition("umbrella-corp", "Ready", "True").await;
    let before = credentials(&h.client, "tenant-umbrella-corp", "umbrella-corp").await;
    h.stop_operator().await;
    // What the earlier release left.
    let su = shared().superuser("postgres").await;
    su.batch_execute(
        "COMMENT ON ROLE tenant_umbrella_corp IS 'landlord.dev/tenant=umbrella-corp'; \
         COMMENT ON DATABASE tenant_umbrella_corp IS 'landlord.dev/tenant=umbrella-corp'",
    )
    .await
    .expect("old comments");
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), "tenant-umbrella-corp");
    secrets
        .patch(
            "umbrella-corp-db",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {
                "annotations": {"landlord.dev/tenant-uid": null},
                "ownerReferences": [{"apiVersion": "landlord.dev/v1alpha1", "kind": "Tenant",
                    "name": "umbrella-corp", "uid": uid, "controller": true, "blockOwnerDeletion": true}]
            }})),
        )
        .await
        .expect("old Secret");
    let comments = || async {
        let row = shared()
            .superuser("postgres")
            .await
            .query_one(
                "SELECT shobj_description((SELECT oid FROM pg_roles WHERE rolname = $1), 'pg_authid'), \
                        shobj_description((SELECT oid FROM pg_database WHERE datname = $1), 'pg_database')",
                &[&"tenant_umbrella_corp"],
            )
            .await
            .expect("comments");
        (row.get::<_, String>(0), row.get::<_, String>(1))
    };
    h.start_operator().await;
    let expected = format!("landlord.dev/tenant-uid={uid} landlord.dev/tenant=umbrella-corp");
    eventually("the role and database record the UID", || async {
        comments().await == (expected.clone(), expected.clone())
    })
    .await;
    eventually(
        "the Secret records the UID and has no owner reference",
        || async {
            let secret = secrets.get("umbrella-corp-db").await.expect("Secret");
            secret.annotations().get("landlord.dev/tenant-uid") == Some(&uid)
                && secret.owner_references().is_empty()
        },
    )
    .await;
    let (status, reason, _) = h
        .condition("umbrella-corp", "DatabaseReady")
        .await
        .expect("condition");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Provisioned"));
    let after = credentials(&h.client, "tenant-umbrella-corp", "umbrella-corp").await;
    assert_eq!(after["password"], before["password"]);
    tenant_login(&after, "tenant_umbrella_corp")
        .await
        .expect("the credentials still work");
    h.tenants()
        .delete("umbrella-corp", &DeleteParams::default())
        .await
        .expect("deleted");
    eventually("the tenant is gone", || async {
        !exists(&h.tenants(), "umbrella-corp").await
    })
    .await;
    assert!(!role_exists("tenant_umbrella_corp").await);
}
