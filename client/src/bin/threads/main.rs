//! `threads`: the ThreadDB client on the command line, for operators and scripts.
//!
//! It talks to a `threadsd` API (`--api`, default `http://127.0.0.1:6006`, env `THREADS_API`)
//! as the host, or as a token's identity (`--token`, env `THREADS_TOKEN`). Output is
//! human-readable, or JSON with `--json`. Errors go to stderr as one line
//! (`threads: <what went wrong>`) with exit status 1 (2 for a usage error).

mod run;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// The ThreadDB client: databases, collections, instances, listeners, Net API and tokens.
#[derive(Parser, Debug)]
#[command(name = "threads", version, about)]
pub struct Cli {
    /// API address: URL, host:port or /ip4/IP/tcp/PORT.
    #[arg(long, env = "THREADS_API", default_value = threads_client::DEFAULT_API, global = true)]
    pub api: String,
    /// Call as this token's identity (from `threads token`).
    #[arg(long, env = "THREADS_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Top-level commands.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Databases.
    #[command(subcommand)]
    Db(DbCmd),
    /// Collections.
    #[command(subcommand)]
    Collection(CollectionCmd),
    /// Instances.
    #[command(subcommand)]
    Instance(InstanceCmd),
    /// Prints the changes of a database as they come (until interrupted).
    Listen {
        /// Database id.
        db: String,
        /// Only this collection.
        #[arg(long)]
        collection: Option<String>,
        /// Stop after this many changes.
        #[arg(long)]
        count: Option<u64>,
    },
    /// The Net API.
    #[command(subcommand)]
    Net(NetCmd),
    /// Gets a token for the identity stored in a key file (prints the token).
    Token(TokenArgs),
}

/// Arguments of `threads token`.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct TokenArgs {
    /// File with the identity's private key (multibase string).
    pub identity: Option<PathBuf>,
    /// Create a new identity, save its private key to FILE (must not exist), then get a token.
    #[arg(long, value_name = "FILE")]
    pub new_identity: Option<PathBuf>,
}

/// `threads db …`
#[derive(Subcommand, Debug)]
pub enum DbCmd {
    /// Creates a database and prints its id.
    New {
        /// Local name.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Joins a database from another host and prints its id.
    Join {
        /// Thread address: /ip4/…/tcp/…/p2p/PEER/thread/ID.
        addr: String,
        /// Thread key (multibase string, with read key).
        key: String,
        /// Local name.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Lists the databases.
    List,
    /// Shows a database's name, key and addresses.
    Info {
        /// Database id.
        id: String,
    },
    /// Deletes a database.
    Delete {
        /// Database id.
        id: String,
    },
}

/// `threads collection …`
#[derive(Subcommand, Debug)]
pub enum CollectionCmd {
    /// Creates a collection.
    New {
        /// Database id.
        db: String,
        /// Collection name.
        name: String,
        /// JSON schema file (default: any object with a string `_id`).
        #[arg(long, value_name = "FILE")]
        schema: Option<PathBuf>,
        /// Index on a field path; `path:unique` for a unique one. Repeatable.
        #[arg(long = "index", value_name = "PATH[:unique]")]
        indexes: Vec<String>,
        /// JavaScript file with the write validator's body.
        #[arg(long, value_name = "FILE")]
        write_validator: Option<PathBuf>,
        /// JavaScript file with the read filter's body.
        #[arg(long, value_name = "FILE")]
        read_filter: Option<PathBuf>,
    },
    /// Lists the collections of a database.
    List {
        /// Database id.
        db: String,
    },
    /// Shows a collection's definition.
    Info {
        /// Database id.
        db: String,
        /// Collection name.
        name: String,
    },
}

/// `threads instance …`
#[derive(Subcommand, Debug)]
pub enum InstanceCmd {
    /// Creates instances (a JSON object or array, inline or @file) and prints their ids.
    Create {
        /// Database id.
        db: String,
        /// Collection name.
        collection: String,
        /// JSON object or array of objects, or @FILE.
        #[arg(value_name = "JSON")]
        input: String,
    },
    /// Saves (upserts) instances that carry their `_id`.
    Save {
        /// Database id.
        db: String,
        /// Collection name.
        collection: String,
        /// JSON object or array of objects, or @FILE.
        #[arg(value_name = "JSON")]
        input: String,
    },
    /// Prints one instance.
    Get {
        /// Database id.
        db: String,
        /// Collection name.
        collection: String,
        /// Instance id.
        id: String,
    },
    /// Deletes instances.
    Delete {
        /// Database id.
        db: String,
        /// Collection name.
        collection: String,
        /// Instance ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Prints the instances matching a query (go-threads query JSON, inline or @file).
    Find {
        /// Database id.
        db: String,
        /// Collection name.
        collection: String,
        /// Query JSON or @FILE (default: every instance).
        query: Option<String>,
    },
}

/// `threads net …`
#[derive(Subcommand, Debug)]
pub enum NetCmd {
    /// Prints the host's peer id.
    HostId,
    /// Shows a thread's key, logs and addresses.
    Thread {
        /// Thread id.
        id: String,
    },
    /// Adds a replicator (a multiaddr with /p2p/PEER) to a thread.
    AddReplicator {
        /// Thread id.
        id: String,
        /// The replicator's address.
        addr: String,
    },
    /// Pulls a thread from its peers now.
    Pull {
        /// Thread id.
        id: String,
    },
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
                || matches!(
                    e.kind(),
                    ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                )
            {
                e.exit();
            }
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("threads: {first} (see threads --help)");
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("threads: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run::run(cli)) {
        eprintln!("threads: {e}");
        std::process::exit(1);
    }
}
