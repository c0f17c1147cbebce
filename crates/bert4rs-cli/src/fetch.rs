//! `bert4rs fetch`: pinned, checksummed registry assets into the cache.

use bert4rs::assets::{self, ASSETS};
use bert4rs::error::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Assets to fetch (default: all). `--list` shows them.
    names: Vec<String>,
    /// List the known assets and exit.
    #[arg(long)]
    list: bool,
}

pub fn run(a: Args) -> Result<()> {
    if a.list {
        for asset in ASSETS {
            println!("{}\t{}", asset.name, asset.about);
        }
        return Ok(());
    }
    let wanted: Vec<&assets::Asset> = if a.names.is_empty() {
        ASSETS.iter().collect()
    } else {
        a.names
            .iter()
            .map(|n| assets::find(n))
            .collect::<Result<_>>()?
    };
    for asset in wanted {
        let dir = assets::fetch(asset)?;
        println!("{}\t{}", asset.name, dir.display());
    }
    Ok(())
}
