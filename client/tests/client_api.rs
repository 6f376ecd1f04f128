//! The typed client against an in-process node and API server: databases and collections,
//! instances as serde types, transactions (per-operation errors, discard, commit), a listener
//! of typed changes, tokens, and error codes.

mod common;

use common::{STEP, Server};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use threads_client::{
    Action, ChangeStream, Client, Code, CollectionConfig, Error, ListenFilter, NewDb, Query,
};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Person {
    #[serde(rename = "_id", default, skip_serializing_if = "String::is_empty")]
    id: String,
    name: String,
    email: String,
    age: u32,
}

fn person(name: &str, age: u32) -> Person {
    Person {
        id: String::new(),
        name: name.into(),
        email: format!("{}@x.org", name.to_lowercase()),
        age,
    }
}

fn people() -> CollectionConfig {
    CollectionConfig::new(
        "people",
        json!({
            "type": "object",
            "properties": {
                "_id": {"type": "string"}, "name": {"type": "string"},
                "email": {"type": "string"}, "age": {"type": "integer"}
            },
            "required": ["name"]
        }),
    )
    .index("email", true)
}

async fn next_change(s: &mut ChangeStream) -> threads_client::Change {
    tokio::time::timeout(STEP, s.next())
        .await
        .expect("a change in time")
        .expect("the stream is open")
        .expect("no error")
}

#[track_caller]
fn assert_code<T: std::fmt::Debug>(r: Result<T, Error>, code: Code, text: &str) {
    let e = r.expect_err("the call must fail");
    assert_eq!(e.code(), Some(code), "{e}");
    assert!(e.message().contains(text), "{e} should contain {text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_client() {
    let server = Server::start().await;
    let host = Client::connect(&server.url()).await.unwrap();

    // A user identity through the token flow; everything below acts as it.
    let user = threads_protocol::identity::PrivateKey::from_seed([9; 32]);
    let token = host.get_token(&user).await.unwrap();
    let client = host.clone().with_token(token.clone());
    assert_eq!(client.token(), Some(token.as_str()));

    let db = client
        .new_db(NewDb {
            name: "club".into(),
            collections: vec![people()],
            ..Default::default()
        })
        .await
        .unwrap();
    let info = client.db_info(db).await.unwrap();
    assert_eq!((info.id, info.name.as_str()), (db, "club"));
    assert!(client.list_dbs().await.unwrap().iter().any(|d| d.id == db));
    let coll = client.collection_info(db, "people").await.unwrap();
    assert_eq!(coll.indexes, people().indexes);
    assert_eq!(client.list_collections(db).await.unwrap().len(), 1);
    assert_eq!(
        client.collection_indexes(db, "people").await.unwrap(),
        people().indexes
    );

    // A listener of creates and saves of `people`.
    let mut changes = client
        .listen(db, &[ListenFilter::collection("people")])
        .await
        .unwrap();

    let ids = client
        .create(db, "people", &[person("Ada", 36), person("Bob", 17)])
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    let c = next_change(&mut changes).await;
    assert_eq!(
        (c.action, c.instance_id.as_str()),
        (Action::Create, ids[0].as_str())
    );
    assert_eq!(c.instance_as::<Person>().unwrap().unwrap().name, "Ada");
    assert_eq!(next_change(&mut changes).await.instance_id, ids[1]);

    let adults: Vec<Person> = client
        .find(db, "people", &Query::field("age").ge(18))
        .await
        .unwrap();
    assert_eq!(adults.len(), 1);
    assert_eq!(adults[0].id, ids[0]);
    let bob: Person = client.find_by_id(db, "people", &ids[1]).await.unwrap();
    assert_eq!(bob.name, "Bob");
    assert!(client.has(db, "people", &ids).await.unwrap());
    assert!(!client.has(db, "people", &["nope"]).await.unwrap());
    client
        .verify(db, "people", std::slice::from_ref(&bob))
        .await
        .unwrap();

    // A write transaction: a failing operation does not poison the others.
    let mut txn = client.write_transaction(db, "people").await.unwrap();
    let cy = txn.create(&[person("Cy", 40)]).await.unwrap();
    let dup = txn.create(&[person("Ada", 1)]).await;
    assert!(
        matches!(dup, Err(Error::Transaction(ref m)) if m.contains("unique")),
        "{dup:?}"
    );
    let mut older = bob.clone();
    older.age = 18;
    txn.save(&[older]).await.unwrap();
    assert!(txn.has(&ids).await.unwrap());
    let seen: Vec<Person> = txn.find(&Query::all()).await.unwrap();
    assert_eq!(seen.len(), 2, "reads see committed state");
    let ada: Person = txn.find_by_id(&ids[0]).await.unwrap();
    assert_eq!(ada.age, 36);
    txn.verify(std::slice::from_ref(&ada)).await.unwrap();
    txn.delete(&[ids[0].clone()]).await.unwrap();
    txn.commit().await.unwrap();

    // The commit's changes, in order: the create, the save, the delete.
    let c = next_change(&mut changes).await;
    assert_eq!(
        (c.action, c.instance_id.as_str()),
        (Action::Create, cy[0].as_str())
    );
    let c = next_change(&mut changes).await;
    assert_eq!(
        (c.action, c.instance_id.as_str()),
        (Action::Save, ids[1].as_str())
    );
    let c = next_change(&mut changes).await;
    assert_eq!((c.action, c.instance), (Action::Delete, None));

    // A read transaction.
    let mut read = client.read_transaction(db, "people").await.unwrap();
    let all: Vec<Person> = read.find(&Query::all().sort("age", false)).await.unwrap();
    let names: Vec<&str> = all.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["Bob", "Cy"]);
    assert!(!read.has(&[ids[0].clone()]).await.unwrap());
    let missing = read.find_by_id::<Person>(&ids[0]).await;
    assert!(matches!(missing, Err(Error::Transaction(_))), "{missing:?}");
    let bob: Person = read.find_by_id(&ids[1]).await.unwrap();
    assert_eq!(bob.age, 18);
    read.end().await.unwrap();

    // Discard: nothing is written and the commit fails.
    let mut txn = client.write_transaction(db, "people").await.unwrap();
    txn.create(&[person("Dee", 5)]).await.unwrap();
    txn.discard().await.unwrap();
    assert_code(txn.commit().await, Code::FailedPrecondition, "discarded");
    let all: Vec<Person> = client.find(db, "people", &Query::all()).await.unwrap();
    assert_eq!(all.len(), 2);

    // Direct calls: save, delete, update and delete a collection.
    let mut cy_p: Person = client.find_by_id(db, "people", &cy[0]).await.unwrap();
    cy_p.age = 41;
    client.save(db, "people", &[cy_p]).await.unwrap();
    client
        .delete(db, "people", &[cy[0].as_str()])
        .await
        .unwrap();
    let mut updated = people();
    updated.indexes.push(threads_client::Index {
        path: "name".into(),
        unique: false,
    });
    client.update_collection(db, &updated).await.unwrap();
    assert_eq!(
        client
            .collection_info(db, "people")
            .await
            .unwrap()
            .indexes
            .len(),
        2
    );

    // Errors keep their gRPC code and message.
    assert_code(
        client.find::<Person>(db, "nosuch", &Query::all()).await,
        Code::NotFound,
        "collection not found",
    );
    assert_code(
        client.create(db, "people", &[person("Bob", 3)]).await,
        Code::InvalidArgument,
        "unique constraint",
    );
    assert_code(
        client.new_collection(db, &people()).await,
        Code::AlreadyExists,
        "collection already registered",
    );
    assert_code(
        client.read_transaction(db, "nosuch").await.map(|_| ()),
        Code::NotFound,
        "",
    );
    let bad = host.clone().with_token("garbage");
    assert_code(
        bad.list_dbs().await,
        Code::Unknown,
        "thread token not found",
    );
    let other = threads_client::random_db_id().unwrap();
    assert_code(
        client.db_info(other).await,
        Code::NotFound,
        "thread not found",
    );

    // The Net API: the host's peer id names the database's addresses.
    let peer = client.host_id().await.unwrap();
    assert!(info.addrs[0].to_string().contains(&peer.to_string()));
    let thread = client.thread_info(db).await.unwrap();
    assert_eq!(thread.key, Some(info.key.clone()));
    client.pull_thread(db).await.unwrap();

    client.delete_collection(db, "people").await.unwrap();
    client.delete_db(db).await.unwrap();
    assert_code(client.db_info(db).await, Code::NotFound, "thread not found");

    // A connection to nothing.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = Client::connect(&format!("127.0.0.1:{port}"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Connect { .. }), "{e}");

    drop(changes);
    server.stop().await;
}
