//! Agent configuration: the TOML file (config/jobarchive.toml documents every key), overridden
//! by flags and `JOBARCHIVE_*` environment variables in `cli::agent`.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub cluster: String,
    pub node_name: String,
    pub log_dir: PathBuf,
    pub state_dir: PathBuf,
    pub allowed_roots: Vec<PathBuf>,
    pub kube: KubeMode,
    pub cgroup_root: PathBuf,
    pub include_pods_without_job: bool,
    pub namespaces_include: Vec<String>,
    pub namespaces_exclude: Vec<String>,
    pub max_line_bytes: usize,
    pub rescan_interval_secs: u64,
    pub metadata_wait_secs: u64,
    pub shutdown_timeout_secs: u64,
    pub http_listen: String,
    pub log_format: LogFormat,
    pub store: StoreConfig,
    pub batch: BatchConfig,
    pub footprint: FootprintConfig,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum KubeMode {
    Auto,
    On,
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub url: String,
    pub path_style: bool,
    pub upload_concurrency: usize,
    pub max_retries: u32,
    pub spool_max_bytes: u64,
    pub ca_bundle: String,
    pub sse: String,
    pub sse_kms_key_id: String,
    pub storage_class: String,
    pub object_lock_mode: String,
    pub object_lock_days: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    pub max_bytes: usize,
    pub max_age_secs: u64,
    pub quiet_secs: u64,
    pub manifest_interval_secs: u64,
    pub compression_level: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FootprintConfig {
    pub sample_interval_secs: u64,
    pub write_interval_secs: u64,
    pub headroom_percent: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cluster: "default".into(),
            node_name: String::new(),
            log_dir: "/var/log/pods".into(),
            state_dir: "/var/lib/jobarchive".into(),
            allowed_roots: vec!["/var/log/pods".into(), "/var/lib/docker/containers".into()],
            kube: KubeMode::Auto,
            cgroup_root: "/sys/fs/cgroup".into(),
            include_pods_without_job: false,
            namespaces_include: vec![],
            namespaces_exclude: vec![],
            max_line_bytes: 1 << 20,
            rescan_interval_secs: 60,
            metadata_wait_secs: 30,
            shutdown_timeout_secs: 45,
            http_listen: "0.0.0.0:9808".into(),
            log_format: LogFormat::Text,
            store: StoreConfig::default(),
            batch: BatchConfig::default(),
            footprint: FootprintConfig::default(),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: String::new(),
            path_style: false,
            upload_concurrency: 8,
            max_retries: 5,
            spool_max_bytes: 512 << 20,
            ca_bundle: String::new(),
            sse: String::new(),
            sse_kms_key_id: String::new(),
            storage_class: String::new(),
            object_lock_mode: String::new(),
            object_lock_days: 0,
        }
    }
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_bytes: 4 << 20,
            max_age_secs: 60,
            quiet_secs: 5,
            manifest_interval_secs: 60,
            compression_level: 1,
        }
    }
}

impl Default for FootprintConfig {
    fn default() -> Self {
        FootprintConfig {
            sample_interval_secs: 5,
            write_interval_secs: 60,
            headroom_percent: 20,
        }
    }
}

impl Config {
    /// Read a TOML file; a missing or invalid file is a one-line error naming the file.
    pub fn from_file(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        Self::from_toml(&text).map_err(|e| format!("invalid config {}: {e}", path.display()))
    }

    pub fn from_toml(text: &str) -> Result<Config, String> {
        let cfg: Config = toml::from_str(text).map_err(|e| e.message().to_string())?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Whether pods of namespace `ns` are archived (`namespaces_include`/`_exclude`).
    pub fn namespace_allowed(&self, ns: &str) -> bool {
        (self.namespaces_include.is_empty() || self.namespaces_include.iter().any(|n| n == ns))
            && !self.namespaces_exclude.iter().any(|n| n == ns)
    }

    /// Values no run can work with, caught before anything starts.
    pub fn validate(&self) -> Result<(), String> {
        if !crate::contract::is_safe_segment(&self.cluster) {
            return Err(format!(
                "cluster {:?} is not a valid name (letters, digits, '-', '.', '_')",
                self.cluster
            ));
        }
        if self.batch.max_bytes < 1024 {
            return Err("batch.max_bytes must be at least 1024".into());
        }
        if self.batch.max_age_secs == 0 || self.batch.quiet_secs == 0 {
            return Err("batch.max_age_secs and batch.quiet_secs must be at least 1".into());
        }
        if self.batch.compression_level > 9 {
            return Err("batch.compression_level must be 0-9".into());
        }
        if self.max_line_bytes < 16 {
            return Err("max_line_bytes must be at least 16".into());
        }
        if self.footprint.sample_interval_secs == 0 {
            return Err("footprint.sample_interval_secs must be at least 1".into());
        }
        if self.store.upload_concurrency == 0 {
            return Err("store.upload_concurrency must be at least 1".into());
        }
        self.store.validate_protection()
    }
}

impl StoreConfig {
    /// True when any object protection option is set (they apply to S3 stores only).
    pub fn protects(&self) -> bool {
        !self.sse.is_empty() || !self.storage_class.is_empty() || !self.object_lock_mode.is_empty()
    }

    fn validate_protection(&self) -> Result<(), String> {
        if !matches!(self.sse.as_str(), "" | "AES256" | "aws:kms") {
            return Err(format!(
                "store.sse must be \"\", \"AES256\" or \"aws:kms\", not {:?}",
                self.sse
            ));
        }
        if !self.sse_kms_key_id.is_empty() && self.sse != "aws:kms" {
            return Err("store.sse_kms_key_id needs store.sse = \"aws:kms\"".into());
        }
        // Log objects in these classes cannot be read back without a restore, which breaks
        // `fetch` and `verify`; a lifecycle transition (docs/audit.md) is the way to get there.
        if matches!(self.storage_class.as_str(), "GLACIER" | "DEEP_ARCHIVE") {
            return Err(format!(
                "store.storage_class {:?} is not readable without a restore: upload as STANDARD and move objects with a lifecycle rule (docs/audit.md)",
                self.storage_class
            ));
        }
        if !self
            .storage_class
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(format!(
                "store.storage_class {:?} is not a storage class name (STANDARD_IA, INTELLIGENT_TIERING ...)",
                self.storage_class
            ));
        }
        match (self.object_lock_mode.as_str(), self.object_lock_days) {
            ("", 0) => Ok(()),
            ("", _) => Err("store.object_lock_days needs store.object_lock_mode".into()),
            ("GOVERNANCE" | "COMPLIANCE", 0) => {
                Err("store.object_lock_mode needs store.object_lock_days of at least 1".into())
            }
            ("GOVERNANCE" | "COMPLIANCE", _) => Ok(()),
            (mode, _) => Err(format!(
                "store.object_lock_mode must be \"\", \"GOVERNANCE\" or \"COMPLIANCE\", not {mode:?}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_config_file_equals_the_defaults() {
        let text = include_str!("../../config/jobarchive.toml");
        let from_file = Config::from_toml(text).unwrap();
        let defaults = Config::default();
        assert_eq!(
            toml::to_string(&from_file).unwrap(),
            toml::to_string(&defaults).unwrap()
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_one_line_errors() {
        let e = Config::from_toml("colour = 1").unwrap_err();
        assert!(e.contains("colour"), "{e}");
        assert!(Config::from_toml("[batch]\ncompression_level = 12").is_err());
        assert!(Config::from_toml("kube = \"maybe\"").is_err());
        assert!(Config::from_toml("cluster = \"a/b\"").is_err());
        assert!(Config::from_toml("[footprint]\nsample_interval_secs = 0").is_err());
    }

    #[test]
    fn protection_options_are_checked_together() {
        let ok = [
            "[store]\nsse = \"AES256\"",
            "[store]\nsse = \"aws:kms\"\nsse_kms_key_id = \"alias/logs\"",
            "[store]\nstorage_class = \"STANDARD_IA\"",
            "[store]\nobject_lock_mode = \"COMPLIANCE\"\nobject_lock_days = 365",
        ];
        for text in ok {
            let cfg = Config::from_toml(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(cfg.store.protects());
        }
        let bad = [
            ("[store]\nsse = \"aes256\"", "store.sse"),
            ("[store]\nsse_kms_key_id = \"k\"", "aws:kms"),
            ("[store]\nstorage_class = \"GLACIER\"", "lifecycle"),
            ("[store]\nstorage_class = \"standard ia\"", "storage class"),
            (
                "[store]\nobject_lock_mode = \"GOVERNANCE\"",
                "object_lock_days",
            ),
            ("[store]\nobject_lock_days = 3", "object_lock_mode"),
            (
                "[store]\nobject_lock_mode = \"LEGAL\"\nobject_lock_days = 3",
                "LEGAL",
            ),
        ];
        for (text, needle) in bad {
            let e = Config::from_toml(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            /// Arbitrary text never panics the parser: it is a config or a one-line error.
            #[test]
            fn any_text_is_a_config_or_a_one_line_error(text in "\\PC{0,200}") {
                if let Err(e) = Config::from_toml(&text) {
                    prop_assert!(!e.is_empty());
                }
            }

            /// Known keys with values of any type: a config or an error, never a panic.
            #[test]
            fn known_keys_with_odd_values_never_panic(
                key in prop::sample::select(vec![
                    "cluster", "log_dir", "max_line_bytes", "rescan_interval_secs",
                    "shutdown_timeout_secs", "kube", "namespaces_include", "store.url",
                    "store.upload_concurrency", "store.spool_max_bytes", "batch.max_bytes",
                    "batch.compression_level", "footprint.headroom_percent",
                ]),
                value in prop_oneof![
                    any::<i64>().prop_map(|n| n.to_string()),
                    "\\PC{0,20}".prop_map(|s| format!("{s:?}")),
                    Just("[]".to_string()),
                    Just("{}".to_string()),
                    Just("1e400".to_string()),
                    Just("true".to_string()),
                ],
            ) {
                let text = match key.split_once('.') {
                    Some((table, k)) => format!("[{table}]\n{k} = {value}\n"),
                    None => format!("{key} = {value}\n"),
                };
                let _ = Config::from_toml(&text);
            }
        }
    }
}
