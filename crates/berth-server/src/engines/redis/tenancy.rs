//! Redis tenants: a database number recorded by Berth (never a hash that can collide) and an
//! ACL user confined to it as far as Redis ACLs allow.
//!
//! What holds: the user may `SELECT` only its own number; commands that cross databases
//! (`SELECT` of another number, `MOVE`, `SWAPDB`, `COPY`, `FLUSHALL`), admin commands and every
//! command that changes server-wide state (functions, the script cache, other clients, client
//! tracking, configuration, ACLs, persistence) are denied; pub/sub is limited to channels under
//! the user's own prefix (`<user>:`), since channels are server-wide. What cannot hold: Redis
//! ACLs cannot bind a user to a database, and every connection starts in database 0, so keys
//! written there are readable by every tenant. Database 0 is never given to a tenant, and
//! [`data_warnings`](super::Redis) reports keys found in it. Users persist in the volume's ACL
//! file (`ACL SAVE`).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use berth_core::Parameters;
use redis::Value;

use super::super::tenancy::{Address, Allocation, Credentials, ServiceAccess, Tenancy, url_encode};
use super::{Redis, admin_connection, password};

const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Database 0 is the landing database of every connection, so tenants start at 1.
pub const FIRST_TENANT_DB: i64 = 1;

/// Denied after `+@all -@admin -@dangerous`. Most of these are in `@admin`/`@dangerous`
/// already; they are listed so the intent does not depend on Redis' categorisation, which
/// changes between versions. Subcommands a server does not know are skipped (see
/// [`supported_rules`]).
const DENIED: &[&str] = &[
    // Crossing databases.
    "-select",
    "-swapdb",
    "-move",
    "-copy",
    "-flushall",
    "-migrate",
    "-restore",
    // Functions are server-wide: a tenant cannot own one, so it may not load, replace, delete,
    // flush, restore or kill any.
    "-function",
    // The script cache and running scripts are server-wide; SCRIPT LOAD/EXISTS stay (EVALSHA).
    "-script|flush",
    "-script|kill",
    "-script|debug",
    // Other clients and server-wide client state. Tracking is denied because invalidation
    // messages are keyed by key name without the database, so they would leak other
    // tenants' writes.
    "-client",
    // Names of other tenants' channels.
    "-pubsub|channels",
    "-pubsub|shardchannels",
    // Server-wide memory: allocator purges and reports (MEMORY USAGE of a key stays).
    "-memory",
    // Server state (also in @admin).
    "-config",
    "-acl",
    "-debug",
    "-module",
    "-shutdown",
    "-monitor",
    "-save",
    "-bgsave",
    "-bgrewriteaof",
    "-replicaof",
    "-slaveof",
    "-failover",
    "-sync",
    "-psync",
];

/// Allowed back after [`DENIED`]: what tenants need inside their own database and what
/// clients send when they connect.
const ALLOWED: &[&str] = &[
    "+flushdb",
    "+keys",
    "+sort",
    "+sort_ro",
    "+info",
    "+acl|whoami",
    "+acl|cat",
    "+function|list",
    "+memory|usage",
    "+client|setname",
    "+client|getname",
    "+client|setinfo",
    "+client|id",
    "+client|info",
    "+client|reply",
];

/// Glob metacharacters are escaped so a user name can only ever match itself.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The prefix of the channels a tenant may use (`REDIS_CHANNEL_PREFIX`).
pub fn channel_prefix(username: &str) -> String {
    format!("{username}:")
}

/// The channel pattern rule: `&<user>:*`.
fn channel_rule(username: &str) -> String {
    format!("&{}*", glob_escape(&channel_prefix(username)))
}

/// Every ACL rule of a tenant user restricted to database `db`, before filtering by what the
/// server knows. Applied left to right by Redis; `reset` makes the result independent of the
/// user's previous rules.
fn acl_rules(db: i64, username: &str) -> Vec<String> {
    let mut rules: Vec<String> = [
        "reset",
        "on",
        "~*",
        "resetchannels",
        "+@all",
        "-@admin",
        "-@dangerous",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    rules.push(channel_rule(username));
    rules.extend(DENIED.iter().map(|s| s.to_string()));
    rules.extend(ALLOWED.iter().map(|s| s.to_string()));
    rules.push(format!("+select|{db}"));
    rules
}

/// The command a `+cmd`/`-cmd|sub` rule names, and its subcommand part.
fn rule_command(rule: &str) -> Option<(String, Option<String>)> {
    let name = rule.strip_prefix(['+', '-'])?;
    if name.starts_with('@') {
        return None;
    }
    let name = name.to_ascii_lowercase();
    Some(match name.split_once('|') {
        Some((cmd, sub)) => (cmd.to_string(), Some(sub.to_string())),
        None => (name, None),
    })
}

/// A server's commands and, for container commands, their subcommands.
type CommandTable = HashMap<String, HashSet<String>>;

/// Keeps the rules the server understands: a rule naming a command or subcommand this Redis
/// does not have (CLIENT SETINFO before 7.2, SYNC renamed...) would make the whole
/// `ACL SETUSER` fail; denying what does not exist is moot and allowing it is impossible.
/// `cmd|arg` on a command without subcommands is a first-argument rule (`+select|3`), kept.
fn supported_rules(rules: Vec<String>, table: &CommandTable) -> Vec<String> {
    rules
        .into_iter()
        .filter(|rule| match rule_command(rule) {
            None => true,
            Some((cmd, sub)) => match (table.get(&cmd), sub) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(subs), Some(sub)) => subs.is_empty() || subs.contains(&sub),
            },
        })
        .collect()
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Okay => Some("OK".into()),
        _ => None,
    }
}

fn as_items(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Array(items) | Value::Set(items) => Some(items),
        _ => None,
    }
}

/// Parses a `COMMAND INFO` reply: each known command is an array whose first element is its
/// name and whose tenth (Redis 7+) lists its subcommands, each named `cmd|sub`.
fn parse_command_info(reply: &Value) -> CommandTable {
    let mut table = CommandTable::new();
    for entry in as_items(reply).unwrap_or_default() {
        let Some(items) = as_items(entry) else {
            continue; // nil: unknown command
        };
        let Some(name) = items.first().and_then(as_text) else {
            continue;
        };
        let subs = items
            .get(9)
            .and_then(as_items)
            .unwrap_or_default()
            .iter()
            .filter_map(|sub| as_items(sub)?.first().and_then(as_text))
            .filter_map(|full| full.split_once('|').map(|(_, s)| s.to_ascii_lowercase()))
            .collect();
        table.insert(name.to_ascii_lowercase(), subs);
    }
    table
}

/// The rules for `db` that this server accepts.
async fn tenant_rules(
    conn: &mut redis::aio::MultiplexedConnection,
    db: i64,
    username: &str,
) -> Result<Vec<String>, String> {
    let rules = acl_rules(db, username);
    let commands: HashSet<String> = rules
        .iter()
        .filter_map(|r| rule_command(r).map(|(cmd, _)| cmd))
        .collect();
    let mut info = redis::cmd("COMMAND");
    info.arg("INFO");
    for cmd in &commands {
        info.arg(cmd);
    }
    let reply: Value = info
        .query_async(conn)
        .await
        .map_err(|e| format!("COMMAND INFO: {e}"))?;
    Ok(supported_rules(rules, &parse_command_info(&reply)))
}

/// `ACL GETUSER` as a field map; `None` if the user does not exist.
async fn get_user(
    conn: &mut redis::aio::MultiplexedConnection,
    username: &str,
) -> Result<Option<HashMap<String, Value>>, String> {
    let reply: Value = redis::cmd("ACL")
        .arg("GETUSER")
        .arg(username)
        .query_async(conn)
        .await
        .map_err(|e| format!("ACL GETUSER: {e}"))?;
    let pairs: Vec<(Value, Value)> = match reply {
        Value::Nil => return Ok(None),
        Value::Map(pairs) => pairs,
        Value::Array(items) => {
            let mut it = items.into_iter();
            let mut pairs = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            pairs
        }
        other => return Err(format!("unexpected ACL GETUSER reply {other:?}")),
    };
    Ok(Some(
        pairs
            .into_iter()
            .filter_map(|(k, v)| as_text(&k).map(|k| (k, v)))
            .collect(),
    ))
}

/// A field of an `ACL GETUSER` reply as words: a list (`flags`, `passwords`) or a string of
/// rules (`keys`, `channels`, split on spaces).
fn user_field(user: &HashMap<String, Value>, field: &str) -> Vec<String> {
    match user.get(field) {
        Some(v) => match as_items(v) {
            Some(items) => items.iter().filter_map(as_text).collect(),
            None => as_text(v)
                .map(|s| s.split_whitespace().map(String::from).collect())
                .unwrap_or_default(),
        },
        None => Vec::new(),
    }
}

/// Commands whose permission for a tenant is checked with `ACL DRYRUN` by `is_provisioned`:
/// a user provisioned by an older Berth (or edited by hand) fails one of them and is
/// provisioned again. `{db}`, `{other}` and `{prefix}` are filled in.
const DRYRUN_CHECKS: &[(&[&str], bool)] = &[
    (&["SELECT", "{db}"], true),
    (&["GET", "k"], true),
    (&["EVAL", "return 1", "0"], true),
    (&["PUBLISH", "{prefix}x", "m"], true),
    (&["SELECT", "0"], false),
    (&["SELECT", "{other}"], false),
    (&["FLUSHALL"], false),
    (&["FUNCTION", "FLUSH"], false),
    (&["FUNCTION", "DELETE", "lib"], false),
    (&["SCRIPT", "FLUSH"], false),
    (&["CLIENT", "KILL", "ID", "1"], false),
    (&["CLIENT", "TRACKING", "on"], false),
    (&["PUBLISH", "x", "m"], false),
    (&["CONFIG", "GET", "x"], false),
];

#[async_trait]
impl Tenancy for Redis {
    fn allocation(&self) -> Allocation {
        Allocation::Numbered {
            first: FIRST_TENANT_DB,
        }
    }

    async fn capacity(&self, service: &ServiceAccess<'_>) -> Result<i64, String> {
        let (host_port, params) = (service.host_port, service.params);
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
        service: &ServiceAccess<'_>,
        tenant: &Credentials,
    ) -> Result<(), String> {
        let (host_port, params) = (service.host_port, service.params);
        let db = tenant
            .resource_number
            .ok_or_else(|| "a Redis tenant needs a database number".to_string())?;
        let mut conn = admin_connection(host_port, params, ADMIN_TIMEOUT)
            .await
            .map_err(|e| format!("connecting as the admin user: {e}"))?;
        let mut set_user = redis::cmd("ACL");
        set_user.arg("SETUSER").arg(&tenant.username);
        for rule in tenant_rules(&mut conn, db, &tenant.username).await? {
            set_user.arg(rule);
        }
        set_user.arg(format!(">{}", tenant.password));
        let _: () = set_user
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("ACL SETUSER: {e}"))?;
        let _: () = redis::cmd("ACL")
            .arg("SAVE")
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("ACL SAVE (is the container started with --aclfile?): {e}"))?;
        Ok(())
    }

    /// The user exists, is on, has exactly the recorded password, may use any key and only
    /// its own channels, and its command rules give the expected answers for a set of
    /// commands (`ACL DRYRUN`), so a user with outdated rules is provisioned again.
    async fn is_provisioned(
        &self,
        service: &ServiceAccess<'_>,
        tenant: &Credentials,
    ) -> Result<bool, String> {
        let (host_port, params) = (service.host_port, service.params);
        let db = tenant
            .resource_number
            .ok_or_else(|| "a Redis tenant needs a database number".to_string())?;
        let mut conn = admin_connection(host_port, params, ADMIN_TIMEOUT)
            .await
            .map_err(|e| format!("connecting as the admin user: {e}"))?;
        let Some(user) = get_user(&mut conn, &tenant.username).await? else {
            return Ok(false);
        };
        let texts = |field: &str| user_field(&user, field);
        let expected_hash = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(tenant.password.as_bytes()))
        };
        if !texts("flags").iter().any(|f| f == "on")
            || texts("passwords") != [expected_hash]
            || texts("keys") != ["~*"]
            || texts("channels") != [channel_rule(&tenant.username)]
        {
            return Ok(false);
        }
        let other = if db == FIRST_TENANT_DB {
            db + 1
        } else {
            db - 1
        };
        let prefix = channel_prefix(&tenant.username);
        let mut pipe = redis::pipe();
        for (args, _) in DRYRUN_CHECKS {
            let cmd = pipe.cmd("ACL").arg("DRYRUN").arg(&tenant.username);
            for arg in *args {
                match *arg {
                    "{db}" => cmd.arg(db),
                    "{other}" => cmd.arg(other),
                    a => match a.strip_prefix("{prefix}") {
                        Some(rest) => cmd.arg(format!("{prefix}{rest}")),
                        None => cmd.arg(a),
                    },
                };
            }
        }
        let replies: Vec<Value> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("ACL DRYRUN: {e}"))?;
        Ok(DRYRUN_CHECKS
            .iter()
            .zip(&replies)
            .all(|((_, allowed), reply)| matches!(reply, Value::Okay) == *allowed))
    }

    /// `ACL SETUSER <user> off` (no new logins) and `ACL SAVE` unless it is off already, then
    /// ends its open connections (Redis keeps the authenticated connections of a disabled
    /// user). Data stays; a user that does not exist is not created. Cheap when there is
    /// nothing to do, so it can be enforced on every reconcile pass.
    async fn revoke(
        &self,
        service: &ServiceAccess<'_>,
        tenant: &Credentials,
    ) -> Result<(), String> {
        let (host_port, params) = (service.host_port, service.params);
        let mut conn = admin_connection(host_port, params, ADMIN_TIMEOUT)
            .await
            .map_err(|e| format!("connecting as the admin user: {e}"))?;
        let Some(user) = get_user(&mut conn, &tenant.username).await? else {
            return Ok(());
        };
        let on = user_field(&user, "flags").iter().any(|f| f == "on");
        if on {
            let _: () = redis::cmd("ACL")
                .arg("SETUSER")
                .arg(&tenant.username)
                .arg("off")
                .query_async(&mut conn)
                .await
                .map_err(|e| format!("ACL SETUSER off: {e}"))?;
        }
        let _: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("USER")
            .arg(&tenant.username)
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("CLIENT KILL USER: {e}"))?;
        if on {
            let _: () = redis::cmd("ACL")
                .arg("SAVE")
                .query_async(&mut conn)
                .await
                .map_err(|e| format!("ACL SAVE: {e}"))?;
        }
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
            ("REDIS_CHANNEL_PREFIX", channel_prefix(&tenant.username)),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(&str, &[&str])]) -> CommandTable {
        entries
            .iter()
            .map(|(cmd, subs)| {
                (
                    cmd.to_string(),
                    subs.iter().map(|s| s.to_string()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn rules_unknown_to_the_server_are_dropped_and_first_arg_rules_kept() {
        let t = table(&[
            ("client", &["setname", "kill"]),
            ("select", &[]),
            ("function", &["load", "list"]),
        ]);
        let rules: Vec<String> = [
            "reset",
            "+@all",
            "-client|no-touch",
            "+client|setinfo",
            "-client|kill",
            "+select|3",
            "-function",
            "-nosuchcommand",
            "&web:*",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            supported_rules(rules, &t),
            [
                "reset",
                "+@all",
                "-client|kill",
                "+select|3",
                "-function",
                "&web:*"
            ]
        );
    }

    #[test]
    fn tenant_rules_deny_globals_allow_connect_commands_and_own_channels_only() {
        let rules = acl_rules(4, "shop_prod");
        let pos = |r: &str| rules.iter().position(|x| x == r).unwrap();
        assert!(pos("-client") < pos("+client|setname"));
        assert!(pos("-select") < pos("+select|4"));
        assert!(pos("-@dangerous") < pos("+keys"));
        assert!(pos("resetchannels") < pos("&shop_prod:*"));
        assert!(!rules.iter().any(|r| r == "&*"));
        for denied in ["-function", "-script|flush", "-script|kill", "-flushall"] {
            assert!(rules.iter().any(|r| r == denied), "{denied}");
        }
        assert_eq!(channel_rule("a*b?"), r"&a\*b\?:*");
    }

    #[test]
    fn command_info_parses_names_and_subcommands() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let mut client = vec![bulk("client")];
        client.extend((1..9).map(|_| Value::Nil));
        client.push(Value::Array(vec![
            Value::Array(vec![bulk("client|kill"), Value::Int(-2)]),
            Value::Array(vec![bulk("client|setname"), Value::Int(3)]),
        ]));
        let reply = Value::Array(vec![
            Value::Array(client),
            Value::Nil,
            Value::Array(vec![bulk("get"), Value::Int(2)]),
        ]);
        let t = parse_command_info(&reply);
        assert_eq!(t.len(), 2);
        assert_eq!(t["client"].len(), 2);
        assert!(t["client"].contains("setname"));
        assert!(t["get"].is_empty());
    }
}
