//! Linking benchmark, two ratios measured in one run against the real `berth serve` binary:
//!
//! 1. Link latency: `POST /api/external-services/{id}/projects` (database, login role, revoke
//!    and grants, done inside the server) against the raw baseline, `psql` running
//!    `CREATE ROLE` and `CREATE DATABASE` on the same PostgreSQL container.
//! 2. Throughput of `GET /api/projects/{id}/environments/production/variables` against the
//!    trivial `/healthz` handler of the same server, at a fixed client concurrency.
//!
//! Run with `cargo bench -p berth --bench linking` (`BENCH_REPS=N`, default 20). It needs a
//! Docker daemon and the `psql` client; the image `berth/postgres:15` is built locally if
//! missing, never pulled. It only prints: the goals are for a human to read.
//!
//! The process setup (temp data dir, spawning the server, reading the admin token, cleanup
//! guard) is shared with `benches/provision.rs` through `benches/support` so both benches
//! measure the same way.

mod support;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use support::{
    Api, Cleanup, IMAGE_BUILD_TIMEOUT, ensure_image, free_port, median, param_port, random_hex,
    reps_from_env, spawn_server,
};

const DEFAULT_REPS: usize = 20;
/// Client tasks sharing one HTTP client during a throughput window.
const CONCURRENCY: usize = 16;
/// Length of one throughput window; each endpoint gets two, alternating.
const WINDOW: Duration = Duration::from_secs(3);
/// Sequential requests per endpoint for the single-request diagnosis.
const SINGLE_SAMPLES: usize = 50;
/// The goals, printed next to the measurements.
const LINK_RATIO_GOAL: f64 = 1.5;
const LINK_ABSOLUTE_GOAL: Duration = Duration::from_millis(300);
const THROUGHPUT_RATIO_GOAL: f64 = 0.5;

/// Requests under load are tiny; a stuck one must not stretch a window by minutes.
const LOAD_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const PSQL_TIMEOUT: Duration = Duration::from_secs(60);

fn main() -> anyhow::Result<()> {
    let reps = reps_from_env(DEFAULT_REPS)?;
    let run_id = random_hex(8);
    // The guard owns everything that must go away however the bench ends (error or panic).
    // The raw roles and databases live inside the service's container and go with it.
    let mut cleanup = Cleanup::new(tempfile::tempdir().context("creating the data directory")?);
    cleanup.add_postgres_service(&service_name(&run_id));
    let runtime = tokio::runtime::Runtime::new()?;
    // A global bound on top of the per-step ones: image build, service create, a slot per rep,
    // the throughput windows and cleanup.
    let budget = IMAGE_BUILD_TIMEOUT + Duration::from_secs(600 + 150 * reps as u64);
    runtime.block_on(async {
        tokio::time::timeout(budget, bench(&mut cleanup, reps, &run_id))
            .await
            .map_err(|_| anyhow!("benchmark exceeded its {}s budget", budget.as_secs()))?
    })
}

/// Starts the server and the one postgres service, measures, and deletes the service through
/// the API whatever the measurement did (the guard covers what this cannot).
async fn bench(cleanup: &mut Cleanup, reps: usize, run_id: &str) -> anyhow::Result<()> {
    let data_dir = cleanup.data_dir.path().to_path_buf();
    ensure_image(&data_dir).await?;

    let listen_port = free_port()?;
    cleanup.server = Some(spawn_server(&data_dir, listen_port)?);
    let api = Api::connect(listen_port, &data_dir, cleanup).await?;
    let server_pid = cleanup.server.as_ref().map(Child::id).unwrap_or_default();

    let service = create_service(&api, &service_name(run_id)).await?;
    let measured = measure(&api, &service, server_pid, reps, run_id).await;
    let deleted = delete_service(&api, service.id).await;
    measured?;
    deleted
}

async fn measure(
    api: &Api,
    service: &PgService,
    server_pid: u32,
    reps: usize,
    run_id: &str,
) -> anyhow::Result<()> {
    let linked_project = link_latency(api, service, reps, run_id).await?;
    variables_throughput(api, linked_project, server_pid).await
}

// ---------------------------------------------------------------------------------------------
// Part 1: link latency against raw SQL over psql
// ---------------------------------------------------------------------------------------------

/// Runs the alternating link/psql repetitions, prints the medians, and returns the id of a
/// linked project (the one part 2 reads variables for).
async fn link_latency(
    api: &Api,
    service: &PgService,
    reps: usize,
    run_id: &str,
) -> anyhow::Result<i64> {
    let mut berth_times = Vec::with_capacity(reps);
    let mut raw_times = Vec::with_capacity(reps);
    let mut first_project = None;
    for i in 0..reps {
        // Project creation is setup, not part of linking: it stays outside the timed window.
        let project = create_project(api, i, run_id).await?;
        first_project.get_or_insert(project);
        // Alternate which side goes first so caches, checkpoints and background noise in the
        // shared PostgreSQL hit both alike.
        let berth_first = i.is_multiple_of(2);
        let (berth, raw) = if berth_first {
            let berth = berth_link(api, service.id, project).await?;
            (berth, raw_psql(service, i).await?)
        } else {
            let raw = raw_psql(service, i).await?;
            (berth_link(api, service.id, project).await?, raw)
        };
        println!(
            "rep {}/{reps} ({} first): berth link {}, raw psql {}",
            i + 1,
            if berth_first { "berth" } else { "raw" },
            millis(berth),
            millis(raw),
        );
        berth_times.push(berth);
        raw_times.push(raw);
    }

    let (berth_median, raw_median) = (median(&mut berth_times), median(&mut raw_times));
    println!(
        "link: berth median {}, raw psql median {}, ratio {:.2}x (goal <= {LINK_RATIO_GOAL}x, < {} ms)",
        millis(berth_median),
        millis(raw_median),
        berth_median.as_secs_f64() / raw_median.as_secs_f64(),
        LINK_ABSOLUTE_GOAL.as_millis(),
    );
    first_project.ok_or_else(|| anyhow!("no repetition ran"))
}

/// A fresh project per repetition: linking an already linked project is a no-op (200).
async fn create_project(api: &Api, i: usize, run_id: &str) -> anyhow::Result<i64> {
    let created = api
        .expect(
            StatusCode::CREATED,
            Method::POST,
            "/projects",
            Some(json!({ "name": format!("bench-{i}-{run_id}") })),
        )
        .await?;
    created["id"]
        .as_i64()
        .ok_or_else(|| anyhow!("project create answered without an id: {created}"))
}

/// Times one link (201 only after the database and role exist in PostgreSQL), then checks the
/// answer says the tenant is provisioned. Only the request is timed.
async fn berth_link(api: &Api, service_id: i64, project_id: i64) -> anyhow::Result<Duration> {
    let path = format!("/external-services/{service_id}/projects");
    let body = json!({ "project_id": project_id });
    let start = Instant::now();
    let link = api
        .expect(StatusCode::CREATED, Method::POST, &path, Some(body))
        .await?;
    let elapsed = start.elapsed();

    let provisioned = link["environments"]
        .as_array()
        .is_some_and(|envs| !envs.is_empty() && envs.iter().all(|e| e["provisioned"] == true));
    if !provisioned {
        bail!("link answered 201 but not every environment is provisioned: {link}");
    }
    Ok(elapsed)
}

/// The baseline the goal names: one `psql` process creating a login role and a database it
/// owns. Two `-c` arguments, because CREATE DATABASE cannot run inside a transaction block.
/// Process start and connection setup are included, as Berth's own admin connection is.
async fn raw_psql(service: &PgService, i: usize) -> anyhow::Result<Duration> {
    let name = format!("raw_{i}");
    let password = random_hex(24); // alphanumeric, so it needs no quoting inside the literal
    let port = service.port.to_string();
    let mut psql = tokio::process::Command::new("psql");
    psql.args(["-X", "-w", "-q"]) // no ~/.psqlrc, never prompt, no chatter
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-d",
            "postgres",
        ])
        .args(["-v", "ON_ERROR_STOP=1"])
        .arg("-c")
        .arg(format!("CREATE ROLE {name} LOGIN PASSWORD '{password}';"))
        .arg("-c")
        .arg(format!("CREATE DATABASE {name} OWNER {name};"))
        .env("PGPASSWORD", &service.password)
        .stdin(Stdio::null())
        .kill_on_drop(true);

    let start = Instant::now();
    let output = tokio::time::timeout(PSQL_TIMEOUT, psql.output())
        .await
        .context("psql timed out")?
        .context("running psql (is the PostgreSQL client installed?)")?;
    let elapsed = start.elapsed();
    if !output.status.success() {
        bail!(
            "psql for {name} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(elapsed)
}

// ---------------------------------------------------------------------------------------------
// Part 2: throughput of the variables endpoint against the trivial handler
// ---------------------------------------------------------------------------------------------

/// One endpoint under load: its URL and whether it needs the admin token.
struct Target {
    label: &'static str,
    url: String,
    token: Option<String>,
}

/// What one fixed-length window produced, plus the CPU both processes spent in it.
struct Window {
    ok: u64,
    failed: u64,
    elapsed: Duration,
    server_cpu: Duration,
    client_cpu: Duration,
}

/// Totals of an endpoint's windows.
#[derive(Default)]
struct Totals {
    ok: u64,
    elapsed: Duration,
    server_cpu: Duration,
}

impl Totals {
    fn add(&mut self, w: &Window) {
        self.ok += w.ok;
        self.elapsed += w.elapsed;
        self.server_cpu += w.server_cpu;
    }

    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// Wall time per request at this concurrency (the inverse of throughput): costs of
    /// different endpoints can be subtracted to see what a step adds.
    fn time_per_request(&self) -> Duration {
        Duration::try_from_secs_f64(1.0 / self.rate()).unwrap_or(Duration::MAX)
    }

    /// Server CPU per successful request.
    fn server_cpu_per_request(&self) -> Duration {
        self.server_cpu / u32::try_from(self.ok.max(1)).unwrap_or(u32::MAX)
    }
}

/// The load generator: one shared HTTP client, and what it needs to read CPU times.
struct Load {
    client: reqwest::Client,
    server_pid: u32,
    clk_tck: f64,
}

impl Load {
    fn new(server_pid: u32) -> anyhow::Result<Self> {
        // A client of its own: a short timeout, and a pool warmed only by these requests.
        let client = reqwest::Client::builder()
            .timeout(LOAD_REQUEST_TIMEOUT)
            .no_proxy()
            .build()?;
        Ok(Self {
            client,
            server_pid,
            clk_tck: clock_ticks_per_second(),
        })
    }

    fn cpu_times(&self) -> anyhow::Result<(Duration, Duration)> {
        Ok((
            cpu_time(&format!("/proc/{}/stat", self.server_pid), self.clk_tck)?,
            cpu_time("/proc/self/stat", self.clk_tck)?,
        ))
    }

    /// CONCURRENCY tasks hammer one endpoint until the window closes. A success is a 200
    /// with a non-empty body, read in full (so the connection goes back to the pool).
    async fn window(&self, target: &Target) -> anyhow::Result<Window> {
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let (server_before, client_before) = self.cpu_times()?;
        let start = Instant::now();
        let deadline = start + WINDOW;
        let mut tasks = Vec::with_capacity(CONCURRENCY);
        for _ in 0..CONCURRENCY {
            let (client, ok, failed) = (self.client.clone(), ok.clone(), failed.clone());
            let (url, token) = (target.url.clone(), target.token.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    let counter = if one_request(&client, &url, token.as_deref()).await {
                        &ok
                    } else {
                        &failed
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for task in tasks {
            task.await.context("load task panicked")?;
        }
        // Measured to the last answer, not the nominal window: in-flight requests end late.
        let elapsed = start.elapsed();
        let (server_after, client_after) = self.cpu_times()?;
        Ok(Window {
            ok: ok.load(Ordering::Relaxed),
            failed: failed.load(Ordering::Relaxed),
            elapsed,
            server_cpu: server_after.saturating_sub(server_before),
            client_cpu: client_after.saturating_sub(client_before),
        })
    }

    /// Median latency of one request at a time: the cost without any contention.
    async fn single_request_median(&self, target: &Target) -> anyhow::Result<Duration> {
        let mut samples = Vec::with_capacity(SINGLE_SAMPLES);
        for _ in 0..SINGLE_SAMPLES {
            let start = Instant::now();
            if !one_request(&self.client, &target.url, target.token.as_deref()).await {
                bail!(
                    "{} failed during the single-request diagnosis",
                    target.label
                );
            }
            samples.push(start.elapsed());
        }
        Ok(median(&mut samples))
    }
}

async fn one_request(client: &reqwest::Client, url: &str, token: Option<&str>) -> bool {
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    match request.send().await {
        Ok(response) if response.status() == StatusCode::OK => {
            response.bytes().await.is_ok_and(|body| !body.is_empty())
        }
        _ => false,
    }
}

/// CPU shares are of one core: 200% is both cores of a 2-core machine.
fn print_window(label: &str, which: &str, w: &Window) {
    let secs = w.elapsed.as_secs_f64();
    println!(
        "{label} {which}: {:.0} req/s ({} ok, {} failed), server CPU {:.0}%, bench client CPU {:.0}%",
        w.ok as f64 / secs,
        w.ok,
        w.failed,
        100.0 * w.server_cpu.as_secs_f64() / secs,
        100.0 * w.client_cpu.as_secs_f64() / secs,
    );
}

async fn variables_throughput(api: &Api, project_id: i64, server_pid: u32) -> anyhow::Result<()> {
    let variables = Target {
        label: "env variables",
        url: api.url(&format!(
            "/projects/{project_id}/environments/production/variables"
        )),
        token: Some(api.token.clone()),
    };
    let healthz = Target {
        label: "healthz",
        url: format!("{}/healthz", api.root),
        token: None,
    };
    // One correct answer of each before measuring: a fast stream of errors is not throughput.
    preflight(api, &variables, &healthz).await?;

    let load = Load::new(server_pid)?;
    let (mut a, mut b) = (Totals::default(), Totals::default());
    // b, a, b, a: alternating so a slow drift (other processes, page cache, WAL) hits both.
    for round in 1..=2 {
        for (target, totals) in [(&healthz, &mut b), (&variables, &mut a)] {
            let w = load.window(target).await?;
            print_window(target.label, &format!("window {round}/2"), &w);
            totals.add(&w);
        }
    }

    let ratio = a.rate() / b.rate();
    println!(
        "env variables: {:.0} req/s vs trivial handler {:.0} req/s, ratio {ratio:.2}x (goal >= {THROUGHPUT_RATIO_GOAL}x)",
        a.rate(),
        b.rate(),
    );
    if ratio < THROUGHPUT_RATIO_GOAL {
        diagnose(api, &load, [&healthz, &variables], [&b, &a]).await?;
    }
    Ok(())
}

/// Checks each endpoint answers what the load loop will count as a success.
async fn preflight(api: &Api, variables: &Target, healthz: &Target) -> anyhow::Result<()> {
    let (status, vars) = api
        .send(Method::GET, &variables.url, true, None, &[])
        .await?;
    let non_empty = vars.as_object().is_some_and(|o| !o.is_empty());
    if status != StatusCode::OK || !non_empty {
        bail!("variables endpoint answered {status} with {vars}; expected 200 and variables");
    }
    let (status, body) = api
        .send(Method::GET, &healthz.url, false, None, &[])
        .await?;
    if status != StatusCode::OK || body != Value::String("ok".into()) {
        bail!("/healthz answered {status} with {body}; expected 200 \"ok\"");
    }
    Ok(())
}

/// Below goal: splits the gap between `/healthz` and the variables endpoint into what bearer
/// authentication adds (shared by every /api route) and what the variables handler adds, by
/// also loading an authenticated handler that touches no state (`/external-services/types`).
async fn diagnose(
    api: &Api,
    load: &Load,
    [healthz, variables]: [&Target; 2],
    [healthz_totals, variables_totals]: [&Totals; 2],
) -> anyhow::Result<()> {
    let authed = Target {
        label: "authenticated trivial handler",
        url: api.url("/external-services/types"),
        token: Some(api.token.clone()),
    };
    if !one_request(&load.client, &authed.url, authed.token.as_deref()).await {
        bail!("GET {} did not answer 200 with a body", authed.url);
    }
    let w = load.window(&authed).await?;
    print_window(authed.label, "window (diagnosis)", &w);
    let mut authed_totals = Totals::default();
    authed_totals.add(&w);

    let [per_healthz, per_authed, per_variables] =
        [healthz_totals, &authed_totals, variables_totals].map(Totals::time_per_request);
    let auth_adds = per_authed.saturating_sub(per_healthz);
    let handler_adds = per_variables.saturating_sub(per_authed);
    println!(
        "below goal: time per request under load: healthz {}, authenticated trivial {} (auth adds {}), env variables {} (its handler adds {})",
        micros(per_healthz),
        micros(per_authed),
        micros(auth_adds),
        micros(per_variables),
        micros(handler_adds),
    );
    let [cpu_healthz, cpu_authed, cpu_variables] =
        [healthz_totals, &authed_totals, variables_totals].map(Totals::server_cpu_per_request);
    println!(
        "below goal: server CPU per request under load: healthz {}, authenticated trivial {}, env variables {}",
        micros(cpu_healthz),
        micros(cpu_authed),
        micros(cpu_variables),
    );
    println!(
        "below goal: one request at a time (median of {SINGLE_SAMPLES}): healthz {}, authenticated trivial {}, env variables {}",
        micros(load.single_request_median(healthz).await?),
        micros(load.single_request_median(&authed).await?),
        micros(load.single_request_median(variables).await?),
    );
    let dominant = if auth_adds >= handler_adds {
        "bearer-token authentication (shared by every /api route)"
    } else {
        "the variables handler's own work"
    };
    println!("below goal: {dominant} dominates");
    Ok(())
}

/// utime + stime of a process from its `/proc/<pid>/stat`.
fn cpu_time(stat_path: &str, clk_tck: f64) -> anyhow::Result<Duration> {
    let stat =
        std::fs::read_to_string(stat_path).with_context(|| format!("reading {stat_path}"))?;
    // The command name may contain spaces; the fields after it are fixed. utime and stime are
    // fields 14 and 15 overall, i.e. 12 and 13 after the `)` that closes the name.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let (Some(utime), Some(stime)) = (tick(11), tick(12)) else {
        bail!("unexpected format of {stat_path}");
    };
    Ok(Duration::from_secs_f64((utime + stime) as f64 / clk_tck))
}

/// The kernel's USER_HZ for /proc times; 100 on every common Linux if getconf is missing.
fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

// ---------------------------------------------------------------------------------------------
// The one PostgreSQL service the bench links against
// ---------------------------------------------------------------------------------------------

fn service_name(run_id: &str) -> String {
    format!("bench-link-{run_id}")
}

/// What the bench needs to know about the service: its id, published port and superuser
/// password (user and database are both `postgres`).
struct PgService {
    id: i64,
    port: u16,
    password: String,
}

/// Creates the service (201 only once PostgreSQL accepts logins) and reveals its password.
async fn create_service(api: &Api, name: &str) -> anyhow::Result<PgService> {
    let body = json!({ "name": name, "service_type": "postgres", "parameters": {} });
    let created = api
        .expect(
            StatusCode::CREATED,
            Method::POST,
            "/external-services?wait=true",
            Some(body),
        )
        .await?;
    let id = created["id"]
        .as_i64()
        .ok_or_else(|| anyhow!("create answered without an id: {created}"))?;
    let revealed = api
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("/external-services/{id}/reveal"),
            None,
        )
        .await?;
    let password = revealed["parameters"]["password"]
        .as_str()
        .ok_or_else(|| anyhow!("reveal answered without a password"))?
        .to_string();
    Ok(PgService {
        id,
        port: param_port(&created)?,
        password,
    })
}

/// `force` unlinks the bench projects first; `wait` returns once container and volume are gone.
/// Success is 204, or 200 with a note listing what `force` unlinked.
async fn delete_service(api: &Api, id: i64) -> anyhow::Result<()> {
    let url = api.url(&format!("/external-services/{id}?force=true&wait=true"));
    let (status, body) = api.send(Method::DELETE, &url, true, None, &[]).await?;
    if status != StatusCode::NO_CONTENT && status != StatusCode::OK {
        bail!("DELETE service {id}: expected 204 or 200, got {status}: {body}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn micros(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1_000_000.0)
}
