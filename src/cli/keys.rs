//! `tiergate keys new`: a new client key on stdout's first line, alone, then the entry to
//! append to the keys file. Only the key's SHA-256 is in the entry; the key is shown once.

use std::io::Write;
use std::process::ExitCode;

use crate::govern::keys::{self, KeyEntry};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Make a key: prints the key, then its entry for the keys file.
    New(NewArgs),
}

#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The key's name (unique; shown in no metric).
    #[arg(long)]
    name: String,
    /// The team it belongs to (the `team` label of the metrics).
    #[arg(long)]
    team: String,
    /// Tiers it may use, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    tiers: Option<Vec<String>>,
    /// Upstreams it may reach, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    upstreams: Option<Vec<String>>,
    /// Requests per minute.
    #[arg(long)]
    rpm: Option<u64>,
    /// Tokens per minute.
    #[arg(long)]
    tpm: Option<u64>,
    /// Monthly frontier budget in US dollars.
    #[arg(long)]
    budget_usd: Option<f64>,
    /// Answer every request of this key locally.
    #[arg(long)]
    local_only: bool,
}

pub fn run(cmd: Command) -> ExitCode {
    let Command::New(a) = cmd;
    let mut err = std::io::stderr().lock();
    let key = match keys::generate() {
        Ok(k) => k,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return ExitCode::FAILURE;
        }
    };
    let entry = KeyEntry {
        name: a.name,
        team: a.team,
        sha256: keys::hash_hex(key.expose()),
        tiers: a.tiers,
        upstreams: a.upstreams,
        local_only: a.local_only,
        budget_usd: a.budget_usd,
        rpm: a.rpm,
        tpm: a.tpm,
    };
    // The same checks as loading the file, so a printed entry always loads.
    if let Err(e) = keys::Keyring::new(vec![entry.clone()]) {
        let _ = writeln!(err, "{}", e.message);
        return ExitCode::from(2);
    }
    let yaml = match keys::entry_yaml(&entry) {
        Ok(y) => y,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{}", key.expose())
        .and_then(|()| out.write_all(yaml.as_bytes()))
        .and_then(|()| out.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
