//! MongoDB administration through the official driver, as the service's root user through the
//! published port on 127.0.0.1: readiness, tenants (a user with `readWrite` on its own database
//! only, authenticating against that database), revocation, the databases in use and the
//! server version.
//!
//! Names travel as BSON string values, never spliced into a key, a URI or a namespace, so a
//! user called `a.b` or `$x` is just a string; both kinds of name are validated first
//! ([`super::names`]). Passwords travel only inside `createUser`/`updateUser` and the SCRAM
//! handshake, over loopback; errors are built from the server's code and message (never from
//! the command), and nothing here logs them.
//!
//! Berth only changes users of the tenant shape, exactly `readWrite` on their own database: a
//! user made by hand with any other roles is refused, never taken over or dropped. (A marker in
//! `customData` would be more precise, but the stand-in server does not return it.)

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use mongodb::Client;
use mongodb::bson::{Bson, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, Credential, ServerAddress};
use thiserror::Error;

use super::names::{NameError, validate_database, validate_user};

/// Bound on every operation (connecting included): a server that does not answer is an error.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Wrong user name or password (also: the user does not exist in that database).
pub const AUTHENTICATION_FAILED: i32 = 18;
/// The authenticated user lacks the privilege.
pub const UNAUTHORIZED: i32 = 13;
const USER_NOT_FOUND: i32 = 11;
const USER_ALREADY_EXISTS: i32 = 51003;

const TENANT_ROLE: &str = "readWrite";
/// SCRAM-SHA-1 besides SHA-256: old drivers speak only SHA-1, and the stand-in stores only the
/// mechanisms named here.
const MECHANISMS: [&str; 2] = ["SCRAM-SHA-256", "SCRAM-SHA-1"];

#[derive(Debug, Error)]
pub enum AdminError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("MongoDB did not answer within {0:?}")]
    Timeout(Duration),
    #[error(
        "user {user:?} in database {db:?} has roles {roles} and was not made by Berth; refusing to change it"
    )]
    Foreign {
        db: String,
        user: String,
        roles: String,
    },
    /// What the driver or the server said: the server's error code, if any, and its message.
    #[error("{message}")]
    Driver { code: Option<i32>, message: String },
}

impl AdminError {
    /// The server's error code (`18` authentication failed, `13` unauthorized ...).
    pub fn code(&self) -> Option<i32> {
        match self {
            Self::Driver { code, .. } => *code,
            _ => None,
        }
    }
}

impl From<mongodb::error::Error> for AdminError {
    fn from(e: mongodb::error::Error) -> Self {
        // The kind's text, not the error's: the latter appends the server's whole reply.
        Self::Driver {
            code: error_code(&e),
            message: e.kind.to_string(),
        }
    }
}

/// The server's error code behind a driver error, looking through the driver's wrapping (an
/// authentication failure carries the server's reply as its source).
pub fn error_code(e: &mongodb::error::Error) -> Option<i32> {
    let direct = match e.kind.as_ref() {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => Some(w.code),
        ErrorKind::InsertMany(m) => m
            .write_errors
            .as_ref()
            .and_then(|errors| errors.first())
            .map(|w| w.code)
            .or_else(|| m.write_concern_error.as_ref().map(|w| w.code)),
        _ => None,
    };
    direct.or_else(|| {
        // The driver keeps its source boxed, and the box is what `source()` hands out.
        let source = std::error::Error::source(e)?;
        source
            .downcast_ref::<Box<mongodb::error::Error>>()
            .map(AsRef::as_ref)
            .or_else(|| source.downcast_ref::<mongodb::error::Error>())
            .and_then(error_code)
    })
}

/// A driver client for one user on 127.0.0.1:`host_port`, authenticating against `auth_db`.
/// Built from parts, not a URI, so no name or password needs escaping.
pub fn client(
    host_port: u16,
    user: &str,
    password: &str,
    auth_db: &str,
) -> Result<Client, AdminError> {
    let credential = Credential::builder()
        .username(user.to_string())
        .password(password.to_string())
        .source(auth_db.to_string())
        .build();
    let options = ClientOptions::builder()
        .hosts(vec![ServerAddress::Tcp {
            host: "127.0.0.1".to_string(),
            port: Some(host_port),
        }])
        .direct_connection(true)
        .credential(credential)
        .app_name("berth".to_string())
        .connect_timeout(TIMEOUT)
        .server_selection_timeout(TIMEOUT)
        .max_pool_size(2)
        .build();
    Ok(Client::with_options(options)?)
}

async fn bounded<T>(work: impl Future<Output = Result<T, AdminError>>) -> Result<T, AdminError> {
    tokio::time::timeout(TIMEOUT, work)
        .await
        .map_err(|_| AdminError::Timeout(TIMEOUT))?
}

/// A user as `usersInfo` describes it: its roles as `(role, db)` pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub roles: Vec<(String, String)>,
}

impl UserInfo {
    /// Exactly `readWrite` on `db`: what Berth gives a tenant, nothing more.
    fn is_tenant_of(&self, db: &str) -> bool {
        self.roles == [(TENANT_ROLE.to_string(), db.to_string())]
    }

    fn roles_text(&self) -> String {
        let roles: Vec<String> = self.roles.iter().map(|(r, d)| format!("{r}@{d}")).collect();
        format!("[{}]", roles.join(", "))
    }
}

/// The server's root user, logged in through the published port (`authSource=admin`).
pub struct Admin {
    client: Client,
    host_port: u16,
}

impl Admin {
    /// Connects and authenticates (an `Err` with code [`AUTHENTICATION_FAILED`] for a wrong
    /// password).
    pub async fn connect(host_port: u16, user: &str, password: &str) -> Result<Self, AdminError> {
        validate_user(user)?;
        let admin = Self {
            client: client(host_port, user, password, "admin")?,
            host_port,
        };
        admin.ping().await?;
        Ok(admin)
    }

    /// Closes the connections now rather than when the driver's tasks notice the drop.
    pub async fn close(self) {
        self.client.shutdown().await;
    }

    async fn run(&self, db: &str, command: Document) -> Result<Document, AdminError> {
        bounded(async { Ok(self.client.database(db).run_command(command).await?) }).await
    }

    /// The readiness probe: the server answers the root user.
    pub async fn ping(&self) -> Result<(), AdminError> {
        self.run("admin", doc! { "ping": 1 }).await.map(drop)
    }

    /// The version the server reports (`buildInfo`). SecantusDB claims a mongod version
    /// (8.2.11 for 0.7.0b3) that says nothing about what it implements.
    pub async fn server_version(&self) -> Result<String, AdminError> {
        let info = self.run("admin", doc! { "buildInfo": 1 }).await?;
        info.get_str("version")
            .map(str::to_string)
            .map_err(|_| AdminError::Driver {
                code: None,
                message: "buildInfo has no version".into(),
            })
    }

    /// The user `user` of database `db`, if it exists.
    pub async fn user(&self, db: &str, user: &str) -> Result<Option<UserInfo>, AdminError> {
        validate_database(db)?;
        validate_user(user)?;
        let reply = self
            .run(db, doc! { "usersInfo": { "user": user, "db": db } })
            .await?;
        let users = reply.get_array("users").map_err(|_| AdminError::Driver {
            code: None,
            message: "usersInfo has no users".into(),
        })?;
        let Some(Bson::Document(found)) = users.first() else {
            return Ok(None);
        };
        let roles = found
            .get_array("roles")
            .map(|roles| {
                roles
                    .iter()
                    .filter_map(Bson::as_document)
                    .map(|r| {
                        (
                            r.get_str("role").unwrap_or_default().to_string(),
                            r.get_str("db").unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(UserInfo { roles }))
    }

    /// Checks that an existing user is one Berth may change.
    async fn tenant_user(&self, db: &str, user: &str) -> Result<Option<UserInfo>, AdminError> {
        match self.user(db, user).await? {
            Some(info) if !info.is_tenant_of(db) => Err(AdminError::Foreign {
                db: db.to_string(),
                user: user.to_string(),
                roles: info.roles_text(),
            }),
            found => Ok(found),
        }
    }

    /// Creates the tenant's user in `db` (its authSource) with `readWrite` on `db` only, or
    /// sets an existing tenant user's password and role. Idempotent; also brings a revoked
    /// tenant back with the same password. MongoDB creates the database on its first write.
    pub async fn ensure_tenant(
        &self,
        db: &str,
        user: &str,
        password: &str,
    ) -> Result<(), AdminError> {
        let exists = self.tenant_user(db, user).await?.is_some();
        let spec = doc! {
            "pwd": password,
            "roles": [{ "role": TENANT_ROLE, "db": db }],
            "mechanisms": MECHANISMS.to_vec(),
            "customData": { "managedBy": "berth" },
        };
        if !exists {
            let mut create = doc! { "createUser": user };
            create.extend(spec.clone());
            match self.run(db, create).await {
                Ok(_) => return Ok(()),
                // Made in the meantime (another Berth pass): update it like an existing one,
                // after checking it is a tenant's.
                Err(e) if e.code() == Some(USER_ALREADY_EXISTS) => {
                    self.tenant_user(db, user).await?;
                }
                Err(e) => return Err(e),
            }
        }
        let mut update = doc! { "updateUser": user };
        update.extend(spec);
        self.run(db, update).await.map(drop)
    }

    /// Whether the tenant is in place: the user exists in `db` with `readWrite` on `db` only,
    /// and `password` logs it in (authSource `db`).
    pub async fn tenant_exists(
        &self,
        db: &str,
        user: &str,
        password: &str,
    ) -> Result<bool, AdminError> {
        match self.user(db, user).await? {
            Some(info) if info.is_tenant_of(db) => {}
            _ => return Ok(false),
        }
        match login(self.host_port, db, user, password).await {
            Ok(()) => Ok(true),
            Err(e) if e.code() == Some(AUTHENTICATION_FAILED) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes the tenant's user so it can no longer log in, and ends its sessions; the
    /// database and its data stay. Idempotent; [`Admin::ensure_tenant`] brings the user back.
    ///
    /// mongod also takes the rights of the user's open connections at their next command. The
    /// stand-in does not (its open connections keep their rights until they close), nor does
    /// it implement `killAllSessionsByPattern` beyond answering ok.
    pub async fn revoke(&self, db: &str, user: &str) -> Result<(), AdminError> {
        if self.tenant_user(db, user).await?.is_none() {
            return Ok(());
        }
        match self.run(db, doc! { "dropUser": user }).await {
            Ok(_) => {}
            Err(e) if e.code() == Some(USER_NOT_FOUND) => {}
            Err(e) => return Err(e),
        }
        self.run(
            "admin",
            doc! { "killAllSessionsByPattern": [{ "users": [{ "user": user, "db": db }] }] },
        )
        .await
        .map(drop)
    }

    /// The databases that exist on the server (`listDatabases`), `admin`, `config` and `local`
    /// included when present. A database exists once something was written to it.
    pub async fn names_in_use(&self) -> Result<HashSet<String>, AdminError> {
        let reply = self
            .run("admin", doc! { "listDatabases": 1, "nameOnly": true })
            .await?;
        let databases = reply
            .get_array("databases")
            .map_err(|_| AdminError::Driver {
                code: None,
                message: "listDatabases has no databases".into(),
            })?;
        Ok(databases
            .iter()
            .filter_map(Bson::as_document)
            .filter_map(|d| d.get_str("name").ok())
            .map(str::to_string)
            .collect())
    }
}

/// Logs in as `user` of database `db` (its authSource) and checks the server says so.
async fn login(host_port: u16, db: &str, user: &str, password: &str) -> Result<(), AdminError> {
    let client = client(host_port, user, password, db)?;
    let status = bounded(async {
        Ok(client
            .database(db)
            .run_command(doc! { "connectionStatus": 1 })
            .await?)
    })
    .await;
    client.shutdown().await;
    let authenticated = status?
        .get_document("authInfo")
        .and_then(|info| info.get_array("authenticatedUsers"))
        .map(|users| {
            users
                .iter()
                .filter_map(Bson::as_document)
                .any(|u| u.get_str("user").ok() == Some(user) && u.get_str("db").ok() == Some(db))
        })
        .unwrap_or(false);
    if authenticated {
        Ok(())
    } else {
        Err(AdminError::Driver {
            code: None,
            message: format!(
                "logged in, but the server does not list {user:?}@{db} as authenticated"
            ),
        })
    }
}

/// The readiness probe: logs in as the root user and pings.
pub async fn probe(host_port: u16, user: &str, password: &str) -> Result<(), AdminError> {
    let admin = Admin::connect(host_port, user, password).await?;
    admin.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exactly_readwrite_on_its_own_database_is_a_tenant() {
        let user = |roles: &[(&str, &str)]| UserInfo {
            roles: roles
                .iter()
                .map(|(r, d)| (r.to_string(), d.to_string()))
                .collect(),
        };
        assert!(user(&[("readWrite", "shop_prod")]).is_tenant_of("shop_prod"));
        assert!(!user(&[("readWrite", "other")]).is_tenant_of("shop_prod"));
        assert!(!user(&[("dbOwner", "shop_prod")]).is_tenant_of("shop_prod"));
        assert!(!user(&[("readWrite", "shop_prod"), ("read", "admin")]).is_tenant_of("shop_prod"));
        assert!(!user(&[]).is_tenant_of("shop_prod"));
    }

    #[test]
    fn names_are_checked_before_anything_is_sent() {
        // No server on this port: a name error must come first.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let admin = Admin {
                client: client(1, "root", "pw", "admin").unwrap(),
                host_port: 1,
            };
            for (db, user) in [("a.b", "u"), ("a$b", "u"), ("ok", ""), ("ok", "a\0b")] {
                let err = admin.ensure_tenant(db, user, "pw").await.unwrap_err();
                assert!(matches!(err, AdminError::Name(_)), "{db:?} {user:?}: {err}");
            }
        });
    }
}
