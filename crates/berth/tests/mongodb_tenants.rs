//! MongoDB tenants through Berth's admin operations, against a real container of Berth's
//! MongoDB-compatible image: a tenant's user reads and writes its own database and is refused
//! (13) on another tenant's; revocation and restoration; odd user names; users Berth did not
//! make are left alone.
//!
//! The server is SecantusDB, not mongod. What it does not enforce (see
//! shared notes/mongodb-standin.md) is pinned by the `#[ignore]`d tests marked "stand-in
//! limitation", which state mongod's behaviour: run them with `--ignored` and
//! `BERTH_TEST_MONGODB_IMAGE=<a mongo image>` against a real mongod.

mod common;
mod mongo_support;

use berth_server::engines::mongodb::admin::{AUTHENTICATION_FAILED, AdminError, UNAUTHORIZED};
use mongo_support::*;
use mongodb::Client;
use mongodb::bson::{Document, doc};
use mongodb::options::AuthMechanism;

/// A tenant as Berth names them: database and user `{project}_{env}`.
struct Tenant {
    db: &'static str,
    password: String,
}

impl Tenant {
    fn new(db: &'static str) -> Self {
        Self {
            db,
            password: berth_core::secrets::generate_password(24),
        }
    }

    fn client(&self, mongo: &Mongo) -> Client {
        mongo.client(self.db, self.db, &self.password)
    }
}

async fn two_tenants(mongo: &Mongo) -> (Tenant, Tenant) {
    let admin = mongo.admin().await;
    let a = Tenant::new("shop_production");
    let b = Tenant::new("blog_production");
    for t in [&a, &b] {
        admin.ensure_tenant(t.db, t.db, &t.password).await.unwrap();
        assert!(admin.tenant_exists(t.db, t.db, &t.password).await.unwrap());
    }
    admin.close().await;
    (a, b)
}

#[tokio::test]
async fn a_tenant_uses_its_database_and_is_refused_on_another() {
    let mongo = Mongo::start().await;
    let (a, b) = two_tenants(&mongo).await;
    let b_client = b.client(&mongo);
    b_client
        .database(b.db)
        .collection::<Document>("posts")
        .insert_one(doc! { "_id": 1, "title": "b's" })
        .await
        .unwrap();

    let client = a.client(&mongo);
    let own = client.database(a.db);
    let orders = own.collection::<Document>("orders");
    orders.insert_one(doc! { "_id": 1, "n": 1 }).await.unwrap();
    orders
        .update_one(doc! { "_id": 1 }, doc! { "$inc": { "n": 1 } })
        .await
        .unwrap();
    let found = orders.find_one(doc! { "_id": 1 }).await.unwrap().unwrap();
    assert_eq!(found.get_i32("n").unwrap(), 2);
    own.create_collection("events").await.unwrap();
    orders.delete_one(doc! { "_id": 1 }).await.unwrap();
    own.collection::<Document>("events").drop().await.unwrap();

    let other = client.database(b.db);
    let posts = other.collection::<Document>("posts");
    assert_eq!(
        code_of(posts.insert_one(doc! { "x": 1 }).await),
        UNAUTHORIZED
    );
    assert_eq!(code_of(posts.find_one(doc! {}).await), UNAUTHORIZED);
    assert_eq!(
        code_of(posts.update_one(doc! {}, doc! { "$set": { "x": 1 } }).await),
        UNAUTHORIZED
    );
    assert_eq!(code_of(posts.delete_many(doc! {}).await), UNAUTHORIZED);
    assert_eq!(code_of(posts.count_documents(doc! {}).await), UNAUTHORIZED);
    assert_eq!(code_of(posts.drop().await), UNAUTHORIZED);
    assert_eq!(code_of(other.create_collection("mine").await), UNAUTHORIZED);
    assert_eq!(code_of(other.list_collection_names().await), UNAUTHORIZED);
    assert_eq!(code_of(other.drop().await), UNAUTHORIZED);
    // Server-wide commands are the admin's.
    let server = client.database("admin");
    for command in [
        doc! { "listDatabases": 1 },
        doc! { "serverStatus": 1 },
        doc! { "currentOp": 1 },
        doc! { "createUser": "intruder", "pwd": "x", "roles": ["root"] },
    ] {
        let name = command.keys().next().unwrap().to_string();
        let refused = server.run_command(command).await;
        assert_eq!(code_of(refused), UNAUTHORIZED, "{name}");
    }
    // A's own database's admin paths don't reach further either.
    let grant = own
        .run_command(
            doc! { "grantRolesToUser": a.db, "roles": [{ "role": "readWrite", "db": b.db }] },
        )
        .await;
    assert_eq!(code_of(grant), UNAUTHORIZED);

    // B's data is untouched, and B's user could not be used with A's password.
    let posts = b_client.database(b.db).collection::<Document>("posts");
    assert_eq!(posts.count_documents(doc! {}).await.unwrap(), 1);
    let wrong = mongo.client(b.db, b.db, &a.password);
    assert_eq!(
        code_of(wrong.database(b.db).run_command(doc! { "ping": 1 }).await),
        AUTHENTICATION_FAILED
    );
    // The tenant's user lives in its own database: it does not authenticate against admin.
    let wrong_source = mongo.client("admin", a.db, &a.password);
    assert_eq!(
        code_of(
            wrong_source
                .database(a.db)
                .run_command(doc! { "ping": 1 })
                .await
        ),
        AUTHENTICATION_FAILED
    );
    // Old drivers' mechanism works for tenants too.
    let sha1 = mongo.client_with(a.db, a.db, &a.password, AuthMechanism::ScramSha1);
    sha1.database(a.db)
        .run_command(doc! { "ping": 1 })
        .await
        .unwrap();

    let logs = mongo.logs();
    assert!(!logs.contains(&a.password) && !logs.contains(&b.password));
}

#[tokio::test]
async fn revoke_keeps_the_data_and_ensure_tenant_restores_the_login() {
    let mongo = Mongo::start().await;
    let admin = mongo.admin().await;
    let t = Tenant::new("shop_staging");
    admin.ensure_tenant(t.db, t.db, &t.password).await.unwrap();
    // Idempotent.
    admin.ensure_tenant(t.db, t.db, &t.password).await.unwrap();
    let items = t
        .client(&mongo)
        .database(t.db)
        .collection::<Document>("items");
    items.insert_one(doc! { "_id": "kept" }).await.unwrap();
    assert!(admin.names_in_use().await.unwrap().contains(t.db));

    admin.revoke(t.db, t.db).await.unwrap();
    admin.revoke(t.db, t.db).await.unwrap();
    assert!(!admin.tenant_exists(t.db, t.db, &t.password).await.unwrap());
    let fresh = t.client(&mongo);
    assert_eq!(
        code_of(fresh.database(t.db).run_command(doc! { "ping": 1 }).await),
        AUTHENTICATION_FAILED
    );
    let root = mongo.client("admin", ROOT, &mongo.password);
    let kept = root.database(t.db).collection::<Document>("items");
    assert_eq!(kept.count_documents(doc! {}).await.unwrap(), 1, "data kept");

    admin.ensure_tenant(t.db, t.db, &t.password).await.unwrap();
    assert!(admin.tenant_exists(t.db, t.db, &t.password).await.unwrap());
    let again = t
        .client(&mongo)
        .database(t.db)
        .collection::<Document>("items");
    assert!(
        again
            .find_one(doc! { "_id": "kept" })
            .await
            .unwrap()
            .is_some()
    );
    admin.close().await;
}

#[tokio::test]
async fn ensure_tenant_sets_the_password_and_tenant_exists_checks_it() {
    let mongo = Mongo::start().await;
    let admin = mongo.admin().await;
    let t = Tenant::new("app_dev");
    assert!(!admin.tenant_exists(t.db, t.db, &t.password).await.unwrap());
    admin
        .ensure_tenant(t.db, t.db, "first-password")
        .await
        .unwrap();
    assert!(!admin.tenant_exists(t.db, t.db, &t.password).await.unwrap());
    admin.ensure_tenant(t.db, t.db, &t.password).await.unwrap();
    assert!(admin.tenant_exists(t.db, t.db, &t.password).await.unwrap());
    let old = mongo.client(t.db, t.db, "first-password");
    assert_eq!(
        code_of(old.database(t.db).run_command(doc! { "ping": 1 }).await),
        AUTHENTICATION_FAILED
    );

    // A role added by hand makes it no tenant any more: not "in place", and not Berth's to change.
    let root = mongo.client("admin", ROOT, &mongo.password);
    root.database(t.db)
        .run_command(
            doc! { "grantRolesToUser": t.db, "roles": [{ "role": "read", "db": "admin" }] },
        )
        .await
        .unwrap();
    assert!(!admin.tenant_exists(t.db, t.db, &t.password).await.unwrap());
    let refused = admin.ensure_tenant(t.db, t.db, &t.password).await;
    assert!(
        matches!(refused, Err(AdminError::Foreign { .. })),
        "{refused:?}"
    );
    admin.close().await;
}

#[tokio::test]
async fn users_berth_did_not_make_are_left_alone() {
    let mongo = Mongo::start().await;
    let root = mongo.client("admin", ROOT, &mongo.password);
    root.database("crm_production")
        .run_command(
            doc! { "createUser": "crm_production", "pwd": "by-hand", "roles": ["dbOwner"] },
        )
        .await
        .unwrap();
    let admin = mongo.admin().await;
    let taken = admin
        .ensure_tenant("crm_production", "crm_production", "berth-pw")
        .await;
    assert!(
        matches!(taken, Err(AdminError::Foreign { .. })),
        "{taken:?}"
    );
    let dropped = admin.revoke("crm_production", "crm_production").await;
    assert!(
        matches!(dropped, Err(AdminError::Foreign { .. })),
        "{dropped:?}"
    );
    // Still there with its own password.
    let by_hand = mongo.client("crm_production", "crm_production", "by-hand");
    by_hand
        .database("crm_production")
        .run_command(doc! { "ping": 1 })
        .await
        .unwrap();
    // Names that reach the server are checked first.
    for bad in [
        "a.b", "a b", "a$b", "a/b", "a\\b", "a\"b", "a*b", "a<b", "a>b", "a:b", "a|b", "a?b",
        "a\0b",
    ] {
        let refused = admin.ensure_tenant(bad, "u", "pw").await;
        assert!(
            matches!(refused, Err(AdminError::Name(_))),
            "{bad:?}: {refused:?}"
        );
    }
    let long = "d".repeat(64);
    assert!(matches!(
        admin.ensure_tenant(&long, "u", "pw").await,
        Err(AdminError::Name(_))
    ));
    admin.close().await;
}

#[tokio::test]
async fn odd_user_names_are_plain_strings() {
    let mongo = Mongo::start().await;
    let admin = mongo.admin().await;
    // `,` and `=` are left to the ignored test below (stand-in limitation).
    let names = [
        "a.b",
        "$x",
        "a$b",
        "sp ace",
        "ümlaut",
        "we:ird@/?#%",
        "admin.root",
    ];
    let db = "odd_names";
    for (i, user) in names.iter().enumerate() {
        let password = format!("pw-{i}-{}", berth_core::secrets::generate_password(12));
        admin.ensure_tenant(db, user, &password).await.unwrap();
        assert!(
            admin.tenant_exists(db, user, &password).await.unwrap(),
            "{user}"
        );
        let client = mongo.client(db, user, &password);
        client
            .database(db)
            .collection::<Document>("c")
            .insert_one(doc! { "by": *user })
            .await
            .unwrap_or_else(|e| panic!("{user}: {e}"));
        assert_eq!(
            code_of(
                client
                    .database("other")
                    .collection::<Document>("c")
                    .insert_one(doc! {})
                    .await
            ),
            UNAUTHORIZED,
            "{user}"
        );
        client.shutdown().await;
    }
    // Each name is its own user: none matched, replaced or escaped into another.
    let root = mongo.client("admin", ROOT, &mongo.password);
    let users = root
        .database(db)
        .run_command(doc! { "usersInfo": 1 })
        .await
        .unwrap();
    let mut listed: Vec<String> = users
        .get_array("users")
        .unwrap()
        .iter()
        .map(|u| {
            u.as_document()
                .unwrap()
                .get_str("user")
                .unwrap()
                .to_string()
        })
        .collect();
    listed.sort();
    let mut expected: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    expected.sort();
    assert_eq!(listed, expected);
    // `admin.root` in odd_names is not the server's root.
    assert_eq!(
        code_of(
            mongo
                .client("admin", "admin.root", "x")
                .database("admin")
                .run_command(doc! { "ping": 1 })
                .await
        ),
        AUTHENTICATION_FAILED
    );
    for user in names {
        admin.revoke(db, user).await.unwrap();
    }
    let users = root
        .database(db)
        .run_command(doc! { "usersInfo": 1 })
        .await
        .unwrap();
    assert!(users.get_array("users").unwrap().is_empty());
    admin.close().await;
}

/// Stand-in limitation: SecantusDB does not check the target database of `bulkWrite` (the
/// note measured writes into another database succeeding). mongod refuses them (13).
#[tokio::test]
#[ignore = "stand-in limitation: SecantusDB does not enforce bulkWrite across databases; run against a real mongod"]
async fn bulk_write_into_another_tenants_database_is_refused() {
    let mongo = Mongo::start().await;
    let (a, b) = two_tenants(&mongo).await;
    let client = a.client(&mongo);
    let target = client.database(b.db).collection::<Document>("posts");
    let model = mongodb::options::InsertOneModel::builder()
        .namespace(target.namespace())
        .document(doc! { "x": 1 })
        .build();
    assert_eq!(code_of(client.bulk_write(vec![model]).await), UNAUTHORIZED);
}

/// Stand-in limitation: SecantusDB checks only the source of `renameCollection`, so a tenant
/// can move its collection into another tenant's database. mongod refuses it (13).
#[tokio::test]
#[ignore = "stand-in limitation: SecantusDB checks only the source of renameCollection; run against a real mongod"]
async fn rename_into_another_tenants_database_is_refused() {
    let mongo = Mongo::start().await;
    let (a, b) = two_tenants(&mongo).await;
    let client = a.client(&mongo);
    client
        .database(a.db)
        .collection::<Document>("c")
        .insert_one(doc! {})
        .await
        .unwrap();
    let renamed = client
        .database("admin")
        .run_command(doc! {
            "renameCollection": format!("{}.c", a.db),
            "to": format!("{}.c", b.db),
        })
        .await;
    assert_eq!(code_of(renamed), UNAUTHORIZED);
}

/// Stand-in limitation: SecantusDB's open connections keep the rights they authenticated with
/// after `dropUser`. mongod re-checks the user at the next command.
#[tokio::test]
#[ignore = "stand-in limitation: SecantusDB keeps a dropped user's open connections authorised; run against a real mongod"]
async fn revoke_also_cuts_open_connections() {
    let mongo = Mongo::start().await;
    let (a, _) = two_tenants(&mongo).await;
    let client = a.client(&mongo);
    let items = client.database(a.db).collection::<Document>("items");
    items.insert_one(doc! {}).await.unwrap();
    let admin = mongo.admin().await;
    admin.revoke(a.db, a.db).await.unwrap();
    assert_eq!(code_of(items.insert_one(doc! {}).await), UNAUTHORIZED);
}

/// Stand-in limitation: SCRAM escapes `,` and `=` in user names (`=2C`, `=3D`, RFC 5802) and
/// SecantusDB does not unescape them, so such users cannot log in (pymongo fails the same way).
/// mongod accepts them. Berth's own tenant names never contain either.
#[tokio::test]
#[ignore = "stand-in limitation: SecantusDB does not unescape ',' and '=' in SCRAM user names; run against a real mongod"]
async fn user_names_with_comma_and_equals_log_in() {
    let mongo = Mongo::start().await;
    let admin = mongo.admin().await;
    for user in ["x,y", "y=z", "x,y=z"] {
        admin.ensure_tenant("odd_names", user, "pw").await.unwrap();
        assert!(
            admin.tenant_exists("odd_names", user, "pw").await.unwrap(),
            "{user}"
        );
    }
}
