use std::path::Path;

use anyhow::Context;
use saffron_serve::ServeConfig;

use crate::cli::ServeArgs;

pub fn run(home: &Path, args: &ServeArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => ServeConfig::read(path)?,
        None => ServeConfig::default(),
    };
    if let Some(model) = &args.model {
        config.models.policy = model.clone();
    }
    if let Some(url) = &args.remote {
        match &mut config.models.remote {
            Some(table) => table.url = url.clone(),
            None => config.models.remote = Some(saffron_defence::RemoteTable::new(url.clone())),
        }
    }
    if let Some(host) = &args.host {
        config.server.host = host.clone();
    }
    if let Some(port) = args.port {
        config.server.port = port;
    }
    if let Some(kind) = args.strategy.filter(|k| *k != config.defence.strategy.kind()) {
        config.defence.strategy = kind.default_strategy();
    }
    if let Some(width) = args.width {
        config.defence.strategy.set_width(width).map_err(anyhow::Error::msg).context("--width")?;
    }
    if args.api_key.is_some() {
        config.server.api_key = args.api_key.clone();
    }
    if args.threads.is_some() {
        config.models.threads = args.threads;
    }
    config.validate()?;
    let home = home.to_path_buf();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(saffron_serve::serve(config, move |c| saffron_serve::load::load(&home, c)))?;
    Ok(())
}
