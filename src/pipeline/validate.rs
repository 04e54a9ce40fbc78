//! The one check of a config, shared by `shiplog check`, the start and every reload, so
//! that what `check` accepts is what a run starts with.
//!
//! It builds what needs no outside party (the parsers and the enricher, the file globs, the
//! metadata source's PodList or API client) and checks what a start would open without
//! opening it for good: each sink ([`Sink::check`]: a file sink's file can be opened, a
//! Kafka sink's properties are valid, with no connection), the state database's folder, the
//! kubeconfig (or in-cluster config) when metadata or events need the API. It touches
//! nothing a running pipeline owns: the state database is not opened (a second descriptor
//! would drop the running store's locks), and `server.listen` is bound by the reload itself.

use std::path::{Path, PathBuf};

use crate::checkpoint::StoreError;
use crate::config::{Config, ConfigError, MetadataSource};
use crate::enrich::Enricher;
use crate::kube::PodIndex;
use crate::sink::Sink;
use crate::tail::{FileSet, FoundFile};

use super::{RunError, enricher, parsers};

/// A config that passed every check, with what the checks built.
#[derive(Debug)]
pub struct Validated {
    /// Records are made with it.
    pub enricher: Enricher,
    /// The include and exclude globs.
    pub files: FileSet,
    /// Where pod metadata will come from.
    pub metadata: MetadataPlan,
    /// The names of the parsers a pod may select.
    pub parser_names: Vec<String>,
}

/// The metadata source, ready to start.
pub enum MetadataPlan {
    /// The API, with a client built from the kubeconfig (nothing contacted yet).
    Api(kube::Client),
    /// A PodList file, read.
    File(PodIndex),
    /// None.
    Off,
}

impl std::fmt::Debug for MetadataPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetadataPlan::Api(_) => f.write_str("Api"),
            MetadataPlan::File(index) => f.debug_tuple("File").field(index).finish(),
            MetadataPlan::Off => f.write_str("Off"),
        }
    }
}

/// Checks `config` as far as can be done without starting it.
pub async fn validate(config: &Config) -> Result<Validated, RunError> {
    let parsers = parsers(config)?;
    let parser_names = parsers.names().map(str::to_owned).collect();
    let enricher = enricher(config, parsers)?;
    let files = FileSet::new(&config.tail.include, &config.tail.exclude)
        .map_err(|e| ConfigError::new(&config.source, "tail", e.to_string()))?;
    check_state_folder(config)?;
    for sink in &config.sinks {
        Sink::check(sink)
            .map_err(|e| ConfigError::new(&config.source, format!("sinks.{}", e.name), e.reason))?;
    }
    let metadata = metadata_plan(config).await?;
    if config.events.enabled {
        crate::events::client(config).await?;
    }
    Ok(Validated {
        enricher,
        files,
        metadata,
        parser_names,
    })
}

/// The state database's folder exists (the deployment mounts it; it is never created), and
/// the database's path is not a folder.
fn check_state_folder(config: &Config) -> Result<(), ConfigError> {
    let path = &config.state.path;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let fail = |reason: String| ConfigError::new(&config.source, "state.path", reason);
    if !dir.is_dir() {
        let missing = StoreError::MissingDirectory {
            dir: dir.to_path_buf(),
        };
        return Err(fail(missing.to_string()));
    }
    if path.is_dir() {
        return Err(fail(format!("{} is a folder", path.display())));
    }
    Ok(())
}

async fn metadata_plan(config: &Config) -> Result<MetadataPlan, ConfigError> {
    let kube = &config.kubernetes;
    match kube.metadata {
        MetadataSource::Off => Ok(MetadataPlan::Off),
        MetadataSource::File => {
            let path = kube.pods_file.as_deref().ok_or_else(|| {
                ConfigError::new(
                    &config.source,
                    "kubernetes.pods_file",
                    "required when metadata = \"file\"",
                )
            })?;
            PodIndex::load(path).map(MetadataPlan::File).map_err(|e| {
                ConfigError::new(&config.source, "kubernetes.pods_file", e.to_string())
            })
        }
        // Building a client reads the kubeconfig (or the in-cluster service account)
        // without contacting the API server.
        MetadataSource::Api => crate::kube::client(kube.kubeconfig.as_deref())
            .await
            .map(MetadataPlan::Api)
            .map_err(|e| ConfigError::new(&config.source, "kubernetes.kubeconfig", e.to_string())),
    }
}

/// The files the include globs match now, split into those shiplog can open and those it
/// cannot (with the reason): what `shiplog check` reports.
pub fn survey(files: &FileSet) -> (Vec<FoundFile>, Vec<(PathBuf, String)>) {
    let (found, mut unreadable) = files.scan();
    let mut readable = Vec::with_capacity(found.len());
    for file in found {
        match std::fs::File::open(&file.target) {
            Ok(_) => readable.push(file),
            Err(error) => unreadable.push((file.path, error.to_string())),
        }
    }
    (readable, unreadable)
}
