//! On-demand requests, spawned on the runtime from a lookup: a pod's Job, a Job's pods, a pod the
//! watch has not shown. Each settles its cache entry (waking waiting lookups) and reports to the
//! lookups' health. Only gets of single objects and lists by label inside one namespace: nothing
//! cluster-wide besides the node's pod watch.

use super::attempt::Member;
use super::cache::{JobFacts, JobSeen, Owner};
use super::health::RequestError;
use super::Shared;
use crate::meta::PodDir;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One request (or one page) may take this long; a watch is not bounded by it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
pub(super) const PAGE_SIZE: u32 = 500;

pub(super) fn job(shared: &Arc<Shared>, namespace: &str, owner: &Owner) {
    let api: Api<Job> = Api::namespaced(shared.client.clone(), namespace);
    let (name, uid) = (owner.name.clone(), owner.uid.clone());
    let job_uid = uid.clone();
    spawn(
        shared,
        async move {
            let job = bounded(api.get_opt(&name)).await?;
            // A Job recreated under the same name is another Job: ours is gone.
            Ok(job.filter(|j| j.metadata.uid.as_deref() == Some(uid.as_str())))
        },
        move |c, result, now| {
            let facts = result.map(|job| job.map_or_else(JobFacts::default, |j| facts_of(&j)));
            c.job_fetched(&job_uid, facts, now)
        },
    );
}

fn facts_of(job: &Job) -> JobFacts {
    use crate::postmortem::record::{job_created, owning_cronjob, JobSpecSummary};
    JobFacts {
        exists: true,
        cronjob: owning_cronjob(job),
        seen: Some(std::sync::Arc::new(JobSeen {
            spec: JobSpecSummary::of(job),
            created: job_created(job),
        })),
    }
}

/// The Job's pods by its controller-uid label, every page.
pub(super) fn job_pods(
    shared: &Arc<Shared>,
    namespace: &str,
    job_uid: &str,
    selector: String,
    snapshot: Vec<String>,
) {
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), namespace);
    let job_uid = job_uid.to_string();
    spawn(
        shared,
        async move {
            let mut members = Vec::new();
            let mut params = ListParams::default().labels(&selector).limit(PAGE_SIZE);
            loop {
                let page = bounded(api.list(&params)).await?;
                members.extend(page.items.iter().filter_map(Member::of));
                match page.metadata.continue_.filter(|t| !t.is_empty()) {
                    Some(token) => params = params.continue_token(&token),
                    None => return Ok(members),
                }
            }
        },
        move |c, result, now| c.pods_listed(&job_uid, snapshot, result, now),
    );
}

/// A pod by name; only the very pod of the log folder (same uid) counts.
pub(super) fn pod(shared: &Arc<Shared>, dir: &PodDir) {
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &dir.namespace);
    let (name, uid) = (dir.pod.clone(), dir.uid.clone());
    spawn(
        shared,
        async move {
            let pod = bounded(api.get_opt(&name)).await?;
            Ok(pod.filter(|p| p.metadata.uid.as_deref() == Some(uid.as_str())))
        },
        {
            let (dir, uid) = (dir.clone(), dir.uid.clone());
            move |c, result, now| {
                if matches!(result, Ok(None)) {
                    tracing::warn!(pod = %dir.pod, namespace = %dir.namespace, "pod not in the Kubernetes API (deleted before the agent saw it); shipping with metadata from its log path");
                }
                c.pod_got(&uid, result, now)
            }
        },
    );
}

pub(super) async fn bounded<T>(
    request: impl Future<Output = kube::Result<T>>,
) -> Result<T, RequestError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(result) => result.map_err(|e| RequestError::from_kube(&e)),
        Err(_) => Err(RequestError::timeout(REQUEST_TIMEOUT.as_secs())),
    }
}

/// Run `request` on the runtime, report its outcome, and hand it to `settle` under the cache
/// lock (as `Err(permanent)` on failure).
fn spawn<T: Send + 'static>(
    shared: &Arc<Shared>,
    request: impl Future<Output = Result<T, RequestError>> + Send + 'static,
    settle: impl FnOnce(&mut super::cache::Cache, Result<T, bool>, Instant) + Send + 'static,
) {
    let shared2 = shared.clone();
    shared.runtime.spawn(async move {
        let result = request.await;
        match &result {
            Ok(_) => shared2.lookup_health.ok(),
            Err(e) => shared2.lookup_health.failed(e),
        }
        let result = result.map_err(|e| e.permanent());
        shared2.update(|c| settle(c, result, Instant::now()));
    });
}
