//! The database layer against a real PostgreSQL 15 (started by `support::postgres`), as
//! Landlord's non-superuser administrative role.

mod support;

use std::sync::Arc;

use landlord::api::TlsMode;
use landlord::database::{
    DatabaseAdmin, DatabaseError, Owner, Password, PostgresAdmin, RolePassword, TenantIdentifiers,
    TenantPresence,
};
use support::postgres::{PostgresServer, shared};
use tokio_postgres::error::SqlState;

fn admin() -> PostgresAdmin {
    PostgresAdmin::new(&shared().admin_config(TlsMode::Disable)).unwrap()
}

fn password() -> Password {
    Password::generate().unwrap()
}

/// The Tenant each test provisions for: its UID is derived from the name.
fn owner(ids: &TenantIdentifiers) -> Owner {
    // Kubernetes UIDs never hold whitespace; some test names do.
    Owner::new(format!(
        "uid-{}",
        ids.tenant().replace(char::is_whitespace, "-")
    ))
}

/// Provisions `name` with a new password and returns its identifiers and password.
async fn provision(admin: &PostgresAdmin, name: &str) -> (TenantIdentifiers, Password) {
    let ids = TenantIdentifiers::for_tenant(name);
    let password = password();
    admin
        .ensure_tenant(&ids, &owner(&ids), 10, RolePassword::Set(&password))
        .await
        .unwrap();
    (ids, password)
}

async fn connect_as(
    ids: &TenantIdentifiers,
    password: &Password,
    database: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    shared()
        .connect(ids.role(), password.expose(), database)
        .await
}

fn sqlstate(err: &tokio_postgres::Error) -> SqlState {
    err.code()
        .cloned()
        .unwrap_or_else(|| panic!("no SQLSTATE in {err}"))
}

#[tokio::test]
async fn reports_the_server_version() {
    let version = admin().server_version().await.unwrap();
    assert!(version.starts_with("15."), "{version}");
    // Everything here runs as a role without SUPERUSER.
    let su = shared().superuser("postgres").await;
    let row = su
        .query_one(
            "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = $1",
            &[&support::postgres::ADMIN_USER],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, bool>(0),
            row.get::<_, bool>(1),
            row.get::<_, bool>(2)
        ),
        (false, true, true)
    );
}

#[tokio::test]
async fn a_tenant_uses_its_own_database() {
    let admin = admin();
    let (ids, password) = provision(&admin, "own-db").await;
    assert_eq!(ids.database(), "tenant_own_db");
    let client = connect_as(&ids, &password, ids.database()).await.unwrap();
    client
        .batch_execute("CREATE TABLE orders (id int PRIMARY KEY, note text); INSERT INTO orders VALUES (1, 'first')")
        .await
        .unwrap();
    let row = client
        .query_one("SELECT note FROM orders WHERE id = 1", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "first");
    let row = client
        .query_one(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolcanlogin, rolconnlimit \
             FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .unwrap();
    assert!(!row.get::<_, bool>(0) && !row.get::<_, bool>(1) && !row.get::<_, bool>(2));
    assert!(!row.get::<_, bool>(3) && !row.get::<_, bool>(4) && row.get::<_, bool>(5));
    assert_eq!(row.get::<_, i32>(6), 10);
    assert_eq!(
        admin.tenant_exists(&ids).await.unwrap(),
        TenantPresence {
            role: true,
            database: true
        }
    );
}

#[tokio::test]
async fn tenants_cannot_reach_each_other() {
    let admin = admin();
    let (alice, alice_pw) = provision(&admin, "iso-alice").await;
    let (bob, bob_pw) = provision(&admin, "iso-bob").await;
    let bob_client = connect_as(&bob, &bob_pw, bob.database()).await.unwrap();
    bob_client
        .batch_execute("CREATE TABLE secrets (s text); INSERT INTO secrets VALUES ('bob''s')")
        .await
        .unwrap();

    // Alice cannot connect to Bob's database.
    let err = connect_as(&alice, &alice_pw, bob.database())
        .await
        .err()
        .unwrap();
    assert_eq!(sqlstate(&err), SqlState::INSUFFICIENT_PRIVILEGE, "{err}");
    // Nor with Bob's role name and her password.
    let err = connect_as(&bob, &alice_pw, bob.database())
        .await
        .err()
        .unwrap();
    assert_eq!(sqlstate(&err), SqlState::INVALID_PASSWORD, "{err}");

    let alice_client = connect_as(&alice, &alice_pw, alice.database())
        .await
        .unwrap();
    // Naming Bob's table from her own database does not reach it.
    let query = format!("SELECT * FROM {}.public.secrets", bob.database());
    let err = alice_client.query(&query, &[]).await.err().unwrap();
    assert_eq!(sqlstate(&err), SqlState::FEATURE_NOT_SUPPORTED, "{err}");
    // She cannot become Bob, create databases or roles, or grant herself Bob's role.
    for (statement, code) in [
        (
            format!("SET ROLE {}", bob.role()),
            SqlState::INSUFFICIENT_PRIVILEGE,
        ),
        (
            "CREATE DATABASE stolen".to_owned(),
            SqlState::INSUFFICIENT_PRIVILEGE,
        ),
        (
            "CREATE ROLE accomplice LOGIN".to_owned(),
            SqlState::INSUFFICIENT_PRIVILEGE,
        ),
        (
            format!("GRANT {} TO {}", bob.role(), alice.role()),
            SqlState::INSUFFICIENT_PRIVILEGE,
        ),
        (
            format!("ALTER ROLE {} PASSWORD 'x'", bob.role()),
            SqlState::INSUFFICIENT_PRIVILEGE,
        ),
    ] {
        let err = alice_client.batch_execute(&statement).await.err().unwrap();
        assert_eq!(sqlstate(&err), code, "{statement}: {err}");
    }
    // Bob's database grants nothing to PUBLIC or to other roles.
    let su = shared().superuser("postgres").await;
    let row = su
        .query_one(
            "SELECT has_database_privilege('public', oid, 'CONNECT'), \
                    has_database_privilege('public', oid, 'TEMPORARY'), \
                    has_database_privilege($2, oid, 'CONNECT'), \
                    array_to_string(datacl, ',') \
             FROM pg_database WHERE datname = $1",
            &[&bob.database(), &alice.role()],
        )
        .await
        .unwrap();
    assert!(!row.get::<_, bool>(0) && !row.get::<_, bool>(1) && !row.get::<_, bool>(2));
    let acl: String = row.get(3);
    assert!(!acl.contains("=c") && !acl.starts_with('='), "{acl}");
    // Inside it, PUBLIC cannot create in schema public.
    let su_bob = shared().superuser(bob.database()).await;
    let row = su_bob
        .query_one(
            "SELECT has_schema_privilege('public', 'public', 'CREATE')",
            &[],
        )
        .await
        .unwrap();
    assert!(!row.get::<_, bool>(0));
}

#[tokio::test]
async fn rotation_invalidates_the_old_password() {
    let admin = admin();
    let (ids, old) = provision(&admin, "rotate").await;
    connect_as(&ids, &old, ids.database()).await.unwrap();
    let new = password();
    admin.set_password(&ids, &owner(&ids), &new).await.unwrap();
    let err = connect_as(&ids, &old, ids.database()).await.err().unwrap();
    assert_eq!(sqlstate(&err), SqlState::INVALID_PASSWORD, "{err}");
    connect_as(&ids, &new, ids.database()).await.unwrap();
    // Neither password reached the server in clear text (DDL is logged).
    let log = shared().log();
    assert!(log.contains("ALTER ROLE \"tenant_rotate\" WITH PASSWORD 'SCRAM-SHA-256$"));
    assert!(!log.contains(old.expose()) && !log.contains(new.expose()));
}

#[tokio::test]
async fn hostile_passwords_work_and_stay_secret() {
    let admin = admin();
    let (ids, _) = provision(&admin, "hostile-password").await;
    // A random part in each, to look for in the server's log afterwards.
    let unique = password();
    let unique = unique.expose();
    let hostile = [
        format!("'; DROP ROLE landlord_admin; -- {unique}"),
        format!("back\\slash\\' E'x {unique}"),
        format!("\"quoted\" $$dollar$$ ; {unique}"),
        format!("ünïcødé パスワード {unique}"),
    ];
    for hostile in &hostile {
        let password = Password::new(hostile.as_str());
        admin
            .set_password(&ids, &owner(&ids), &password)
            .await
            .unwrap();
        connect_as(&ids, &password, ids.database())
            .await
            .unwrap_or_else(|e| panic!("{hostile:?}: {e}"));
    }
    assert!(!shared().log().contains(unique));
}

#[tokio::test]
async fn ensure_is_idempotent_and_only_repairs_drift() {
    let admin = admin();
    let (ids, password) = provision(&admin, "idem").await;
    let again = admin
        .ensure_tenant(&ids, &owner(&ids), 10, RolePassword::OnCreate(&password))
        .await
        .unwrap();
    assert!(!again.changed(), "{again:?}");
    // The password is untouched without one.
    connect_as(&ids, &password, ids.database()).await.unwrap();
    // A new connection limit is applied.
    let changed = admin
        .ensure_tenant(&ids, &owner(&ids), 3, RolePassword::OnCreate(&password))
        .await
        .unwrap();
    assert!(changed.role_updated && !changed.role_created && !changed.database_created);
    // Drift: someone grants CONNECT to PUBLIC and CREATEDB to the role.
    let su = shared().superuser("postgres").await;
    su.batch_execute(&format!(
        "GRANT CONNECT ON DATABASE {0} TO PUBLIC; ALTER ROLE {0} CREATEDB",
        ids.role()
    ))
    .await
    .unwrap();
    let repaired = admin
        .ensure_tenant(&ids, &owner(&ids), 3, RolePassword::OnCreate(&password))
        .await
        .unwrap();
    assert!(
        repaired.database_secured && repaired.role_updated,
        "{repaired:?}"
    );
    let row = su
        .query_one(
            "SELECT has_database_privilege('public', d.oid, 'CONNECT'), r.rolcreatedb, r.rolconnlimit \
             FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = $1",
            &[&ids.database()],
        )
        .await
        .unwrap();
    assert!(!row.get::<_, bool>(0) && !row.get::<_, bool>(1));
    assert_eq!(row.get::<_, i32>(2), 3);
    assert!(
        !admin
            .ensure_tenant(&ids, &owner(&ids), 3, RolePassword::OnCreate(&password))
            .await
            .unwrap()
            .changed()
    );
}

#[tokio::test]
async fn an_interrupted_provisioning_is_completed() {
    let admin = admin();
    let (ids, _) = provision(&admin, "interrupted").await;
    // As if Landlord stopped after CREATE DATABASE: no completion comment, and the
    // tenant database's schema public still open to PUBLIC.
    let su = shared().superuser("postgres").await;
    su.batch_execute(&format!("COMMENT ON DATABASE {} IS NULL", ids.database()))
        .await
        .unwrap();
    let inside = shared().superuser(ids.database()).await;
    inside
        .batch_execute("GRANT CREATE ON SCHEMA public TO PUBLIC")
        .await
        .unwrap();
    let outcome = admin
        .ensure_tenant(&ids, &owner(&ids), 10, RolePassword::OnCreate(&password()))
        .await
        .unwrap();
    assert!(
        outcome.database_secured && !outcome.database_created,
        "{outcome:?}"
    );
    let row = inside
        .query_one(
            "SELECT has_schema_privilege('public', 'public', 'CREATE'), \
                    shobj_description((SELECT oid FROM pg_database WHERE datname = current_database()), 'pg_database')",
            &[],
        )
        .await
        .unwrap();
    assert!(!row.get::<_, bool>(0));
    assert_eq!(
        row.get::<_, String>(1),
        "landlord.dev/tenant-uid=uid-interrupted landlord.dev/tenant=interrupted"
    );
    assert!(
        !admin
            .ensure_tenant(&ids, &owner(&ids), 10, RolePassword::OnCreate(&password()))
            .await
            .unwrap()
            .changed()
    );
}

#[tokio::test]
async fn concurrent_ensures_create_one_role_without_errors() {
    // Two "replicas" with their own pools, four calls each, all at once.
    let replicas = [Arc::new(admin()), Arc::new(admin())];
    let ids = TenantIdentifiers::for_tenant("concurrent");
    let password = password();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let admin = replicas[i % 2].clone();
        let ids = ids.clone();
        let password = password.clone();
        tasks.push(tokio::spawn(async move {
            admin
                .ensure_tenant(&ids, &owner(&ids), 10, RolePassword::Set(&password))
                .await
        }));
    }
    let mut created = 0;
    for task in tasks {
        let outcome = task.await.unwrap().unwrap();
        created += usize::from(outcome.role_created);
    }
    assert_eq!(created, 1);
    let su = shared().superuser("postgres").await;
    let row = su
        .query_one(
            "SELECT (SELECT count(*) FROM pg_roles WHERE rolname = $1), \
                    (SELECT count(*) FROM pg_database WHERE datname = $1)",
            &[&ids.role()],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (1, 1));
    connect_as(&ids, &password, ids.database()).await.unwrap();
}

#[tokio::test]
async fn hostile_names_are_provisioned_safely() {
    let admin = admin();
    // Through the name mapping: a safe identifier, the hostile name only in a literal.
    let hostile_tenant = "\"; DROP DATABASE postgres; --'";
    let (ids, password) = provision(&admin, hostile_tenant).await;
    assert!(
        ids.database()
            .starts_with("tenant__drop_database_postgres_"),
        "{}",
        ids.database()
    );
    connect_as(&ids, &password, ids.database()).await.unwrap();
    let long = "x".repeat(200);
    let (long_ids, long_pw) = provision(&admin, &long).await;
    assert!(long_ids.database().len() <= 63);
    connect_as(&long_ids, &long_pw, long_ids.database())
        .await
        .unwrap();

    // Hostile identifiers used as they are: quoting keeps them one identifier each.
    let name = "x\"; DROP DATABASE postgres; --";
    let role = "r'; DROP ROLE landlord_admin; --ü";
    let raw = TenantIdentifiers::new(hostile_tenant, name, role).unwrap();
    let raw_pw = password_for_raw();
    admin
        .ensure_tenant(&raw, &owner(&raw), 5, RolePassword::Set(&raw_pw))
        .await
        .unwrap();
    assert!(
        !admin
            .ensure_tenant(&raw, &owner(&raw), 5, RolePassword::OnCreate(&password))
            .await
            .unwrap()
            .changed()
    );
    let client = shared().connect(role, raw_pw.expose(), name).await.unwrap();
    client
        .batch_execute("CREATE TABLE t (x int)")
        .await
        .unwrap();
    drop(client);
    let su = shared().superuser("postgres").await;
    for (query, value) in [
        (
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            "postgres",
        ),
        (
            "SELECT count(*) FROM pg_roles WHERE rolname = $1",
            "landlord_admin",
        ),
        ("SELECT count(*) FROM pg_database WHERE datname = $1", name),
        ("SELECT count(*) FROM pg_roles WHERE rolname = $1", role),
    ] {
        let row = su.query_one(query, &[&value]).await.unwrap();
        assert_eq!(row.get::<_, i64>(0), 1, "{query} {value}");
    }
    admin.drop_tenant(&raw, &owner(&raw)).await.unwrap();
    assert!(admin.verify_dropped(&raw).await.unwrap().is_dropped());
}

fn password_for_raw() -> Password {
    Password::new(format!("{}'\\\"", password().expose()))
}

#[tokio::test]
async fn names_that_are_not_landlords_are_never_touched() {
    let admin = admin();
    let ids = TenantIdentifiers::for_tenant("squatted");
    let su = shared().superuser("postgres").await;
    su.batch_execute(&format!(
        "CREATE ROLE {} LOGIN PASSWORD 'theirs'",
        ids.role()
    ))
    .await
    .unwrap();
    let err = admin
        .ensure_tenant(&ids, &owner(&ids), 5, RolePassword::Set(&password()))
        .await
        .unwrap_err();
    assert!(matches!(err, DatabaseError::Conflict { .. }), "{err}");
    assert_eq!(err.reason(), "NameConflict");
    let err = admin
        .set_password(&ids, &owner(&ids), &password())
        .await
        .unwrap_err();
    assert!(matches!(err, DatabaseError::Conflict { .. }), "{err}");
    let dropped = admin.drop_tenant(&ids, &owner(&ids)).await.unwrap();
    assert!(!dropped.role_dropped, "{dropped:?}");
    assert_eq!(dropped.kept.len(), 1, "{dropped:?}");
    // Still there, password unchanged.
    shared()
        .connect(ids.role(), "theirs", "postgres")
        .await
        .unwrap();

    // A database of the same name owned by someone else.
    let db_ids = TenantIdentifiers::for_tenant("squatted-db");
    su.batch_execute(&format!("CREATE DATABASE {}", db_ids.database()))
        .await
        .unwrap();
    let err = admin
        .ensure_tenant(
            &db_ids,
            &owner(&db_ids),
            5,
            RolePassword::OnCreate(&password()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, DatabaseError::Conflict { .. }), "{err}");
    let dropped = admin.drop_tenant(&db_ids, &owner(&db_ids)).await.unwrap();
    assert!(!dropped.database_dropped, "{dropped:?}");
    let row = su
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&db_ids.database()],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
}

#[tokio::test]
async fn set_password_needs_a_provisioned_role() {
    let err = admin()
        .set_password(
            &TenantIdentifiers::for_tenant("never-provisioned"),
            &Owner::new("uid-never-provisioned"),
            &password(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "NotProvisioned", "{err}");
}

#[tokio::test]
async fn drop_terminates_connections_and_verify_returns_evidence() {
    let admin = admin();
    let (ids, password) = provision(&admin, "erase-me").await;
    let tenant = connect_as(&ids, &password, ids.database()).await.unwrap();
    tenant
        .batch_execute("CREATE TABLE personal (data text)")
        .await
        .unwrap();

    let before = admin.verify_dropped(&ids).await.unwrap();
    assert!(!before.is_dropped());
    assert!(
        before
            .checks
            .iter()
            .all(|c| c.found == vec![ids.role().to_owned()])
    );

    let dropped = admin.drop_tenant(&ids, &owner(&ids)).await.unwrap();
    assert!(dropped.database_dropped && dropped.role_dropped);
    // The open session was terminated.
    assert!(tenant.simple_query("SELECT 1").await.is_err());
    assert!(connect_as(&ids, &password, ids.database()).await.is_err());

    let evidence = admin.verify_dropped(&ids).await.unwrap();
    assert!(evidence.is_dropped(), "{evidence:?}");
    assert!(evidence.server_version.starts_with("15."));
    assert!(
        evidence.checked_at.ends_with('Z'),
        "{}",
        evidence.checked_at
    );
    let catalogs: Vec<&str> = evidence.checks.iter().map(|c| c.catalog.as_str()).collect();
    assert_eq!(catalogs, ["pg_database", "pg_roles"]);
    assert!(
        evidence
            .checks
            .iter()
            .all(|c| c.name == ids.role() && c.found.is_empty())
    );
    let json = serde_json::to_value(&evidence).unwrap();
    assert_eq!(
        json["checks"][0]["query"],
        "SELECT datname::text FROM pg_catalog.pg_database WHERE datname = $1"
    );

    // Idempotent.
    let again = admin.drop_tenant(&ids, &owner(&ids)).await.unwrap();
    assert!(!again.database_dropped && !again.role_dropped);
    assert!(admin.verify_dropped(&ids).await.unwrap().is_dropped());
    assert_eq!(
        admin.tenant_exists(&ids).await.unwrap(),
        TenantPresence {
            role: false,
            database: false
        }
    );
}

#[tokio::test]
async fn wrong_admin_password_is_auth_failed_without_the_password() {
    let mut config = shared().admin_config(TlsMode::Disable);
    config.password = Password::new("wrong-password-3141");
    let err = PostgresAdmin::new(&config)
        .unwrap()
        .server_version()
        .await
        .unwrap_err();
    assert!(matches!(err, DatabaseError::AuthFailed { .. }), "{err}");
    assert_eq!(
        (err.reason(), err.category()),
        ("AuthFailed", "database_auth_failed")
    );
    assert!(!err.to_string().contains("3141") && !format!("{err:?}").contains("3141"));
    assert!(!format!("{config:?}").contains("3141"));
}

#[tokio::test]
async fn closed_port_is_unreachable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = shared().admin_config(TlsMode::Disable);
    config.port = port;
    let err = PostgresAdmin::new(&config)
        .unwrap()
        .server_version()
        .await
        .unwrap_err();
    assert!(matches!(err, DatabaseError::Unreachable { .. }), "{err}");
    assert_eq!(err.category(), "database_unreachable");
}

#[tokio::test]
async fn a_server_that_never_answers_is_unreachable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts connections and never says anything.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let mut config = shared().admin_config(TlsMode::Disable);
    config.port = port;
    config.connect_timeout = std::time::Duration::from_millis(500);
    let started = std::time::Instant::now();
    let err = PostgresAdmin::new(&config)
        .unwrap()
        .server_version()
        .await
        .unwrap_err();
    assert!(matches!(err, DatabaseError::Unreachable { .. }), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    silent.abort();
}

#[tokio::test]
async fn the_pool_bounds_connections_and_counts_statements() {
    let mut config = shared().admin_config(TlsMode::Disable);
    config.max_connections = 1;
    let admin = Arc::new(PostgresAdmin::new(&config).unwrap());
    let mut tasks = Vec::new();
    for i in 0..6 {
        let admin = admin.clone();
        tasks.push(tokio::spawn(async move {
            let ids = TenantIdentifiers::for_tenant(&format!("pooled-{i}"));
            admin
                .ensure_tenant(&ids, &owner(&ids), 5, RolePassword::Set(&password()))
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let stats = admin.stats();
    assert_eq!(stats.peak_connections_open, 1, "{stats:?}");
    assert!(stats.connections_open <= 1);

    // Statements per tenant, first provisioning and steady state.
    let admin = PostgresAdmin::new(&shared().admin_config(TlsMode::Disable)).unwrap();
    let ids = TenantIdentifiers::for_tenant("counted");
    admin
        .ensure_tenant(&ids, &owner(&ids), 5, RolePassword::Set(&password()))
        .await
        .unwrap();
    let first = admin.stats().statements;
    admin
        .ensure_tenant(&ids, &owner(&ids), 5, RolePassword::OnCreate(&password()))
        .await
        .unwrap();
    let steady = admin.stats().statements - first;
    println!("statements per tenant: first ensure {first}, steady-state ensure {steady}");
    assert!(first <= 16, "first ensure took {first} statements");
    assert_eq!(steady, 2, "steady-state ensure: two catalog reads");
    assert_eq!(
        admin.stats().connections_opened,
        2,
        "one admin, one inside the new database"
    );
}

#[tokio::test]
async fn tls_modes() {
    let server = shared();
    for mode in [TlsMode::Require, TlsMode::VerifyFull] {
        let admin = PostgresAdmin::new(&server.admin_config(mode)).unwrap();
        let version = admin
            .server_version()
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        assert!(version.starts_with("15."));
    }
    // The tenant path works over TLS too.
    let admin = PostgresAdmin::new(&server.admin_config(TlsMode::VerifyFull)).unwrap();
    let (ids, _) = provision(&admin, "over-tls").await;
    assert!(admin.tenant_exists(&ids).await.unwrap().database);

    let expect_tls_failure = |config: landlord::database::ServerConfig| async move {
        let err = PostgresAdmin::new(&config)
            .unwrap()
            .server_version()
            .await
            .unwrap_err();
        assert!(matches!(err, DatabaseError::TlsFailed { .. }), "{err}");
        assert_eq!(
            (err.reason(), err.category()),
            ("TLSFailed", "database_tls_failed")
        );
        err.to_string()
    };
    // A CA that did not sign the server's certificate.
    let mut config = server.admin_config(TlsMode::VerifyFull);
    config.ca_pem = Some(server.other_ca_pem.clone());
    let message = expect_tls_failure(config).await;
    assert!(message.contains("invalid peer certificate"), "{message}");
    // The right CA, but a host name the certificate does not name.
    let mut config = server.admin_config(TlsMode::VerifyFull);
    config.host = "localhost".to_owned();
    let message = expect_tls_failure(config).await;
    assert!(message.contains("not valid for name"), "{message}");
    // The system roots do not know the test CA.
    let mut config = server.admin_config(TlsMode::VerifyFull);
    config.ca_pem = None;
    expect_tls_failure(config).await;
    // A CA that is not PEM is refused up front.
    let mut config = server.admin_config(TlsMode::VerifyFull);
    config.ca_pem = Some(b"not a certificate".to_vec());
    let err = PostgresAdmin::new(&config).unwrap_err();
    assert_eq!(err.reason(), "TLSFailed", "{err}");
}

#[tokio::test]
async fn a_private_server_starts_and_stops() {
    let server = PostgresServer::start().unwrap();
    let admin = PostgresAdmin::new(&server.admin_config(TlsMode::Disable)).unwrap();
    assert!(admin.server_version().await.unwrap().starts_with("15."));
    let port = server.port;
    drop(admin);
    drop(server);
    let mut config = shared().admin_config(TlsMode::Disable);
    config.port = port;
    let err = PostgresAdmin::new(&config)
        .unwrap()
        .server_version()
        .await
        .unwrap_err();
    assert!(matches!(err, DatabaseError::Unreachable { .. }), "{err}");
}

/// The attack on the database layer: a retained role and database (another Tenant's UID
/// in their comments) are neither used, changed nor dropped by a new Tenant of the same
/// name; the explicit opt-in naming exactly that UID adopts them, data included.
#[tokio::test]
async fn retained_data_is_untouched_unless_adopted_by_uid() {
    let admin = admin();
    let ids = TenantIdentifiers::for_tenant("retained");
    let old_owner = Owner::new("uid-old");
    let old = password();
    admin
        .ensure_tenant(&ids, &old_owner, 5, RolePassword::Set(&old))
        .await
        .unwrap();
    let client = connect_as(&ids, &old, ids.database()).await.unwrap();
    client
        .batch_execute("CREATE TABLE secrets (v text); INSERT INTO secrets VALUES ('old client')")
        .await
        .unwrap();
    drop(client);
    let su = shared().superuser("postgres").await;
    let verifier = || async {
        su.query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&ids.role()],
        )
        .await
        .unwrap()
        .get::<_, String>(0)
    };
    let before = verifier().await;

    // A new Tenant of the same name, without the opt-in, or naming another UID.
    for new_owner in [
        Owner::new("uid-new"),
        Owner::adopting("uid-new", Some("uid-other")),
    ] {
        for password in [
            RolePassword::Set(&password()),
            RolePassword::OnCreate(&password()),
        ] {
            let err = admin
                .ensure_tenant(&ids, &new_owner, 5, password)
                .await
                .unwrap_err();
            assert!(matches!(err, DatabaseError::Retained { .. }), "{err}");
            assert_eq!(err.reason(), "RetainedDataExists");
            let message = err.to_string();
            assert!(
                message.contains("role \"tenant_retained\"")
                    && message.contains("landlord.dev/adopt-retained-from=uid-old"),
                "{message}"
            );
        }
        let err = admin
            .set_password(&ids, &new_owner, &password())
            .await
            .unwrap_err();
        assert!(matches!(err, DatabaseError::Retained { .. }), "{err}");
        let dropped = admin.drop_tenant(&ids, &new_owner).await.unwrap();
        assert!(
            !dropped.role_dropped && !dropped.database_dropped,
            "{dropped:?}"
        );
        assert_eq!(dropped.kept.len(), 2, "{dropped:?}");
    }
    assert_eq!(
        verifier().await,
        before,
        "the retained role's password changed"
    );
    connect_as(&ids, &old, ids.database())
        .await
        .expect("the retained credentials are untouched");

    // The opt-in names the old UID: adopted, recorded with the new UID, data kept.
    let adopter = Owner::adopting("uid-new", Some("uid-old"));
    let new = password();
    let outcome = admin
        .ensure_tenant(&ids, &adopter, 5, RolePassword::Set(&new))
        .await
        .unwrap();
    assert_eq!(
        outcome.adopted_from.as_deref(),
        Some("uid-old"),
        "{outcome:?}"
    );
    let comments = su
        .query_one(
            "SELECT shobj_description((SELECT oid FROM pg_roles WHERE rolname = $1), 'pg_authid'), \
                    shobj_description((SELECT oid FROM pg_database WHERE datname = $1), 'pg_database')",
            &[&ids.role()],
        )
        .await
        .unwrap();
    for i in 0..2 {
        assert_eq!(
            comments.get::<_, String>(i),
            "landlord.dev/tenant-uid=uid-new landlord.dev/tenant=retained"
        );
    }
    let client = connect_as(&ids, &new, ids.database()).await.unwrap();
    let rows = client.query("SELECT v FROM secrets", &[]).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert!(connect_as(&ids, &old, ids.database()).await.is_err());
    // Now it is the new Tenant's: steady state, and the old UID no longer owns it.
    let again = admin
        .ensure_tenant(
            &ids,
            &Owner::new("uid-new"),
            5,
            RolePassword::OnCreate(&new),
        )
        .await
        .unwrap();
    assert!(!again.changed(), "{again:?}");
    let err = admin
        .ensure_tenant(&ids, &old_owner, 5, RolePassword::OnCreate(&old))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "RetainedDataExists");
    let dropped = admin
        .drop_tenant(&ids, &Owner::new("uid-new"))
        .await
        .unwrap();
    assert!(
        dropped.role_dropped && dropped.database_dropped,
        "{dropped:?}"
    );
}

/// An advisory lock held elsewhere (a stuck replica) cannot block provisioning forever:
/// `lock_timeout` ends the wait with a server error, and the next attempt succeeds once
/// the lock is free.
#[tokio::test]
async fn a_held_lock_times_out_instead_of_blocking() {
    let admin = admin();
    let ids = TenantIdentifiers::for_tenant("locked");
    let holder = shared().superuser("postgres").await;
    holder
        .query(
            "SELECT pg_advisory_lock(hashtextextended($1, 0))",
            &[&format!("landlord.dev/tenant-role:{}", ids.role())],
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let err = admin
        .ensure_tenant(&ids, &owner(&ids), 5, RolePassword::Set(&password()))
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert_eq!(err.reason(), "ServerError", "{err}");
    assert!(
        err.to_string().contains("55P03"),
        "lock_not_available: {err}"
    );
    assert!(
        waited >= landlord::database::LOCK_TIMEOUT && waited < landlord::database::LOCK_TIMEOUT * 3,
        "waited {waited:?}"
    );
    drop(holder);
    let outcome = admin
        .ensure_tenant(&ids, &owner(&ids), 5, RolePassword::Set(&password()))
        .await
        .unwrap();
    assert!(outcome.role_created);
    admin.drop_tenant(&ids, &owner(&ids)).await.unwrap();
}

/// `require` against a server that offers no TLS: refused before any password is sent
/// (tokio-postgres with `sslmode=require` stops at the server's "no TLS" answer).
#[tokio::test]
async fn require_against_a_server_without_tls_is_tls_failed() {
    let server = PostgresServer::start_with_settings("ssl = off").unwrap();
    let plain = PostgresAdmin::new(&server.admin_config(TlsMode::Disable)).unwrap();
    assert!(
        plain.server_version().await.is_ok(),
        "the server works without TLS"
    );
    for mode in [TlsMode::Require, TlsMode::VerifyFull] {
        let err = PostgresAdmin::new(&server.admin_config(mode))
            .unwrap()
            .server_version()
            .await
            .unwrap_err();
        assert_eq!(err.reason(), "TLSFailed", "{mode:?}: {err}");
        assert!(!err.to_string().contains(&server.admin_password), "{err}");
    }
}
