use std::path::Path;

use anyhow::bail;
use saffron_fetch::{Artifact, FetchOutcome, MODELS};

use crate::cli::FetchArgs;
use crate::progress::FetchBar;

pub fn run(home: &Path, args: &FetchArgs) -> anyhow::Result<()> {
    let selected: Vec<&Artifact> = if args.only.is_empty() {
        MODELS.iter().collect()
    } else {
        let mut chosen = Vec::new();
        for name in &args.only {
            match Artifact::by_name(name) {
                Some(a) => chosen.push(a),
                None => bail!("unknown model `{name}` for --only: use one of {}", Artifact::names()),
            }
        }
        chosen
    };
    for artifact in selected {
        let bar = FetchBar::new(artifact.name, artifact.size);
        match saffron_fetch::fetch(artifact, home, &bar) {
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
