//! Linking services to projects: every environment of a linked project gets its own tenant
//! (database + role, database number + ACL user, ...), recorded before it is provisioned, and
//! the project's deployments get that tenant's variables. Unlinking only stops the injection:
//! tenants stay, so re-linking finds the same databases and credentials.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use berth_core::names::NameStyle;
use berth_core::{Parameters, mask, names, secrets};
use serde::Serialize;

use super::{ManagerError, ManagerResult, ServiceManager};
use crate::engines::Engine;
use crate::engines::tenancy::{Address, Allocation, Credentials, ServiceAccess, Tenancy};
use crate::store::{self, Environment, NewTenant, Project, Service, Tenant};

/// Length of generated tenant passwords.
const TENANT_PASSWORD_LEN: usize = 24;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TenantView {
    pub environment: String,
    pub resource_name: String,
    pub resource_number: Option<i64>,
    pub username: String,
    pub provisioned: bool,
}

/// A link with what the API shows of it: the link row, its project and service, and each
/// environment's tenant.
#[derive(Debug, Clone)]
pub struct LinkInfo {
    pub link: store::Link,
    pub project: Project,
    pub service: Service,
    pub environments: Vec<TenantView>,
}

/// A tenant whose login was turned off, for the API's answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RevokedTenant {
    pub service_id: i64,
    pub service_name: String,
    /// The database (PostgreSQL) or ACL user (Redis) whose data stays in the service.
    pub resource_name: String,
    pub username: String,
    /// False when the service is stopped: the login is turned off when it next runs.
    pub enforced_now: bool,
}

/// Which address variables point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressKind {
    /// Container name and internal port on the Docker network (deployments).
    Network,
    /// 127.0.0.1 and the published port (`berth run` on the server itself).
    Host,
}

fn credentials(t: &Tenant) -> Credentials {
    Credentials {
        resource_name: t.resource_name.clone(),
        resource_number: t.resource_number,
        username: t.username.clone(),
        password: t.password.clone(),
    }
}

impl ServiceManager {
    fn tenancy_of(service: &Service) -> ManagerResult<(&'static dyn Engine, &'static dyn Tenancy)> {
        let engine = Self::engine_for(service)?;
        let tenancy = engine.tenancy().ok_or_else(|| {
            ManagerError::BadRequest(format!(
                "{} services cannot be linked to projects",
                service.service_type
            ))
        })?;
        Ok((engine, tenancy))
    }

    /// Serialises allocation per service so concurrent links never pick the same number.
    fn link_lock(&self, service_id: i64) -> Arc<tokio::sync::Mutex<()>> {
        self.link_locks
            .lock()
            .expect("link locks")
            .entry(service_id)
            .or_default()
            .clone()
    }

    /// Links a service to a project (idempotent). Returns the link and whether it is new.
    pub async fn link(
        self: &Arc<Self>,
        service_id: i64,
        project_id: i64,
    ) -> ManagerResult<(LinkInfo, bool)> {
        self.service(service_id).await?;
        // Shared with other links; never interleaved with an operation (update, stop, delete).
        let _claim = self.claim_shared(service_id).await?;
        let service = self.service(service_id).await?;
        let project = self.project(project_id).await?;
        Self::tenancy_of(&service)?;
        if self.store.link(service_id, project_id).await?.is_some() {
            return Ok((self.link_view(&service, &project).await?, false));
        }
        if let Some(other) = self
            .store
            .link_by_type(project_id, &service.service_type)
            .await?
        {
            let other_name = self
                .store
                .service(other.service_id)
                .await?
                .map(|s| s.name)
                .unwrap_or_default();
            return Err(ManagerError::Conflict(format!(
                "project {} already has a {} service linked: {other_name:?} (id {}); unlink it first",
                project.slug, service.service_type, other.service_id
            )));
        }
        self.refuse_variable_clash(&service, &project).await?;
        if service.status != "running" {
            return Err(ManagerError::Conflict(format!(
                "service {:?} is {}; start it before linking (linking creates the project's database inside the running server)",
                service.name, service.status
            )));
        }
        self.ensure_tenants(&service, &project).await?;
        crate::crashpoint::hit("link.before_link_row");
        self.store
            .insert_link(service_id, project_id, &service.service_type)
            .await
            .map_err(|e| {
                if store::is_unique_violation(&e) {
                    ManagerError::Conflict(format!(
                        "project {} got a {} service linked concurrently; unlink it first",
                        project.slug, service.service_type
                    ))
                } else {
                    e.into()
                }
            })?;
        tracing::info!(service_id, project_id, "service linked");
        Ok((self.link_view(&service, &project).await?, true))
    }

    /// Stops injecting the service's variables into the project. Running applications keep
    /// working until redeployed (the seed's meaning); with `revoke` the project's logins are
    /// turned off at once too. Data stays either way; re-linking turns logins back on.
    pub async fn unlink(
        self: &Arc<Self>,
        service_id: i64,
        project_id: i64,
        revoke: bool,
    ) -> ManagerResult<Vec<RevokedTenant>> {
        self.service(service_id).await?;
        let _claim = self.claim_shared(service_id).await?;
        let service = self.service(service_id).await?;
        if !self.store.delete_link(service_id, project_id).await? {
            return Err(ManagerError::NotFound(format!(
                "service {service_id} is not linked to project {project_id}"
            )));
        }
        tracing::info!(
            service_id,
            project_id,
            revoke,
            "service unlinked (tenants kept)"
        );
        if !revoke {
            return Ok(Vec::new());
        }
        let tenants: Vec<Tenant> = self
            .store
            .service_tenants(service_id)
            .await?
            .into_iter()
            .filter(|t| t.project_id == project_id)
            .collect();
        self.revoke_tenants(&service, &tenants).await
    }

    /// Turns off the logins of a project's tenants in every service (the project, or with
    /// `environment` one of its environments, is being deleted). Each service is claimed
    /// shared, like a link.
    pub async fn revoke_project(
        self: &Arc<Self>,
        project_id: i64,
        environment_id: Option<i64>,
    ) -> ManagerResult<Vec<RevokedTenant>> {
        let tenants: Vec<Tenant> = self
            .store
            .project_tenants(project_id)
            .await?
            .into_iter()
            .filter(|t| environment_id.is_none_or(|e| t.environment_id == e))
            .collect();
        let mut service_ids: Vec<i64> = tenants.iter().map(|t| t.service_id).collect();
        service_ids.dedup();
        let mut revoked = Vec::new();
        for service_id in service_ids {
            let _claim = self.claim_shared(service_id).await?;
            let Some(service) = self.store.service(service_id).await? else {
                continue;
            };
            let of_service: Vec<Tenant> = tenants
                .iter()
                .filter(|t| t.service_id == service_id)
                .cloned()
                .collect();
            revoked.extend(self.revoke_tenants(&service, &of_service).await?);
        }
        Ok(revoked)
    }

    /// Records each tenant as revoked (the intent, so a stopped service enforces it when it
    /// next runs), then turns its login off in the running server.
    async fn revoke_tenants(
        &self,
        service: &Service,
        tenants: &[Tenant],
    ) -> ManagerResult<Vec<RevokedTenant>> {
        let (engine, tenancy) = Self::tenancy_of(service)?;
        let mut out = Vec::new();
        for tenant in tenants {
            self.store.mark_tenant_revoked(tenant.id).await?;
            let enforced = if service.status == "running" {
                let port = Self::host_port(engine, service)?;
                let params = service.all_parameters();
                tenancy
                    .revoke(&self.access(service, port, &params), &credentials(tenant))
                    .await
                    .map_err(|e| {
                        ManagerError::Internal(format!(
                            "turning off the login of {} in {}: {e}",
                            tenant.username, service.name
                        ))
                    })?;
                true
            } else {
                false
            };
            tracing::info!(service_id = service.id, tenant = %tenant.username, enforced, "tenant login revoked");
            out.push(RevokedTenant {
                service_id: service.id,
                service_name: service.name.clone(),
                resource_name: tenant.resource_name.clone(),
                username: tenant.username.clone(),
                enforced_now: enforced,
            });
        }
        Ok(out)
    }

    /// What an engine's tenancy may use of a running service.
    fn access<'a>(
        &'a self,
        service: &'a Service,
        host_port: u16,
        params: &'a Parameters,
    ) -> ServiceAccess<'a> {
        ServiceAccess::new(&self.docker, &service.container_name, host_port, params)
    }

    /// Level-triggered repair of a running service's tenants: a live tenant whose login or
    /// resources are missing (a restore, a hand-made change) is provisioned again with its
    /// stored credentials; a revoked tenant whose login works again is turned off again.
    pub async fn repair_tenants(&self, service: &Service) -> ManagerResult<()> {
        let Ok((engine, tenancy)) = Self::tenancy_of(service) else {
            return Ok(());
        };
        let port = Self::host_port(engine, service)?;
        let params = service.all_parameters();
        let access = self.access(service, port, &params);
        for tenant in self.store.service_tenants(service.id).await? {
            let creds = credentials(&tenant);
            let fail = |what: &str, e: String| {
                ManagerError::Internal(format!(
                    "{what} tenant {} of {}: {e}",
                    tenant.username, service.name
                ))
            };
            if tenant.revoked {
                // Revoke is idempotent and cheap when the login is already off; asking
                // is_provisioned first would miss a login turned back on with other rules.
                tenancy
                    .revoke(&access, &creds)
                    .await
                    .map_err(|e| fail("revoking", e))?;
                continue;
            }
            let live = tenancy
                .is_provisioned(&access, &creds)
                .await
                .map_err(|e| fail("checking", e))?;
            if !live {
                tracing::warn!(service_id = service.id, tenant = %tenant.username, "tenant missing in the server; provisioning it again");
                tenancy
                    .provision(&access, &creds)
                    .await
                    .map_err(|e| fail("provisioning", e))?;
                self.store.mark_tenant_provisioned(tenant.id).await?;
            }
        }
        Ok(())
    }

    pub async fn links(&self, service_id: i64) -> ManagerResult<Vec<LinkInfo>> {
        let service = self.service(service_id).await?;
        let mut out = Vec::new();
        for link in self.store.links_of_service(service_id).await? {
            if let Some(project) = self.store.project(link.project_id).await? {
                out.push(self.link_view(&service, &project).await?);
            }
        }
        Ok(out)
    }

    /// The services linked to a project (404 if the project does not exist).
    pub async fn project_links(&self, project_id: i64) -> ManagerResult<Vec<LinkInfo>> {
        let project = self.project(project_id).await?;
        let mut out = Vec::new();
        for link in self.store.links_of_project(project_id).await? {
            if let Some(service) = self.store.service(link.service_id).await? {
                out.push(self.link_view(&service, &project).await?);
            }
        }
        Ok(out)
    }

    async fn link_view(&self, service: &Service, project: &Project) -> ManagerResult<LinkInfo> {
        let link = self
            .store
            .link(service.id, project.id)
            .await?
            .ok_or_else(|| {
                ManagerError::NotFound(format!(
                    "service {} is not linked to project {}",
                    service.id, project.id
                ))
            })?;
        let tenants = self.store.service_tenants(service.id).await?;
        let environments = project
            .environments
            .iter()
            .filter_map(|env| {
                let t = tenants
                    .iter()
                    .find(|t| t.project_id == project.id && t.environment_id == env.id)?;
                Some(TenantView {
                    environment: env.slug.clone(),
                    resource_name: t.resource_name.clone(),
                    resource_number: t.resource_number,
                    username: t.username.clone(),
                    provisioned: t.provisioned,
                })
            })
            .collect();
        Ok(LinkInfo {
            link,
            project: project.clone(),
            service: service.clone(),
            environments,
        })
    }

    /// Allocates (and records) tenants for the project's environments that have none, then
    /// provisions every tenant of the project in the running service. Idempotent.
    pub async fn ensure_tenants(&self, service: &Service, project: &Project) -> ManagerResult<()> {
        let (engine, tenancy) = Self::tenancy_of(service)?;
        let port = Self::host_port(engine, service)?;
        let params = service.all_parameters();
        let access = self.access(service, port, &params);
        let lock = self.link_lock(service.id);
        let _guard = lock.lock().await;
        let existing = self.store.service_tenants(service.id).await?;
        let missing: Vec<&Environment> = project
            .environments
            .iter()
            .filter(|env| {
                !existing
                    .iter()
                    .any(|t| t.project_id == project.id && t.environment_id == env.id)
            })
            .collect();
        if !missing.is_empty() {
            let capacity = match tenancy.allocation() {
                Allocation::Numbered { .. } => tenancy.capacity(&access).await.map_err(|e| {
                    ManagerError::Conflict(format!("cannot read {}'s capacity: {e}", service.name))
                })?,
                Allocation::Named => i64::MAX,
            };
            // Names the server already uses (the admin's, templates, anything made by hand) and
            // the engine's reserved ones are never given to a tenant: never adopt, never alter.
            let in_use = tenancy.names_in_use(&access).await.map_err(|e| {
                ManagerError::Conflict(format!(
                    "cannot list the names in use in {}: {e}",
                    service.name
                ))
            })?;
            let plan = plan_tenants(
                tenancy.allocation(),
                tenancy.name_style(),
                capacity,
                project,
                &missing,
                &existing,
                &service.name,
                &|name| in_use.contains(name),
                &|name| tenancy.is_reserved_name(name),
            )?;
            let rows: Vec<NewTenant> = plan
                .iter()
                .map(|p| NewTenant {
                    project_id: project.id,
                    environment_id: p.environment_id,
                    resource_name: &p.name,
                    resource_number: p.number,
                    username: &p.name,
                    password: &p.password,
                })
                .collect();
            self.store.insert_tenants(service.id, &rows).await?;
            crate::crashpoint::hit("link.after_tenants_recorded");
        }
        for tenant in self.store.service_tenants(service.id).await? {
            // Tenants of deleted environments stay revoked.
            if tenant.project_id != project.id
                || !project
                    .environments
                    .iter()
                    .any(|e| e.id == tenant.environment_id)
            {
                continue;
            }
            tenancy
                .provision(&access, &credentials(&tenant))
                .await
                .map_err(|e| {
                    // Refusals (a name taken by something Berth did not create) are the
                    // user's to resolve: say why instead of a bare 500.
                    ManagerError::Conflict(format!(
                        "provisioning {} in {}: {e}",
                        tenant.resource_name, service.name
                    ))
                })?;
            if !tenant.provisioned {
                self.store.mark_tenant_provisioned(tenant.id).await?;
            }
        }
        Ok(())
    }

    /// Provisions the tenants of every project linked to `service` (after a start, or when a
    /// project gains an environment). Errors are logged: the next call retries.
    pub async fn provision_links(&self, service: &Service) {
        let links = match self.store.links_of_service(service.id).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(service_id = service.id, "listing links failed: {e}");
                return;
            }
        };
        for link in links {
            let result = match self.store.project(link.project_id).await {
                Ok(Some(project)) => self.ensure_tenants(service, &project).await,
                Ok(None) => Ok(()),
                Err(e) => Err(e.into()),
            };
            if let Err(e) = result {
                tracing::warn!(
                    service_id = service.id,
                    project_id = link.project_id,
                    "provisioning linked project failed: {e}"
                );
            }
        }
    }

    /// Whether some environment of a linked project has no provisioned tenant yet (added while
    /// the service was stopped, or interrupted by a crash).
    pub async fn has_unprovisioned_links(&self, service: &Service) -> ManagerResult<bool> {
        let tenants = self.store.service_tenants(service.id).await?;
        for link in self.store.links_of_service(service.id).await? {
            let Some(project) = self.store.project(link.project_id).await? else {
                continue;
            };
            let complete = project.environments.iter().all(|env| {
                tenants.iter().any(|t| {
                    t.project_id == project.id && t.environment_id == env.id && t.provisioned
                })
            });
            if !complete {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Called after an environment is added to a project: provisions it in every linked,
    /// running service (stopped ones get it when they start).
    pub async fn environment_added(self: &Arc<Self>, project_id: i64) {
        let Ok(links) = self.store.links_of_project(project_id).await else {
            return;
        };
        for link in links {
            let Ok(_claim) = self.claim_shared(link.service_id).await else {
                continue;
            };
            if let Ok(Some(service)) = self.store.service(link.service_id).await
                && service.status == "running"
            {
                self.provision_links(&service).await;
            }
        }
    }

    fn address(
        engine: &dyn Engine,
        service: &Service,
        kind: AddressKind,
    ) -> ManagerResult<Address> {
        Ok(match kind {
            AddressKind::Network => Address {
                host: service.container_name.clone(),
                port: engine.ports().first().map(|(p, _)| *p).unwrap_or_default(),
            },
            AddressKind::Host => Address {
                host: "127.0.0.1".into(),
                port: Self::host_port(engine, service)?,
            },
        })
    }

    /// The real variables of one linked project environment (default `production`).
    pub async fn tenant_environment(
        &self,
        service_id: i64,
        project_id: i64,
        environment: Option<&str>,
        kind: AddressKind,
    ) -> ManagerResult<Vec<(String, String)>> {
        let service = self.service(service_id).await?;
        let project = self.project(project_id).await?;
        let (engine, tenancy) = Self::tenancy_of(&service)?;
        if self.store.link(service_id, project_id).await?.is_none() {
            return Err(ManagerError::NotFound(format!(
                "service {service_id} is not linked to project {project_id}"
            )));
        }
        let env = find_environment(&project, environment.unwrap_or("production"))?;
        let tenant = self.store.tenant(service_id, project_id, env.id).await?.ok_or_else(|| {
            ManagerError::Conflict(format!(
                "environment {} of project {} is not provisioned in {} yet (it is when the service runs)",
                env.slug, project.slug, service.name
            ))
        })?;
        let address = Self::address(engine, &service, kind)?;
        Ok(tenancy.env(&service.all_parameters(), &address, &credentials(&tenant)))
    }

    /// Everything every linked service injects into one project environment.
    pub async fn project_variables(
        &self,
        project_id: i64,
        environment: &str,
        kind: AddressKind,
    ) -> ManagerResult<BTreeMap<String, String>> {
        // Deployers poll this; it is served from memory until the state changes.
        let generation = self.store.generation();
        let key = (project_id, environment.to_string(), kind);
        if let Some((cached_at, vars)) = self
            .variables_cache
            .lock()
            .expect("variables cache")
            .get(&key)
            && *cached_at == generation
        {
            return Ok(vars.clone());
        }
        let project = self.project(project_id).await?;
        find_environment(&project, environment)?;
        let mut vars = BTreeMap::new();
        for link in self.store.links_of_project(project_id).await? {
            vars.extend(
                self.tenant_environment(link.service_id, project_id, Some(environment), kind)
                    .await?,
            );
        }
        self.variables_cache
            .lock()
            .expect("variables cache")
            .insert(key, (generation, vars.clone()));
        Ok(vars)
    }

    /// What every service linked to a project injects into one of its environments, by
    /// service id (404 if the project or environment does not exist).
    pub async fn project_service_environments(
        &self,
        project_id: i64,
        environment: Option<&str>,
        kind: AddressKind,
    ) -> ManagerResult<BTreeMap<i64, BTreeMap<String, String>>> {
        let project = self.project(project_id).await?;
        let environment = environment.unwrap_or("production");
        find_environment(&project, environment)?;
        let mut out = BTreeMap::new();
        for link in self.store.links_of_project(project_id).await? {
            let vars = self
                .tenant_environment(link.service_id, project_id, Some(environment), kind)
                .await?;
            out.insert(link.service_id, vars.into_iter().collect());
        }
        Ok(out)
    }

    /// Variable names a link injects, and their values for the service's own admin login,
    /// masked: what a deployment will get, without deploying.
    pub async fn preview_environment(
        &self,
        service_id: i64,
    ) -> ManagerResult<Vec<(String, String)>> {
        let service = self.service(service_id).await?;
        let (engine, tenancy) = Self::tenancy_of(&service)?;
        let params = service.all_parameters();
        let address = Self::address(engine, &service, AddressKind::Network)?;
        Ok(tenancy
            .env(&params, &address, &tenancy.admin_credentials(&params))
            .into_iter()
            .map(|(k, v)| {
                let masked = mask::mask_value(&k, &v);
                (k, masked)
            })
            .collect())
    }

    /// The variable names a service injects (the same for every tenant).
    fn variable_names(&self, service: &Service) -> ManagerResult<BTreeSet<String>> {
        let (engine, tenancy) = Self::tenancy_of(service)?;
        let params = service.all_parameters();
        let address = Self::address(engine, service, AddressKind::Network)?;
        Ok(tenancy
            .env(&params, &address, &tenancy.admin_credentials(&params))
            .into_iter()
            .map(|(name, _)| name)
            .collect())
    }

    /// Refuses a link whose variables would overwrite those of a service already linked to the
    /// project: a deployment gets one value per name, and silently losing one service's
    /// credentials to another's is worse than saying so.
    async fn refuse_variable_clash(
        &self,
        service: &Service,
        project: &Project,
    ) -> ManagerResult<()> {
        let names = self.variable_names(service)?;
        for link in self.store.links_of_project(project.id).await? {
            if link.service_id == service.id {
                continue;
            }
            let Some(other) = self.store.service(link.service_id).await? else {
                continue;
            };
            let clash: Vec<String> = self
                .variable_names(&other)?
                .intersection(&names)
                .cloned()
                .collect();
            if !clash.is_empty() {
                return Err(ManagerError::Conflict(format!(
                    "{} and the already linked {} would both set {} in project {}; unlink {} first",
                    service.name,
                    other.name,
                    clash.join(", "),
                    project.slug,
                    other.name
                )));
            }
        }
        Ok(())
    }

    /// Names of projects linked to a service (for delete's refusal and force note).
    pub async fn linked_project_slugs(&self, service_id: i64) -> ManagerResult<Vec<String>> {
        let mut out = Vec::new();
        for link in self.store.links_of_service(service_id).await? {
            if let Some(p) = self.store.project(link.project_id).await? {
                out.push(p.slug);
            }
        }
        Ok(out)
    }
}

fn find_environment<'a>(project: &'a Project, slug: &str) -> ManagerResult<&'a Environment> {
    project
        .environments
        .iter()
        .find(|e| e.slug == slug)
        .ok_or_else(|| {
            ManagerError::NotFound(format!(
                "project {} has no environment {slug:?} (it has: {})",
                project.slug,
                project
                    .environments
                    .iter()
                    .map(|e| e.slug.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

struct PlannedTenant {
    environment_id: i64,
    name: String,
    number: Option<i64>,
    password: String,
}

/// Chooses names (and numbers) for new tenants: `{project}_{environment}` (`t_` in front if the
/// engine reserves that name, e.g. PostgreSQL's `pg_*`), with a hash suffix if that name is
/// already another tenant's or `in_use` in the server, re-seeded until free; numbers are the
/// lowest free ones. All or nothing: if there are not enough numbers, nothing is allocated.
#[allow(clippy::too_many_arguments)]
fn plan_tenants(
    allocation: Allocation,
    style: NameStyle,
    capacity: i64,
    project: &Project,
    missing: &[&Environment],
    existing: &[Tenant],
    service_name: &str,
    in_use: &dyn Fn(&str) -> bool,
    reserved: &dyn Fn(&str) -> bool,
) -> ManagerResult<Vec<PlannedTenant>> {
    let mut names_taken: HashSet<String> =
        existing.iter().map(|t| t.resource_name.clone()).collect();
    let numbers_taken: HashSet<i64> = existing.iter().filter_map(|t| t.resource_number).collect();
    let mut free_numbers = match allocation {
        Allocation::Numbered { first } => {
            let free: Vec<i64> = (first..capacity.min(first + 100_000))
                .filter(|n| !numbers_taken.contains(n))
                .collect();
            if free.len() < missing.len() {
                return Err(ManagerError::Conflict(format!(
                    "{service_name} has {capacity} databases and {} of the {} usable ones (database 0 is kept empty) are \
                     already allocated to project environments; linking {} needs {} more. Allocations are kept across \
                     unlinks so data is never reused by another project; use another service for this project",
                    numbers_taken.len(),
                    (capacity - first).max(0),
                    project.slug,
                    missing.len()
                )));
            }
            free.into_iter().collect::<std::collections::VecDeque<_>>()
        }
        Allocation::Named => Default::default(),
    };
    let mut plan = Vec::new();
    for env in missing {
        let mut base = names::tenant_name(style, &project.slug, &env.slug);
        if reserved(&base) {
            // A suffix would keep the reserved prefix: prefix instead.
            base = names::tenant_name(style, "t", &base);
        }
        let mut name = base.clone();
        let mut attempt = 0u32;
        while names_taken.contains(&name) || in_use(&name) || reserved(&name) {
            // Taken by another project's environment (normalisation collision, or a deleted
            // project's reservation) or by the server: the ids make this one distinct and
            // stable; re-seeded in the unlikely case the suffixed name is taken too.
            if attempt == 1000 {
                return Err(ManagerError::Conflict(format!(
                    "no free name for environment {} of project {} in {service_name}",
                    env.slug, project.slug
                )));
            }
            let mut seed = format!("project {} environment {}", project.id, env.id);
            if attempt > 0 {
                seed.push_str(&format!(" attempt {attempt}"));
            }
            name = names::with_hash_suffix(style, &base, &seed);
            attempt += 1;
        }
        names_taken.insert(name.clone());
        plan.push(PlannedTenant {
            environment_id: env.id,
            name,
            number: free_numbers.pop_front(),
            password: secrets::generate_password(TENANT_PASSWORD_LEN),
        });
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(id: i64, slug: &str, envs: &[(i64, &str)]) -> Project {
        Project {
            id,
            name: slug.into(),
            slug: slug.into(),
            created_at: String::new(),
            environments: envs
                .iter()
                .map(|(id, slug)| Environment {
                    id: *id,
                    name: slug.to_string(),
                    slug: slug.to_string(),
                    created_at: String::new(),
                })
                .collect(),
        }
    }

    fn tenant(name: &str, number: Option<i64>) -> Tenant {
        Tenant {
            id: 1,
            service_id: 1,
            project_id: 1,
            environment_id: 1,
            resource_name: name.into(),
            resource_number: number,
            username: name.into(),
            password: "x".into(),
            provisioned: true,
            revoked: false,
        }
    }

    #[test]
    fn names_that_collide_after_normalisation_get_a_stable_suffix() {
        // "a-b" + "c" and "a" + "b-c" both normalise to a_b_c.
        let p = project(2, "a", &[(7, "b-c")]);
        let envs: Vec<&Environment> = p.environments.iter().collect();
        let existing = [tenant("a_b_c", None)];
        let plan = plan_tenants(
            Allocation::Named,
            NameStyle::Identifier,
            i64::MAX,
            &p,
            &envs,
            &existing,
            "db",
            &|_| false,
            &|_| false,
        )
        .unwrap();
        assert_ne!(plan[0].name, "a_b_c");
        assert!(plan[0].name.starts_with("a_b_c_"));
        let again = plan_tenants(
            Allocation::Named,
            NameStyle::Identifier,
            i64::MAX,
            &p,
            &envs,
            &existing,
            "db",
            &|_| false,
            &|_| false,
        )
        .unwrap();
        assert_eq!(plan[0].name, again[0].name, "deterministic");
        assert_ne!(plan[0].password, again[0].password, "passwords are fresh");
    }

    #[test]
    fn names_the_server_uses_or_reserves_are_avoided() {
        let none = |_: &str| false;
        let plan_for = |slug: &str, in_use: &dyn Fn(&str) -> bool| {
            let p = project(3, slug, &[(9, "production")]);
            let envs: Vec<&Environment> = p.environments.iter().collect();
            let reserved = |n: &str| n.starts_with("pg_");
            plan_tenants(
                Allocation::Named,
                NameStyle::Identifier,
                i64::MAX,
                &p,
                &envs,
                &[],
                "db",
                in_use,
                &reserved,
            )
            .unwrap()
            .remove(0)
            .name
        };
        assert_eq!(plan_for("postgres", &none), "postgres_production");
        let first_suffix = names::with_hash_suffix(
            NameStyle::Identifier,
            "postgres_production",
            "project 3 environment 9",
        );
        // In use in the server: the first suffix, as for a tenant collision.
        let in_use = |n: &str| n == "postgres_production";
        assert_eq!(plan_for("postgres", &in_use), first_suffix);
        // The suffixed name is taken too: re-seeded until free, still deterministic.
        let taken = |n: &str| n == "postgres_production" || n == first_suffix;
        let name = plan_for("postgres", &taken);
        assert!(name.starts_with("postgres_production_"));
        assert_ne!(name, first_suffix);
        assert_eq!(name, plan_for("postgres", &taken));
        // Reserved (a prefix no suffix removes): prefixed instead, then suffixed if in use.
        assert_eq!(plan_for("pg", &none), "t_pg_production");
        let name = plan_for("pg", &|n: &str| n == "t_pg_production");
        assert!(name.starts_with("t_pg_production_"), "{name}");
    }

    #[test]
    fn numbers_are_the_lowest_free_and_all_or_nothing() {
        let p = project(1, "p", &[(1, "production"), (2, "staging")]);
        let envs: Vec<&Environment> = p.environments.iter().collect();
        let existing = [tenant("other_1", Some(1)), tenant("other_3", Some(3))];
        let plan = plan_tenants(
            Allocation::Numbered { first: 1 },
            NameStyle::Identifier,
            16,
            &p,
            &envs,
            &existing,
            "r",
            &|_| false,
            &|_| false,
        )
        .unwrap();
        assert_eq!(
            plan.iter().map(|t| t.number).collect::<Vec<_>>(),
            [Some(2), Some(4)]
        );
        let full = plan_tenants(
            Allocation::Numbered { first: 1 },
            NameStyle::Identifier,
            4,
            &p,
            &envs,
            &existing,
            "r",
            &|_| false,
            &|_| false,
        );
        assert!(
            matches!(full, Err(ManagerError::Conflict(_))),
            "only number 2 is left"
        );
    }
}
