//! Recognising the server inside a container Berth did not make, for import. Judged by what
//! the container runs, the environment its image sets and the ports it exposes — not by the
//! image's name alone, so a retagged or privately built image is still found, and a container
//! merely named `postgres` running something else is not.

use super::{Engine, registry};
use crate::docker::ContainerFacts;

/// What marks a container as running an engine's server. Each engine lists its own.
#[derive(Debug, Clone, Copy)]
pub struct Signature {
    /// Executables of the server (`postgres`, `redis-server`), matched against the basename of
    /// every word of the container's entrypoint and command.
    pub executables: &'static [&'static str],
    /// Environment variables only such images set (`PG_MAJOR`, `POSTGRES_PASSWORD`).
    pub env_names: &'static [&'static str],
    /// Words in the image's repository name (`postgres`, `postgis`): the weakest sign.
    pub image_words: &'static [&'static str],
}

// Weights: what runs and what the image sets are evidence; a port or a name only support it.
const EXECUTABLE: u32 = 4;
const ENV: u32 = 3;
const PORT: u32 = 1;
const IMAGE_WORD: u32 = 1;
/// Below this a container is not offered: a port and a name together are not enough.
pub const THRESHOLD: u32 = ENV;

/// A container recognised as a server of `engine`'s type.
#[derive(Clone, Copy)]
pub struct Recognized {
    pub engine: &'static dyn Engine,
    pub score: u32,
}

/// How strongly `facts` look like a server of `engine`'s type (0: not at all).
pub fn score(engine: &dyn Engine, facts: &ContainerFacts) -> u32 {
    let Some(signature) = engine.signature() else {
        return 0;
    };
    let mut score = 0;
    let runs = facts
        .command
        .iter()
        .flat_map(|arg| arg.split_whitespace())
        .map(|word| word.rsplit('/').next().unwrap_or(word))
        .any(|name| signature.executables.contains(&name));
    if runs {
        score += EXECUTABLE;
    }
    if signature
        .env_names
        .iter()
        .any(|name| facts.env_value(name).is_some())
    {
        score += ENV;
    }
    let (main_port, _) = engine.ports().first().copied().unwrap_or((0, ""));
    if facts.exposed_ports.contains(&main_port) {
        score += PORT;
    }
    let repository = facts
        .image
        .rsplit_once(':')
        .filter(|(_, tag)| !tag.contains('/'))
        .map_or(facts.image.as_str(), |(repo, _)| repo)
        .to_ascii_lowercase();
    if signature
        .image_words
        .iter()
        .any(|word| repository.contains(word))
    {
        score += IMAGE_WORD;
    }
    score
}

/// The engine whose server `facts` most look like, if one clearly does (a tie is no answer).
pub fn recognize(facts: &ContainerFacts) -> Option<Recognized> {
    let mut scored: Vec<Recognized> = registry()
        .iter()
        .map(|&engine| Recognized {
            engine,
            score: score(engine, facts),
        })
        .filter(|r| r.score >= THRESHOLD)
        .collect();
    scored.sort_by_key(|r| std::cmp::Reverse(r.score));
    match scored.as_slice() {
        [best, next, ..] if next.score == best.score => None,
        [best, ..] => Some(*best),
        [] => None,
    }
}

/// The server version the container says it runs: the engine's version variable (`PG_MAJOR`,
/// `REDIS_VERSION`) when the image sets it, else the image tag's leading number, else "".
pub fn detected_version(engine: &dyn Engine, facts: &ContainerFacts) -> String {
    if let Some(value) = engine.version_env().and_then(|var| facts.env_value(var)) {
        return value.to_string();
    }
    berth_core::params::image_major(&facts.image)
        .map(|major| major.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(image: &str, command: &[&str], env: &[&str], exposed: &[u16]) -> ContainerFacts {
        ContainerFacts {
            image: image.into(),
            command: command.iter().map(|s| s.to_string()).collect(),
            env: env.iter().map(|s| s.to_string()).collect(),
            exposed_ports: exposed.to_vec(),
            ..Default::default()
        }
    }

    fn recognized(f: &ContainerFacts) -> Option<&'static str> {
        recognize(f).map(|r| r.engine.service_type())
    }

    #[test]
    fn official_images_are_recognized() {
        let pg = facts(
            "postgres:16-alpine",
            &["docker-entrypoint.sh", "postgres"],
            &[
                "PG_MAJOR=16",
                "PG_VERSION=16.4",
                "PGDATA=/var/lib/postgresql/data",
            ],
            &[5432],
        );
        assert_eq!(recognized(&pg), Some("postgres"));
        let redis = facts(
            "redis:7",
            &["docker-entrypoint.sh", "redis-server", "--requirepass", "x"],
            &["REDIS_VERSION=7.2.4"],
            &[6379],
        );
        assert_eq!(recognized(&redis), Some("redis"));
        let mongo = facts(
            "mongo:7",
            &["docker-entrypoint.sh", "mongod"],
            &["MONGO_VERSION=7.0.12", "MONGO_MAJOR=7.0"],
            &[27017],
        );
        assert_eq!(recognized(&mongo), Some("mongodb"));
        let minio = facts(
            "minio/minio:latest",
            &["/usr/bin/docker-entrypoint.sh", "minio", "server", "/data"],
            &["MINIO_ROOT_USER=admin"],
            &[9000],
        );
        assert_eq!(recognized(&minio), Some("s3"));
    }

    #[test]
    fn a_renamed_image_is_recognized_by_what_it_runs() {
        let pg = facts(
            "acme/db:2024",
            &[
                "docker-entrypoint.sh",
                "postgres",
                "-c",
                "max_connections=200",
            ],
            &["PG_MAJOR=15"],
            &[5432],
        );
        assert_eq!(recognized(&pg), Some("postgres"));
        // A shell wrapper still names the server.
        let redis = facts(
            "acme/cache",
            &["sh", "-c", "exec /usr/bin/redis-server --port 6379"],
            &[],
            &[],
        );
        assert_eq!(recognized(&redis), Some("redis"));
    }

    #[test]
    fn a_name_or_a_port_alone_is_not_enough() {
        let web = facts("postgres-admin-ui:1", &["nginx"], &[], &[5432]);
        assert_eq!(recognized(&web), None);
        let app = facts(
            "acme/app",
            &["node", "server.js"],
            &["NODE_ENV=production"],
            &[9000],
        );
        assert_eq!(recognized(&app), None);
    }

    #[test]
    fn versions_come_from_the_image_environment_then_the_tag() {
        let pg = crate::engines::engine("postgres").unwrap();
        let by_env = facts("acme/db:latest", &["postgres"], &["PG_MAJOR=15"], &[]);
        assert_eq!(detected_version(pg, &by_env), "15");
        let by_tag = facts("postgres:17-alpine", &["postgres"], &[], &[]);
        assert_eq!(detected_version(pg, &by_tag), "17");
        let neither = facts("acme/db:latest", &["postgres"], &[], &[]);
        assert_eq!(detected_version(pg, &neither), "");
    }
}
