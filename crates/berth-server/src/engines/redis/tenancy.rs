//! Redis tenants: a database number recorded by Berth (never a hash that can collide) and an
//! ACL user that may SELECT only that number. Redis ACLs cannot bind a user to one database, so
//! the isolation is: commands that cross databases (SELECT of another number, MOVE, SWAPDB,
//! COPY, FLUSHALL) and admin commands are denied; database 0, where every connection starts
//! before its SELECT, is never given to a tenant. Users persist in the volume's ACL file.

use std::time::Duration;

use async_trait::async_trait;
use berth_core::Parameters;

use super::super::tenancy::{Address, Allocation, Credentials, Tenancy, url_encode};
use super::{Redis, admin_connection, password};

const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Database 0 is the landing database of every connection, so tenants start at 1.
pub const FIRST_TENANT_DB: i64 = 1;

/// ACL rules for a tenant user restricted to database `db`.
fn acl_rules(db: i64, with_setinfo: bool) -> Vec<String> {
    let mut rules: Vec<String> = [
        "reset",
        "on",
        "~*",
        "&*",
        "+@all",
        "-@admin",
        "-@dangerous",
        "-select",
        "-swapdb",
        "-move",
        "-copy",
        "+flushdb",
        "+keys",
        "+sort",
        "+info",
        "+client|setname",
        "+client|getname",
        "+client|id",
        "+client|info",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    rules.push(format!("+select|{db}"));
    if with_setinfo {
        // Clients announce themselves with CLIENT SETINFO on Redis 7.2+; 7.0 lacks it.
        rules.push("+client|setinfo".into());
    }
    rules
}

#[async_trait]
impl Tenancy for Redis {
    fn allocation(&self) -> Allocation {
        Allocation::Numbered {
            first: FIRST_TENANT_DB,
        }
    }

    async fn capacity(&self, host_port: u16, params: &Parameters) -> Result<i64, String> {
        let mut conn = admin_connection(host_port, params, ADMIN_TIMEOUT)
            .await
            .map_err(|e| format!("connecting as the admin user: {e}"))?;
        let reply: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("databases")
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        reply
            .get(1)
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("unexpected CONFIG GET databases reply {reply:?}"))
    }

    async fn provision(
        &self,
        host_port: u16,
        params: &Parameters,
        tenant: &Credentials,
    ) -> Result<(), String> {
        let db = tenant
            .resource_number
            .ok_or_else(|| "a Redis tenant needs a database number".to_string())?;
        let mut conn = admin_connection(host_port, params, ADMIN_TIMEOUT)
            .await
            .map_err(|e| format!("connecting as the admin user: {e}"))?;
        let set_user = |with_setinfo: bool| {
            let mut cmd = redis::cmd("ACL");
            cmd.arg("SETUSER").arg(&tenant.username);
            for rule in acl_rules(db, with_setinfo) {
                cmd.arg(rule);
            }
            cmd.arg(format!(">{}", tenant.password));
            cmd
        };
        let first: Result<(), redis::RedisError> = set_user(true).query_async(&mut conn).await;
        if let Err(e) = first {
            if !e.to_string().contains("setinfo") {
                return Err(format!("ACL SETUSER: {e}"));
            }
            let _: () = set_user(false)
                .query_async(&mut conn)
                .await
                .map_err(|e| format!("ACL SETUSER: {e}"))?;
        }
        let _: () = redis::cmd("ACL")
            .arg("SAVE")
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("ACL SAVE (is the container started with --aclfile?): {e}"))?;
        Ok(())
    }

    async fn is_provisioned(
        &self,
        host_port: u16,
        params: &Parameters,
        tenant: &Credentials,
    ) -> Result<bool, String> {
        let mut conn = admin_connection(host_port, params, ADMIN_TIMEOUT).await?;
        let user: redis::Value = redis::cmd("ACL")
            .arg("GETUSER")
            .arg(&tenant.username)
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("ACL GETUSER: {e}"))?;
        Ok(!matches!(user, redis::Value::Nil))
    }

    async fn revoke(
        &self,
        host_port: u16,
        params: &Parameters,
        tenant: &Credentials,
    ) -> Result<(), String> {
        let mut conn = admin_connection(host_port, params, ADMIN_TIMEOUT).await?;
        if !self.is_provisioned(host_port, params, tenant).await? {
            return Ok(());
        }
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&tenant.username)
            .arg("off")
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("ACL SETUSER off: {e}"))?;
        let _: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("USER")
            .arg(&tenant.username)
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("CLIENT KILL USER: {e}"))?;
        let _: () = redis::cmd("ACL")
            .arg("SAVE")
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("ACL SAVE: {e}"))?;
        Ok(())
    }

    fn env(
        &self,
        _params: &Parameters,
        address: &Address,
        tenant: &Credentials,
    ) -> Vec<(String, String)> {
        let db = tenant.resource_number.unwrap_or(0).to_string();
        let url = format!(
            "redis://{}:{}@{}:{}/{db}",
            url_encode(&tenant.username),
            url_encode(&tenant.password),
            address.host,
            address.port
        );
        [
            ("REDIS_URL", url),
            ("REDIS_HOST", address.host.clone()),
            ("REDIS_PORT", address.port.to_string()),
            ("REDIS_USERNAME", tenant.username.clone()),
            ("REDIS_PASSWORD", tenant.password.clone()),
            ("REDIS_DATABASE", db),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn admin_credentials(&self, params: &Parameters) -> Credentials {
        Credentials {
            resource_name: "default".into(),
            resource_number: Some(0),
            username: "default".into(),
            password: password(params).to_string(),
        }
    }
}
