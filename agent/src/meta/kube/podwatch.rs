//! The node's pod watch: every pod with `spec.nodeName=<node>`, kept in the cache for the
//! lifetime of the agent. kube-runtime's watcher relists on 410 Gone and reconnects after
//! errors, with client-go's backoff between attempts.

use super::health::{is_expired_watch, RequestError};
use super::Shared;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often expired entries leave the cache.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

pub(super) async fn run(shared: Arc<Shared>, node: String) {
    let api: Api<Pod> = Api::all(shared.client.clone());
    // Every node of the cluster lists its pods at start and after each 410: one unpaged list
    // with resourceVersion=0 is served from the API server's watch cache instead of etcd, as
    // client-go's informers do. A node holds ~110 pods at most, so no paging is needed.
    let mut config = watcher::Config::default()
        .fields(&format!("spec.nodeName={node}"))
        .any_semantic();
    config.page_size = None;
    let mut events = std::pin::pin!(watcher(api, config).default_backoff());
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(event)) => on_event(&shared, event),
                Some(Err(e)) if is_expired_watch(&e) => {
                    tracing::debug!("pod watch expired (410 Gone); relisting");
                }
                Some(Err(e)) => shared.watch_health.failed(&RequestError::from_watch(&e)),
                None => return,
            },
            _ = prune.tick() => shared.update(|c| c.prune(Instant::now())),
        }
    }
}

fn on_event(shared: &Shared, event: Event<Pod>) {
    let now = Instant::now();
    // `Init` comes before the list is requested: only the others show the API answering.
    if !matches!(event, Event::Init) {
        shared.watch_health.ok();
    }
    match event {
        Event::Init => shared.update(|c| c.relist_started()),
        Event::InitApply(pod) | Event::Apply(pod) => {
            let uid = pod.metadata.uid.clone();
            shared.update(|c| c.apply(pod, now));
            uid.inspect(|uid| shared.pod_changed(uid));
        }
        Event::Delete(pod) => {
            let uid = pod.metadata.uid.clone();
            shared.update(|c| c.delete(pod, now));
            uid.inspect(|uid| shared.pod_changed(uid));
        }
        Event::InitDone => {
            shared.update(|c| c.relist_done(now));
            shared.mark_synced();
        }
    }
}
