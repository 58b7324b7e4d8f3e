//! Post-mortem records (CONTRACT §3, v1.1): what `kubectl describe job` showed, kept after the
//! API has forgotten it. Events expire an hour after their last update (the API server's
//! `--event-ttl`), and a Job goes with its CronJob's history limit or its
//! `ttlSecondsAfterFinished`; the agent archives each attempt's Events and the Job's final
//! record beside its logs and footprints, and `jobarchive describe` reads them back.
//!
//! - `record`: the documents (one definition for the agent and `describe`).
//! - `collector`: when to ask the cluster and what to write; driven by the footprint recorder's
//!   passes, which already observe every Job pod of the node.
//! - `describe`: the `describe` command's model and rendering, from the bucket alone.
//!
//! The collector asks the cluster through [`ClusterRecords`]: the Kubernetes source implements
//! it with API requests (meta/kube/records.rs), the demo with simulated objects.

pub mod collector;
pub mod describe;
pub mod record;

use futures::future::BoxFuture;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Event;

pub use collector::{pod_state, Collector, Observation};
pub use record::{EventRecord, EventSet, JobRecord, JobSpecSummary};

/// A request the cluster did not answer. `permanent`: a refusal (403 without `events: list`,
/// a rejected request) that asking again will not change.
#[derive(Clone, Debug)]
pub struct RecordsError {
    pub message: String,
    pub permanent: bool,
}

/// What the Job lookup found.
pub enum JobLookup {
    /// The Job, by name and with the same uid.
    Found(Box<Job>),
    /// Not in the API any more (or another Job by that name): what the source saw of it before,
    /// if anything.
    Gone {
        spec: Option<JobSpecSummary>,
        created: Option<String>,
    },
}

/// What the collector needs from the cluster. Events are asked for by their involvedObject's
/// uid within one namespace (a pod's or a Job's), never by a cluster-wide list or watch.
pub trait ClusterRecords: Send + Sync {
    /// The Events whose involvedObject has `uid`, in `namespace`.
    fn events(
        &self,
        namespace: &str,
        uid: &str,
    ) -> BoxFuture<'static, Result<Vec<Event>, RecordsError>>;
    /// The Job `name` in `namespace`, if it is still the one with `uid`.
    fn job(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
    ) -> BoxFuture<'static, Result<JobLookup, RecordsError>>;
}
