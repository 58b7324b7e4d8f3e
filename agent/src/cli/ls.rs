//! `jobarchive ls`: the archived jobs of a namespace (or with `-A` of every namespace), one
//! line per run.

use super::{AllNamespaces, StoreArgs};
use crate::error::{CliError, CliResult};
use crate::read;
use clap::Args;

#[derive(Args, Debug)]
pub struct LsArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub all: AllNamespaces,
}

pub async fn run(args: LsArgs) -> CliResult<()> {
    let store = args.store.open().await?;
    let cluster = &args.store.cluster;
    let ns = args.store.scope(&args.all);
    let mut runs = read::job_runs(read::manifests(&store, cluster, ns, None).await?);
    if runs.is_empty() {
        return Err(CliError::not_found(format!(
            "no archived jobs in {} (cluster {cluster}) at {}",
            args.store.scope_label(&args.all),
            store.describe()
        )));
    }
    // job_runs orders by job; across namespaces, each namespace's jobs together.
    runs.sort_by(|a, b| a.namespace.cmp(&b.namespace));
    let rows: Vec<[String; 8]> = runs
        .iter()
        .map(|r| {
            [
                r.namespace.clone(),
                r.job.clone(),
                r.job_uid.clone(),
                r.cronjob.clone().unwrap_or_else(|| "-".into()),
                r.attempts.len().to_string(),
                r.first_ts.clone(),
                r.last_ts.clone(),
                r.bytes.to_string(),
            ]
        })
        .collect();
    let header = [
        "NAMESPACE",
        "JOB",
        "JOB_UID",
        "CRONJOB",
        "ATTEMPTS",
        "FIRST",
        "LAST",
        "BYTES",
    ]
    .map(String::from);
    print!("{}", table(&header, &rows));
    Ok(())
}

/// Left-aligned columns separated by two spaces.
pub fn table<const N: usize>(header: &[String; N], rows: &[[String; N]]) -> String {
    let mut widths = header.clone().map(|h| h.len());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
