//! The Kubernetes source as the post-mortem collector's view of the cluster
//! (`postmortem::ClusterRecords`): Events listed by their involvedObject's uid in one namespace
//! (what `kubectl describe` asks for), and a Job by name. Nothing cluster-wide, no watch: the
//! collector decides how often (postmortem/collector.rs documents the load per pod and Job).

use super::fetch::{bounded, PAGE_SIZE};
use super::health::RequestError;
use super::KubeSource;
use crate::postmortem::{ClusterRecords, JobLookup, RecordsError};
use futures::future::BoxFuture;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};

fn refused(e: RequestError) -> RecordsError {
    RecordsError {
        permanent: e.permanent(),
        message: e.detail,
    }
}

impl ClusterRecords for KubeSource {
    fn events(
        &self,
        namespace: &str,
        uid: &str,
    ) -> BoxFuture<'static, Result<Vec<Event>, RecordsError>> {
        let api: Api<Event> = Api::namespaced(self.shared.client.clone(), namespace);
        let selector = format!("involvedObject.uid={uid}");
        Box::pin(async move {
            let mut events = Vec::new();
            let mut params = ListParams::default().fields(&selector).limit(PAGE_SIZE);
            loop {
                let page = bounded(api.list(&params)).await.map_err(refused)?;
                events.extend(page.items);
                match page.metadata.continue_.filter(|t| !t.is_empty()) {
                    Some(token) => params = params.continue_token(&token),
                    None => return Ok(events),
                }
            }
        })
    }

    /// With the Job gone, what the pods' identity lookups saw of it (if still cached).
    fn job(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
    ) -> BoxFuture<'static, Result<JobLookup, RecordsError>> {
        let api: Api<Job> = Api::namespaced(self.shared.client.clone(), namespace);
        let (name, uid) = (name.to_string(), uid.to_string());
        let seen = self.shared.cache().job_seen(&uid);
        Box::pin(async move {
            let job = bounded(api.get_opt(&name)).await.map_err(refused)?;
            // A Job recreated under the same name is another Job: ours is gone.
            Ok(
                match job.filter(|j| j.metadata.uid.as_deref() == Some(uid.as_str())) {
                    Some(job) => JobLookup::Found(Box::new(job)),
                    None => JobLookup::Gone {
                        spec: seen.as_ref().map(|s| s.spec.clone()),
                        created: seen.and_then(|s| s.created.clone()),
                    },
                },
            )
        })
    }
}
