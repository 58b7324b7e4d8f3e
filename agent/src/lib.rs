//! jobarchive: archives the logs and resource footprints of Kubernetes Job pods.
//!
//! The data path, one module per stage:
//! `discover` → `tail` → `parse` → `meta` (enrich) → `encode` + `batch` → `compress` → `store`
//! → `commit` (manifests + `checkpoint`). `pipeline` wires them; `footprint` runs beside them;
//! `postmortem` (Events and Job records) with it; `read` (with `inflate` and `decode`), `verify` and
//! `cli` are the reading side. `contract` holds everything CONTRACT.md defines, once.
//!
//! ## Layers
//!
//! A module imports only from its own layer and the layers below it, and never in a cycle; the
//! `layers` test reads this table and every `use crate::…` of agent/src and fails on an import
//! that points up or closes a cycle. docs/architecture.md draws the same table with each
//! module's job and imports.
//!
//! ```text
//! 8 commands    cli
//! 7 wiring      pipeline
//! 6 tasks       watch footprint::recorder meta::kube
//! 5 stages      commit postmortem read verify http progress error
//! 4 state       checkpoint
//! 3 io          store follow
//! 2 model       config encode decode batch meta footprint
//! 1 formats     contract parse compress inflate
//! 0 base        clock metrics stop durable retry
//! ```

pub mod batch;
pub mod checkpoint;
pub mod cli;
pub mod clock;
pub mod commit;
pub mod compress;
pub mod config;
pub mod contract;
pub mod decode;
pub mod durable;
pub mod encode;
pub mod error;
pub mod follow;
pub mod footprint;
pub mod http;
pub mod inflate;
#[cfg(test)]
mod layers;
pub mod meta;
pub mod metrics;
pub mod parse;
pub mod pipeline;
pub mod postmortem;
pub mod progress;
pub mod read;
pub mod retry;
pub mod stop;
pub mod store;
pub mod verify;
pub mod watch;
