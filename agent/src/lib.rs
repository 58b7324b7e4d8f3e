//! jobarchive: archives the logs and resource footprints of Kubernetes Job pods.
//!
//! The data path, one module per stage:
//! `discover` → `tail` → `parse` → `meta` (enrich) → `encode` + `batch` → `compress` → `store`
//! → `commit` (manifests + `checkpoint`). `pipeline` wires them; `footprint` runs beside them;
//! `postmortem` (Events and Job records) with it; `read` (with `inflate` and `decode`), `verify` and
//! `cli` are the reading side. `contract` holds everything the external contract (docs/contract.md, "CONTRACT §n" in comments) defines, once.

pub mod batch;
pub mod checkpoint;
pub mod cli;
pub mod commit;
pub mod compress;
pub mod config;
pub mod contract;
pub mod decode;
pub mod discover;
pub mod encode;
pub mod error;
pub mod fingerprint;
pub mod footprint;
pub mod http;
pub mod inflate;
pub mod meta;
pub mod parse;
pub mod pipeline;
pub mod postmortem;
pub mod read;
pub mod store;
pub mod tail;
pub mod verify;
pub mod watch;
