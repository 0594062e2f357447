//! `/api/kv/*`: Temps' KV commands. Values are JSON; `get` deserializes into any type.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::Client;
use crate::error::{Result, json as read_json};

/// The KV commands of one project (see [`Client::kv`]).
#[derive(Debug, Clone, Copy)]
pub struct Kv<'a> {
    client: &'a Client,
}

/// Expiry and conditions for [`Kv::set`]. `Default` sets unconditionally, without expiry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetOptions {
    /// Expire after this many seconds (not with `px`).
    pub ex: Option<i64>,
    /// Expire after this many milliseconds (not with `ex`).
    pub px: Option<i64>,
    /// Only set if the key does not exist.
    pub nx: bool,
    /// Only set if the key exists.
    pub xx: bool,
}

impl SetOptions {
    /// Expire after `seconds`.
    pub fn ex(seconds: i64) -> Self {
        SetOptions {
            ex: Some(seconds),
            ..Self::default()
        }
    }

    /// Expire after `millis` milliseconds.
    pub fn px(millis: i64) -> Self {
        SetOptions {
            px: Some(millis),
            ..Self::default()
        }
    }

    /// Also: only if the key does not exist yet.
    pub fn nx(self) -> Self {
        SetOptions { nx: true, ..self }
    }

    /// Also: only if the key exists already.
    pub fn xx(self) -> Self {
        SetOptions { xx: true, ..self }
    }
}

impl<'a> Kv<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Kv { client }
    }

    /// The value at `key` as `T` (`serde_json::Value` for any), or `None` if absent.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let answer = self.call("get", json!({ "key": key })).await?;
        match answer.get("value") {
            None | Some(Value::Null) => Ok(None),
            Some(value) => serde_json::from_value(value.clone())
                .map(Some)
                .map_err(|e| crate::Error::Decode(format!("value at {key:?}: {e}"))),
        }
    }

    /// Stores `value` (as JSON) at `key`. `false` when `nx`/`xx` kept it from being written.
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        options: SetOptions,
    ) -> Result<bool> {
        let value = serde_json::to_value(value).map_err(|e| crate::Error::Decode(e.to_string()))?;
        let mut body = json!({ "key": key, "value": value });
        if let Some(ex) = options.ex {
            body["ex"] = ex.into();
        }
        if let Some(px) = options.px {
            body["px"] = px.into();
        }
        if options.nx {
            body["nx"] = true.into();
        }
        if options.xx {
            body["xx"] = true.into();
        }
        let answer = self.call("set", body).await?;
        Ok(answer.get("result").and_then(Value::as_str) == Some("OK"))
    }

    /// Deletes `keys`; how many of them existed.
    pub async fn del<K: AsRef<str>>(&self, keys: &[K]) -> Result<i64> {
        let keys: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
        let answer = self.call("del", json!({ "keys": keys })).await?;
        int(&answer, "deleted")
    }

    /// Adds 1 to the integer at `key` (absent: 0); the new value.
    pub async fn incr(&self, key: &str) -> Result<i64> {
        self.incr_by(key, 1).await
    }

    /// Adds `amount` (may be negative) to the integer at `key`; the new value.
    pub async fn incr_by(&self, key: &str, amount: i64) -> Result<i64> {
        let answer = self
            .call("incr", json!({ "key": key, "amount": amount }))
            .await?;
        int(&answer, "value")
    }

    /// Lets `key` expire in `seconds` (zero or less deletes it now); `false` if it did not
    /// exist.
    pub async fn expire(&self, key: &str, seconds: i64) -> Result<bool> {
        let answer = self
            .call("expire", json!({ "key": key, "seconds": seconds }))
            .await?;
        // Berth answers both; Temps' server only `success`, its SDK reads `result`.
        match answer.get("success").and_then(Value::as_bool) {
            Some(success) => Ok(success),
            None => Ok(int(&answer, "result")? == 1),
        }
    }

    /// Seconds until `key` expires: -1 without expiry, -2 if it does not exist.
    pub async fn ttl(&self, key: &str) -> Result<i64> {
        let answer = self.call("ttl", json!({ "key": key })).await?;
        int(&answer, "ttl")
    }

    /// The keys matching a Redis glob `pattern` (`*`, `?`, `[ab]`), within the project.
    pub async fn keys(&self, pattern: &str) -> Result<Vec<String>> {
        let answer = self.call("keys", json!({ "pattern": pattern })).await?;
        serde_json::from_value(answer.get("keys").cloned().unwrap_or_default())
            .map_err(|e| crate::Error::Decode(format!("keys: {e}")))
    }

    async fn call(&self, command: &str, mut body: Value) -> Result<Value> {
        if let Some(project) = self.client.project_id() {
            body["project_id"] = project.into();
        }
        let response = self
            .client
            .request(
                reqwest::Method::POST,
                self.client.url(&format!("/api/kv/{command}")),
            )
            .json(&body)
            .send()
            .await?;
        read_json(response).await
    }
}

fn int(answer: &Value, field: &str) -> Result<i64> {
    answer
        .get(field)
        .and_then(Value::as_i64)
        .ok_or_else(|| crate::Error::Decode(format!("no integer {field:?} in {answer}")))
}
