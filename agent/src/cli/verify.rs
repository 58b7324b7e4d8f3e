//! `jobarchive verify [<job>]`: audit the archive of a job, of a whole namespace, or with `-A`
//! of every namespace, from the bucket alone. Lists the log objects, reads every manifest, reads
//! and hashes every object a manifest lists, and prints one line per attempt (complete,
//! incomplete or damaged, with the problems under it), the objects no manifest lists, then a
//! summary that names the scope covered. Exit 1 on any mismatch.

use super::{AllNamespaces, StoreArgs};
use crate::contract::{scope_prefix, PARTS_TREE};
use crate::error::{CliError, CliResult};
use crate::progress::Progress;
use crate::read::{self, FETCH_PARALLELISM};
use crate::store::{Store, StoreError};
use crate::verify::{self, AttemptCheck, Expected, Listing, Summary};
use clap::Args;
use futures::stream::{self, StreamExt};
use std::collections::HashMap;

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Job name (default: every job of the namespace, or with -A of the cluster)
    #[arg(conflicts_with = "all_namespaces")]
    pub job: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub all: AllNamespaces,
}

pub async fn run(args: VerifyArgs) -> CliResult<()> {
    let store = args.store.open().await?;
    let cluster = &args.store.cluster;
    let ns = args.store.scope(&args.all);
    let job = args.job.as_deref();
    // Logs before manifests: an object listed here was uploaded before its manifest entry was
    // written, so reading the manifests afterwards does not report a live job's newest object
    // as unlisted (save for the instant between the two writes).
    let listing: Listing = store
        .list(&scope_prefix("logs", cluster, ns, job))
        .await?
        .into_iter()
        .map(|o| (o.key, o.size))
        .collect();
    let docs = read::manifest_docs(&store, cluster, ns, job).await?;
    // Parts after heads: a part a head counts was written before that head.
    let parts = read::part_docs(&store, &scope_prefix(PARTS_TREE, cluster, ns, job)).await?;
    if docs.is_empty() && listing.is_empty() {
        let what = job.map(|j| format!("job {j}")).unwrap_or("any job".into());
        return Err(CliError::not_found(format!(
            "no manifests or log objects for {what} in {} (cluster {cluster}) at {}",
            args.store.scope_label(&args.all),
            store.describe()
        )));
    }
    // Each attempt's parts: `manifest-parts/…/pod=P/` is the folder its head names.
    let mut by_attempt: HashMap<&str, Vec<&read::PartDoc>> = HashMap::new();
    for p in &parts {
        if let Some(i) = p.key.find("/container=") {
            by_attempt.entry(&p.key[..=i]).or_default().push(p);
        }
    }
    let mut checks: Vec<AttemptCheck> = docs
        .iter()
        .map(|d| {
            let mine = match &d.parsed {
                Ok(m) => by_attempt.remove(m.pod.parts_prefix().as_str()),
                Err(_) => None,
            };
            verify::check_manifest(d, &mine.unwrap_or_default(), &listing)
        })
        .collect();
    check_bodies(&store, verify::to_read(&checks, &listing), &mut checks).await?;
    checks.sort_by_key(AttemptCheck::order);
    let unlisted = verify::unlisted(&checks, &listing);
    for c in &checks {
        print!("{}", c.render());
    }
    for g in &unlisted {
        print!("{}", g.render());
    }
    let mut summary = Summary::of(&checks, &unlisted, &listing);
    summary.pending = verify::pending(&checks, &listing);
    println!("{}", summary.line());
    if summary.ok() {
        Ok(())
    } else {
        Err(CliError::mismatch(format!(
            "the archive does not match its manifests: {} damaged attempts, {} unlisted objects",
            summary.damaged, summary.unlisted
        )))
    }
}

/// Read and hash every expected object, FETCH_PARALLELISM at a time, holding no more bodies
/// than that; each problem goes to the attempt that lists the object.
async fn check_bodies(
    store: &Store,
    expected: Vec<Expected>,
    checks: &mut [AttemptCheck],
) -> Result<(), StoreError> {
    let bytes = expected.iter().map(|e| e.bytes).sum();
    let progress = Progress::new(
        "verify",
        "objects checked",
        Some(expected.len() as u64),
        bytes,
    );
    let mut results = stream::iter(expected)
        .map(|e| async move {
            let body = store.get(&e.key).await?;
            tokio::task::spawn_blocking(move || {
                let problem = verify::check_body(&e, body.as_deref());
                (e.attempt, e.bytes, problem)
            })
            .await
            .map_err(|err| StoreError::fatal(format!("hashing failed: {err}")))
        })
        .buffer_unordered(FETCH_PARALLELISM);
    while let Some(result) = results.next().await {
        let (attempt, bytes, problem) = result?;
        checks[attempt].problems.extend(problem);
        progress.inc(bytes);
    }
    progress.finish();
    Ok(())
}
