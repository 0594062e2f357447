//! A project environment's share of a MongoDB service: a database named like the tenant
//! (`web_shop_production`) and a user of that database (its authSource) with `readWrite` on it
//! alone. Users Berth did not make are never changed ([`admin::AdminError::Foreign`]).

use std::collections::HashSet;

use async_trait::async_trait;
use berth_core::Parameters;

use super::super::tenancy::{Address, Allocation, Credentials, ServiceAccess, Tenancy, url_encode};
use super::admin::Admin;
use super::{MongoDb, param};

async fn admin(service: &ServiceAccess<'_>) -> Result<Admin, String> {
    Admin::connect(
        service.host_port,
        param(service.params, "username"),
        param(service.params, "password"),
    )
    .await
    .map_err(|e| e.to_string())
}

/// Runs `f` with an admin connection and closes it whatever the outcome.
macro_rules! with_admin {
    ($service:expr, |$admin:ident| $body:expr) => {{
        let $admin = admin($service).await?;
        let result = $body.await.map_err(|e| e.to_string());
        $admin.close().await;
        result
    }};
}

#[async_trait]
impl Tenancy for MongoDb {
    fn allocation(&self) -> Allocation {
        Allocation::Named
    }

    async fn provision(
        &self,
        service: &ServiceAccess<'_>,
        tenant: &Credentials,
    ) -> Result<(), String> {
        with_admin!(service, |admin| admin.ensure_tenant(
            &tenant.resource_name,
            &tenant.username,
            &tenant.password
        ))
    }

    async fn is_provisioned(
        &self,
        service: &ServiceAccess<'_>,
        tenant: &Credentials,
    ) -> Result<bool, String> {
        with_admin!(service, |admin| admin.tenant_exists(
            &tenant.resource_name,
            &tenant.username,
            &tenant.password
        ))
    }

    async fn revoke(
        &self,
        service: &ServiceAccess<'_>,
        tenant: &Credentials,
    ) -> Result<(), String> {
        with_admin!(service, |admin| admin
            .revoke(&tenant.resource_name, &tenant.username))
    }

    async fn names_in_use(&self, service: &ServiceAccess<'_>) -> Result<HashSet<String>, String> {
        with_admin!(service, |admin| admin.names_in_use())
    }

    /// MongoDB's own databases.
    fn is_reserved_name(&self, name: &str) -> bool {
        matches!(name, "admin" | "config" | "local")
    }

    fn env(
        &self,
        _params: &Parameters,
        address: &Address,
        tenant: &Credentials,
    ) -> Vec<(String, String)> {
        let url = format!(
            "mongodb://{}:{}@{}:{}/{}?authSource={}",
            url_encode(&tenant.username),
            url_encode(&tenant.password),
            address.host,
            address.port,
            tenant.resource_name,
            tenant.resource_name
        );
        [
            ("MONGODB_URL", url),
            ("MONGODB_HOST", address.host.clone()),
            ("MONGODB_PORT", address.port.to_string()),
            ("MONGODB_DATABASE", tenant.resource_name.clone()),
            ("MONGODB_USERNAME", tenant.username.clone()),
            ("MONGODB_PASSWORD", tenant.password.clone()),
            ("MONGODB_AUTH_SOURCE", tenant.resource_name.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn admin_credentials(&self, params: &Parameters) -> Credentials {
        Credentials {
            resource_name: param(params, "database").to_string(),
            resource_number: None,
            username: param(params, "username").to_string(),
            password: param(params, "password").to_string(),
        }
    }
}
