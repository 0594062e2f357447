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
//! guard) is copied from `benches/provision.rs` so both benches measure the same way.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, anyhow, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const IMAGE: &str = "berth/postgres:15";
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

const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// HTTP requests with `?wait=true` block for the whole operation, readiness included.
const HTTP_TIMEOUT: Duration = Duration::from_secs(180);
/// Requests under load are tiny; a stuck one must not stretch a window by minutes.
const LOAD_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const HEALTHZ_TIMEOUT: Duration = Duration::from_secs(60);
const PSQL_TIMEOUT: Duration = Duration::from_secs(60);
const DOCKER_TIMEOUT: Duration = Duration::from_secs(60);
const IMAGE_BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Time the server gets to exit on SIGTERM before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

fn main() -> anyhow::Result<()> {
    let reps = reps_from_env()?;
    let run_id = random_hex(8);
    // The guard owns everything that must go away however the bench ends (error or panic).
    let mut cleanup = Cleanup {
        server: None,
        service_name: service_name(&run_id),
        data_dir: tempfile::tempdir().context("creating the data directory")?,
    };
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

    let service = create_service(&api, &cleanup.service_name).await?;
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

fn reps_from_env() -> anyhow::Result<usize> {
    match std::env::var("BENCH_REPS") {
        Ok(value) => match value.trim().parse() {
            Ok(n) if n > 0 => Ok(n),
            _ => bail!("BENCH_REPS must be a positive integer, got {value:?}"),
        },
        Err(_) => Ok(DEFAULT_REPS),
    }
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
        url: format!(
            "{}/projects/{project_id}/environments/production/variables",
            api.base
        ),
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
    let (status, vars) = api.send_url(Method::GET, &variables.url, true).await?;
    let non_empty = vars.as_object().is_some_and(|o| !o.is_empty());
    if status != StatusCode::OK || !non_empty {
        bail!("variables endpoint answered {status} with {vars}; expected 200 and variables");
    }
    let (status, body) = api.send_url(Method::GET, &healthz.url, false).await?;
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
        url: format!("{}/external-services/types", api.base),
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
// The server under test and its one PostgreSQL service
// ---------------------------------------------------------------------------------------------

fn berth_binary() -> &'static str {
    env!("CARGO_BIN_EXE_berth")
}

fn service_name(run_id: &str) -> String {
    format!("bench-link-{run_id}")
}

/// Builds the image with Berth's own builder if it is missing (nothing is ever pulled).
async fn ensure_image(data_dir: &Path) -> anyhow::Result<()> {
    let inspect = docker(&["image", "inspect", "--format", "{{.Id}}", IMAGE]).await?;
    if inspect.status.success() {
        return Ok(());
    }
    eprintln!("{IMAGE} is missing; building it with `berth images build postgres`");
    let mut build = tokio::process::Command::new(berth_binary());
    build
        .args(["images", "build", "postgres"])
        .env("BERTH_DATA_DIR", data_dir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let status = tokio::time::timeout(IMAGE_BUILD_TIMEOUT, build.status())
        .await
        .context("building the image timed out")??;
    if !status.success() {
        bail!("`berth images build postgres` failed: {status}");
    }
    Ok(())
}

fn spawn_server(data_dir: &Path, port: u16) -> anyhow::Result<Child> {
    let log = std::fs::File::create(data_dir.join("serve.stderr"))?;
    Command::new(berth_binary())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("BERTH_DATA_DIR", data_dir)
        // A config file or external state database from the caller's shell would make the run
        // measure something else (and touch real state).
        .env_remove("BERTH_CONFIG")
        .env_remove("BERTH_DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting `berth serve`")
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
    let url = format!("{}/external-services/{id}?force=true&wait=true", api.base);
    let (status, body) = api.send_url(Method::DELETE, &url, true).await?;
    if status != StatusCode::NO_CONTENT && status != StatusCode::OK {
        bail!("DELETE service {id}: expected 204 or 200, got {status}: {body}");
    }
    Ok(())
}

/// Parameters are strings in the API; accept a number too rather than fail on a format detail.
fn param_port(service: &Value) -> anyhow::Result<u16> {
    let port = &service["parameters"]["port"];
    port.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| port.as_u64().and_then(|n| u16::try_from(n).ok()))
        .ok_or_else(|| anyhow!("service has no usable parameters.port: {service}"))
}

/// A minimal client for the Berth HTTP API.
struct Api {
    http: reqwest::Client,
    /// `http://127.0.0.1:<port>`, for the unauthenticated `/healthz`.
    root: String,
    /// `<root>/api`.
    base: String,
    token: String,
}

impl Api {
    /// Waits for `/healthz`, then reads the admin token the server wrote on first start.
    async fn connect(port: u16, data_dir: &Path, cleanup: &mut Cleanup) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .no_proxy() // everything is on loopback; a proxy from the environment must not interfere
            .build()?;
        let root = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + HEALTHZ_TIMEOUT;
        loop {
            if let Ok(resp) = http.get(format!("{root}/healthz")).send().await
                && resp.status() == StatusCode::OK
            {
                break;
            }
            cleanup.fail_if_server_exited()?;
            if Instant::now() >= deadline {
                bail!("/healthz not OK within {}s", HEALTHZ_TIMEOUT.as_secs());
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        let token_path = data_dir.join("admin-token");
        let token = std::fs::read_to_string(&token_path)
            .with_context(|| format!("reading {}", token_path.display()))?
            .trim()
            .to_string();
        Ok(Self {
            http,
            base: format!("{root}/api"),
            root,
            token,
        })
    }

    /// Sends a request to an absolute URL and returns the status with the body parsed as JSON
    /// (a JSON string if it is not JSON, Null if empty).
    async fn send_url(
        &self,
        method: Method,
        url: &str,
        authenticated: bool,
    ) -> anyhow::Result<(StatusCode, Value)> {
        self.send_with_body(method, url, authenticated, None).await
    }

    async fn send_with_body(
        &self,
        method: Method,
        url: &str,
        authenticated: bool,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut request = self.http.request(method.clone(), url);
        if authenticated {
            request = request.bearer_auth(&self.token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = response.status();
        let text = response.text().await?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, value))
    }

    /// An authenticated `/api` request; anything other than `expected` is an error with the body.
    async fn expect(
        &self,
        expected: StatusCode,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let (status, value) = self
            .send_with_body(method.clone(), &url, true, body)
            .await?;
        if status != expected {
            bail!("{method} {path}: expected {expected}, got {status}: {value}");
        }
        Ok(value)
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Runs the docker CLI with a bound, so a stuck daemon cannot hang the bench.
async fn docker(args: &[&str]) -> anyhow::Result<std::process::Output> {
    let mut cmd = tokio::process::Command::new("docker");
    cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
    tokio::time::timeout(DOCKER_TIMEOUT, cmd.output())
        .await
        .with_context(|| format!("docker {} timed out", args.join(" ")))?
        .context("running docker")
}

/// A port nothing listens on right now (the kernel picks it; there is a small race, accepted).
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Lowercase hex, so it is valid in service, container and volume names, SQL literals and
/// passwords.
fn random_hex(len: usize) -> String {
    let mut out = String::new();
    while out.len() < len {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        // RandomState is seeded randomly per instance: enough for names and a throwaway password.
        out.push_str(&format!("{:016x}", RandomState::new().hash_one(nanos)));
    }
    out.truncate(len);
    out
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    let mid = samples.len() / 2;
    if samples.len().is_multiple_of(2) {
        (samples[mid - 1] + samples[mid]) / 2
    } else {
        samples[mid]
    }
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn micros(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1_000_000.0)
}

// ---------------------------------------------------------------------------------------------
// Cleanup
// ---------------------------------------------------------------------------------------------

/// Stops the server and removes the container and volume the bench's service may have left
/// (by exact name, so nothing else on the host is touched), however the bench ends. The raw
/// roles and databases live inside that container and go with it.
struct Cleanup {
    server: Option<Child>,
    service_name: String,
    /// Dropped after `drop` has run, i.e. once the server is gone.
    data_dir: tempfile::TempDir,
}

impl Cleanup {
    /// Turns an early server exit into an error that shows the server's own words.
    fn fail_if_server_exited(&mut self) -> anyhow::Result<()> {
        let Some(child) = self.server.as_mut() else {
            return Ok(());
        };
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            bail!("`berth serve` exited early ({status}); its stderr:\n{log}");
        }
        Ok(())
    }

    fn log_path(&self) -> PathBuf {
        self.data_dir.path().join("serve.stderr")
    }

    /// SIGTERM first (the server shuts down gracefully), SIGKILL if it does not go in time.
    fn stop_server(&mut self) {
        let Some(mut child) = self.server.take() else {
            return;
        };
        let pid = child.id().to_string();
        let mut term = Command::new("kill");
        term.args(["-TERM", &pid]);
        if run_bounded(&mut term, Duration::from_secs(5))
            && wait_child(&mut child, SHUTDOWN_GRACE).is_some()
        {
            return;
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Names as Berth derives them (`berth_core::names`); errors are expected and ignored, as
    /// the API delete normally removed both already.
    fn remove_docker_objects(&self) {
        let container = format!("berth-postgres-{}", self.service_name);
        let volume = format!("{container}-data");
        let mut rm = Command::new("docker");
        rm.args(["rm", "-f", "-v", &container]);
        run_bounded(&mut rm, DOCKER_TIMEOUT);
        let mut rm_volume = Command::new("docker");
        rm_volume.args(["volume", "rm", "-f", &volume]);
        run_bounded(&mut rm_volume, DOCKER_TIMEOUT);
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // Server first, so it cannot create anything while we remove what it made.
        self.stop_server();
        self.remove_docker_objects();
    }
}

/// Runs a command quietly with a time bound; true if it ran and exited successfully.
fn run_bounded(cmd: &mut Command, timeout: Duration) -> bool {
    let spawned = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = spawned else {
        return false;
    };
    if let Some(status) = wait_child(&mut child, timeout) {
        return status.success();
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// Waits up to `timeout` for `child` to exit; its exit status if it did.
fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}
