//! Runs one `threads` command against the API and prints its result.

use crate::{Cli, Cmd, CollectionCmd, DbCmd, InstanceCmd, NetCmd, TokenArgs};
use futures::StreamExt;
use serde_json::{Value, json};
use std::fmt;
use std::path::Path;
use threads_client::{Client, CollectionConfig, DbInfo, Index, ListenFilter, NewDb, Query};
use threads_protocol::addr::ThreadAddr;
use threads_protocol::id::ThreadId;
use threads_protocol::identity::PrivateKey;
use threads_protocol::key::ThreadKey;

/// A failure, printed as one line.
pub struct Fail(String);

impl<E: std::error::Error> From<E> for Fail {
    fn from(e: E) -> Fail {
        Fail(e.to_string())
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn fail(msg: impl Into<String>) -> Fail {
    Fail(msg.into())
}

type Res<T = ()> = Result<T, Fail>;

fn db_id(s: &str) -> Res<ThreadId> {
    s.trim()
        .parse()
        .map_err(|e| fail(format!("invalid id {s:?}: {e}")))
}

fn read_file(path: &Path) -> Res<String> {
    std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read {}: {e}", path.display())))
}

/// Inline JSON, or the contents of the file after `@`.
fn json_arg(arg: &str, what: &str) -> Res<Value> {
    let (text, source) = match arg.strip_prefix('@') {
        Some(path) => (read_file(Path::new(path))?, path.to_string()),
        None => (arg.to_string(), what.to_string()),
    };
    serde_json::from_str(&text).map_err(|e| fail(format!("invalid JSON in {source}: {e}")))
}

/// A JSON array is several instances, anything else one.
fn instances(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items,
        one => vec![one],
    }
}

fn print_json(v: &Value) {
    println!("{v}");
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

fn db_json(info: &DbInfo) -> Value {
    json!({
        "id": info.id.to_string(),
        "name": info.name,
        "key": info.key.to_string(),
        "addrs": info.addrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
}

pub async fn run(cli: Cli) -> Res {
    if let Cmd::Token(args) = &cli.cmd {
        // The token flow needs no token of its own.
        let client = Client::connect(&cli.api).await?;
        return token(client, args, cli.json).await;
    }
    let mut client = Client::connect(&cli.api).await?;
    if let Some(t) = cli.token.filter(|t| !t.is_empty()) {
        client = client.with_token(t);
    }
    let json = cli.json;
    match cli.cmd {
        Cmd::Db(c) => db(&client, c, json).await,
        Cmd::Collection(c) => collection(&client, c, json).await,
        Cmd::Instance(c) => instance(&client, c, json).await,
        Cmd::Listen {
            db,
            collection,
            count,
        } => listen(&client, &db, collection, count, json).await,
        Cmd::Net(c) => net(&client, c, json).await,
        Cmd::Token(_) => unreachable!("handled above"),
    }
}

async fn token(client: Client, args: &TokenArgs, json: bool) -> Res {
    let key = match (&args.new_identity, &args.identity) {
        (Some(path), _) => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| fail(format!("no randomness: {e}")))?;
            let key = PrivateKey::from_seed(seed);
            write_new_secret(path, &format!("{key}\n"))?;
            key
        }
        (None, Some(path)) => {
            let text = read_file(path)?;
            text.trim()
                .parse::<PrivateKey>()
                .map_err(|e| fail(format!("invalid identity key in {}: {e}", path.display())))?
        }
        (None, None) => return Err(fail("give an identity key file or --new-identity FILE")),
    };
    let token = client.get_token(&key).await?;
    if json {
        print_json(&json!({"token": token, "identity": key.public().to_string()}));
    } else {
        println!("{token}");
    }
    Ok(())
}

/// Creates `path` (it must not exist), readable by the owner only, with `text`.
fn write_new_secret(path: &Path, text: &str) -> Res {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .map_err(|e| fail(format!("cannot create {}: {e}", path.display())))?;
    f.write_all(text.as_bytes())
        .map_err(|e| fail(format!("cannot write {}: {e}", path.display())))
}

async fn db(client: &Client, cmd: DbCmd, json: bool) -> Res {
    match cmd {
        DbCmd::New { name } => {
            let id = client
                .new_db(NewDb {
                    name: name.clone(),
                    ..Default::default()
                })
                .await?;
            if json {
                print_json(&json!({"id": id.to_string(), "name": name}));
            } else {
                println!("{id}");
            }
        }
        DbCmd::Join { addr, key, name } => {
            let addr: ThreadAddr = addr
                .parse()
                .map_err(|e| fail(format!("invalid thread address {addr:?}: {e}")))?;
            let key: ThreadKey = key
                .trim()
                .parse()
                .map_err(|e| fail(format!("invalid thread key: {e}")))?;
            let id = client
                .new_db_from_addr(&addr, &key, &name, &[], false)
                .await?;
            if json {
                print_json(&json!({"id": id.to_string(), "name": name}));
            } else {
                println!("{id}");
            }
        }
        DbCmd::List => {
            let dbs = client.list_dbs().await?;
            if json {
                print_json(&Value::Array(dbs.iter().map(db_json).collect()));
            } else {
                for d in &dbs {
                    println!("{}\t{}", d.id, d.name);
                }
            }
        }
        DbCmd::Info { id } => {
            let info = client.db_info(db_id(&id)?).await?;
            if json {
                print_json(&db_json(&info));
            } else {
                println!("id:    {}", info.id);
                println!("name:  {}", info.name);
                println!("key:   {}", info.key);
                println!("addrs:");
                for a in &info.addrs {
                    println!("  {a}");
                }
            }
        }
        DbCmd::Delete { id } => {
            let id = db_id(&id)?;
            client.delete_db(id).await?;
            if json {
                print_json(&json!({"deleted": id.to_string()}));
            } else {
                println!("deleted {id}");
            }
        }
    }
    Ok(())
}

async fn collection(client: &Client, cmd: CollectionCmd, json: bool) -> Res {
    match cmd {
        CollectionCmd::New {
            db,
            name,
            schema,
            indexes,
            write_validator,
            read_filter,
        } => {
            let db = db_id(&db)?;
            let schema = match schema {
                Some(path) => {
                    let text = read_file(&path)?;
                    serde_json::from_str(&text)
                        .map_err(|e| fail(format!("invalid JSON in {}: {e}", path.display())))?
                }
                None => Value::Null,
            };
            let config = CollectionConfig {
                name: name.clone(),
                schema,
                indexes: indexes
                    .iter()
                    .map(|i| Index::parse(i))
                    .collect::<Result<_, _>>()?,
                write_validator: write_validator
                    .map(|p| read_file(&p))
                    .transpose()?
                    .unwrap_or_default(),
                read_filter: read_filter
                    .map(|p| read_file(&p))
                    .transpose()?
                    .unwrap_or_default(),
            };
            client.new_collection(db, &config).await?;
            if json {
                print_json(&json!({"created": name}));
            } else {
                println!("created collection {name}");
            }
        }
        CollectionCmd::List { db } => {
            let list = client.list_collections(db_id(&db)?).await?;
            if json {
                print_json(&serde_json::to_value(&list)?);
            } else {
                for c in &list {
                    let idx: Vec<String> = c
                        .indexes
                        .iter()
                        .map(|i| {
                            if i.unique {
                                format!("{}:unique", i.path)
                            } else {
                                i.path.clone()
                            }
                        })
                        .collect();
                    println!("{}\t{}", c.name, idx.join(","));
                }
            }
        }
        CollectionCmd::Info { db, name } => {
            let info = client.collection_info(db_id(&db)?, &name).await?;
            let v = serde_json::to_value(&info)?;
            if json {
                print_json(&v);
            } else {
                println!("{}", pretty(&v));
            }
        }
    }
    Ok(())
}

async fn instance(client: &Client, cmd: InstanceCmd, json: bool) -> Res {
    match cmd {
        InstanceCmd::Create {
            db,
            collection,
            input,
        } => {
            let db = db_id(&db)?;
            let items = instances(json_arg(&input, "the instance")?);
            let ids = client.create(db, &collection, &items).await?;
            if json {
                print_json(&json!({"ids": ids}));
            } else {
                for id in &ids {
                    println!("{id}");
                }
            }
        }
        InstanceCmd::Save {
            db,
            collection,
            input,
        } => {
            let db = db_id(&db)?;
            let items = instances(json_arg(&input, "the instance")?);
            client.save(db, &collection, &items).await?;
            if json {
                print_json(&json!({"saved": items.len()}));
            } else {
                println!("saved {} instance(s)", items.len());
            }
        }
        InstanceCmd::Get { db, collection, id } => {
            let v: Value = client.find_by_id(db_id(&db)?, &collection, &id).await?;
            if json {
                print_json(&v);
            } else {
                println!("{}", pretty(&v));
            }
        }
        InstanceCmd::Delete {
            db,
            collection,
            ids,
        } => {
            client.delete(db_id(&db)?, &collection, &ids).await?;
            if json {
                print_json(&json!({"deleted": ids}));
            } else {
                println!("deleted {} instance(s)", ids.len());
            }
        }
        InstanceCmd::Find {
            db,
            collection,
            query,
        } => {
            let db = db_id(&db)?;
            let query = match query {
                Some(q) => Query::from_json(json_arg(&q, "the query")?)?,
                None => Query::all(),
            };
            let found: Vec<Value> = client.find(db, &collection, &query).await?;
            if json {
                print_json(&Value::Array(found));
            } else {
                for v in &found {
                    println!("{v}");
                }
            }
        }
    }
    Ok(())
}

async fn listen(
    client: &Client,
    db: &str,
    collection: Option<String>,
    count: Option<u64>,
    json: bool,
) -> Res {
    let db = db_id(db)?;
    let filters: Vec<ListenFilter> = collection
        .into_iter()
        .map(ListenFilter::collection)
        .collect();
    let mut changes = client.listen(db, &filters).await?;
    // Scripts wait for this line before writing.
    eprintln!("threads: listening to {db}");
    let mut seen = 0u64;
    if count == Some(0) {
        return Ok(());
    }
    loop {
        let next = tokio::select! {
            c = changes.next() => c,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let Some(change) = next else {
            return Err(fail("the server ended the listener"));
        };
        let c = change?;
        if json {
            print_json(&serde_json::to_value(&c)?);
        } else {
            let instance = c
                .instance
                .as_ref()
                .map(Value::to_string)
                .unwrap_or_default();
            println!(
                "{}\t{}\t{}\t{instance}",
                c.action, c.collection, c.instance_id
            );
        }
        seen += 1;
        if count.is_some_and(|n| seen >= n) {
            return Ok(());
        }
    }
}

async fn net(client: &Client, cmd: NetCmd, json: bool) -> Res {
    match cmd {
        NetCmd::HostId => {
            let id = client.host_id().await?;
            if json {
                print_json(&json!({"hostId": id.to_string()}));
            } else {
                println!("{id}");
            }
        }
        NetCmd::Thread { id } => {
            let info = client.thread_info(db_id(&id)?).await?;
            let v = json!({
                "id": info.id.to_string(),
                "key": info.key.as_ref().map(ToString::to_string),
                "logs": info.logs,
                "addrs": info.addrs,
            });
            if json {
                print_json(&v);
            } else {
                println!("{}", pretty(&v));
            }
        }
        NetCmd::AddReplicator { id, addr } => {
            let id = db_id(&id)?;
            let addr: multiaddr::Multiaddr = addr
                .parse()
                .map_err(|e| fail(format!("invalid multiaddr {addr:?}: {e}")))?;
            let peer = client.add_replicator(id, &addr).await?;
            if json {
                print_json(&json!({"peerId": peer.to_string()}));
            } else {
                println!("{peer}");
            }
        }
        NetCmd::Pull { id } => {
            let id = db_id(&id)?;
            client.pull_thread(id).await?;
            if json {
                print_json(&json!({"pulled": id.to_string()}));
            } else {
                println!("pulled {id}");
            }
        }
    }
    Ok(())
}
