//! The client API (`threads.pb.API`) through a real tonic client against an in-process node
//! on 127.0.0.1: a happy path through every RPC, the token identity as writer and reader, a
//! listener that lags and resumes, joining from a peer's address, token lifetimes. Bad input:
//! `api_grpc_errors.rs`.

mod common;
#[path = "common/db_api.rs"]
mod db_api;

use db_api::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_happy_path() {
    let s = Setup::new().await;
    let mut c = s.client.clone();
    let token = Some(get_token(&mut c, &user(1)).await);
    let t = &token;
    let db = random_id(1);

    // Databases.
    new_db(&mut c, db, "my-db", t).await;
    let list = c
        .list_d_bs(with_token(pb::ListDBsRequest {}, t))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.dbs.len(), 1);
    assert_eq!(list.dbs[0].db_id, db.to_vec());
    assert_eq!(list.dbs[0].info.as_ref().unwrap().name, "my-db");
    let info = c
        .get_db_info(with_token(pb::GetDbInfoRequest { db_id: db.to_vec() }, t))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.key.len(), 64);
    assert_eq!(info.name, "my-db");
    assert!(!info.addrs.is_empty());
    for a in &info.addrs {
        let addr = ThreadAddr::from_bytes(a).unwrap();
        assert_eq!(addr.thread, db);
        assert_eq!(addr.peer(), Some(s.node.peer_id()));
    }

    // Collections.
    c.new_collection(with_token(
        pb::NewCollectionRequest {
            db_id: db.to_vec(),
            config: Some(people_config()),
        },
        t,
    ))
    .await
    .unwrap();
    let mut updated = people_config();
    updated.indexes.push(pb::Index {
        path: "age".into(),
        unique: false,
    });
    c.update_collection(with_token(
        pb::UpdateCollectionRequest {
            db_id: db.to_vec(),
            config: Some(updated),
        },
        t,
    ))
    .await
    .unwrap();
    let coll = c
        .get_collection_info(with_token(
            pb::GetCollectionInfoRequest {
                db_id: db.to_vec(),
                name: "people".into(),
            },
            t,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(coll.name, "people");
    assert_eq!(parse(&coll.schema)["properties"]["age"]["type"], "integer");
    let paths: Vec<_> = coll.indexes.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(paths, ["email", "age"]);
    let idx = c
        .get_collection_indexes(with_token(
            pb::GetCollectionIndexesRequest {
                db_id: db.to_vec(),
                name: "people".into(),
            },
            t,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(idx.indexes, coll.indexes);
    // A second collection with the default schema (none given).
    c.new_collection(with_token(
        pb::NewCollectionRequest {
            db_id: db.to_vec(),
            config: Some(pb::CollectionConfig {
                name: "notes".into(),
                ..Default::default()
            }),
        },
        t,
    ))
    .await
    .unwrap();
    let colls = c
        .list_collections(with_token(
            pb::ListCollectionsRequest { db_id: db.to_vec() },
            t,
        ))
        .await
        .unwrap()
        .into_inner()
        .collections;
    let names: Vec<_> = colls.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["notes", "people"]);
    assert_eq!(
        parse(&colls[0].schema),
        json!({"properties": {"_id": {"type": "string"}}})
    );

    // Listen from here on (every change of `people`).
    let mut changes = c
        .listen(with_token(
            pb::ListenRequest {
                db_id: db.to_vec(),
                filters: vec![pb::listen_request::Filter {
                    collection_name: "people".into(),
                    ..Default::default()
                }],
            },
            t,
        ))
        .await
        .unwrap()
        .into_inner();

    // Instances.
    let created = c
        .create(with_token(
            pb::CreateRequest {
                db_id: db.to_vec(),
                collection_name: "people".into(),
                instances: vec![
                    json_bytes(json!({"_id": "alice", "name": "Alice", "email": "a@x", "age": 30})),
                    json_bytes(json!({"name": "Bob", "email": "b@x", "age": 40})),
                ],
            },
            t,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.instance_i_ds.len(), 2);
    assert_eq!(created.instance_i_ds[0], "alice");
    let bob = created.instance_i_ds[1].clone();
    assert_eq!(bob.len(), 26, "a ULID");
    assert_eq!(bob, bob.to_lowercase());
    c.save(with_token(
        pb::SaveRequest {
            db_id: db.to_vec(),
            collection_name: "people".into(),
            instances: vec![json_bytes(
                json!({"_id": "alice", "name": "Alice", "email": "a@x", "age": 31}),
            )],
        },
        t,
    ))
    .await
    .unwrap();
    let alice = c
        .find_by_id(with_token(
            pb::FindByIdRequest {
                db_id: db.to_vec(),
                collection_name: "people".into(),
                instance_id: "alice".into(),
            },
            t,
        ))
        .await
        .unwrap()
        .into_inner();
    let alice = parse(&alice.instance);
    assert_eq!(alice["age"], 31);
    assert!(alice["_mod"].as_u64().unwrap() > 1_600_000_000_000_000_000);
    let has = |ids: Vec<&str>| pb::HasRequest {
        db_id: db.to_vec(),
        collection_name: "people".into(),
        instance_i_ds: ids.into_iter().map(String::from).collect(),
    };
    assert!(
        c.has(with_token(has(vec!["alice", &bob]), t))
            .await
            .unwrap()
            .into_inner()
            .exists
    );
    assert!(
        !c.has(with_token(has(vec!["alice", "nobody"]), t))
            .await
            .unwrap()
            .into_inner()
            .exists
    );
    let found = c
        .find(with_token(
            pb::FindRequest {
                db_id: db.to_vec(),
                collection_name: "people".into(),
                query_json: json_bytes(json!({
                    "ands": [{"fieldPath": "age", "operation": 4, "value": {"float": 35}}],
                    "sort": {"fieldPath": "name", "desc": true}
                })),
            },
            t,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.instances.len(), 1);
    assert_eq!(parse(&found.instances[0])["name"], "Bob");
    c.verify(with_token(
        pb::VerifyRequest {
            db_id: db.to_vec(),
            collection_name: "people".into(),
            instances: vec![json_bytes(json!({"_id": "alice", "name": "A", "age": 1}))],
        },
        t,
    ))
    .await
    .unwrap();
    assert_eq!(
        find_all(&mut c, db, t).await.len(),
        2,
        "verify wrote nothing"
    );

    // The listener saw the two creates and the save, in order.
    let mut seen = Vec::new();
    for _ in 0..3 {
        let m = next(&mut changes).await;
        seen.push((m.instance_id.clone(), m.action));
        assert_eq!(parse(&m.instance)["_id"], json!(m.instance_id));
    }
    let (create, save) = (
        pb::listen_reply::Action::Create as i32,
        pb::listen_reply::Action::Save as i32,
    );
    assert_eq!(
        seen,
        vec![
            ("alice".to_string(), create),
            (bob.clone(), create),
            ("alice".to_string(), save)
        ]
    );

    // Read transaction.
    let (tx, rx) = mpsc::channel(8);
    tx.send(pb::ReadTransactionRequest {
        option: Some(RReq::StartTransactionRequest(pb::StartTransactionRequest {
            db_id: db.to_vec(),
            collection_name: "people".into(),
        })),
    })
    .await
    .unwrap();
    let mut replies = c
        .read_transaction(with_token(ReceiverStream::new(rx), t))
        .await
        .unwrap()
        .into_inner();
    tx.send(pb::ReadTransactionRequest {
        option: Some(RReq::HasRequest(has(vec!["alice"]))),
    })
    .await
    .unwrap();
    assert!(matches!(next(&mut replies).await.option, Some(RReply::HasReply(h)) if h.exists));
    tx.send(pb::ReadTransactionRequest {
        option: Some(RReq::FindRequest(pb::FindRequest {
            query_json: b"{}".to_vec(),
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    assert!(
        matches!(next(&mut replies).await.option, Some(RReply::FindReply(f)) if f.instances.len() == 2)
    );
    tx.send(pb::ReadTransactionRequest {
        option: Some(RReq::FindByIdRequest(pb::FindByIdRequest {
            instance_id: bob.clone(),
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    match next(&mut replies).await.option {
        Some(RReply::FindByIdReply(f)) => assert_eq!(parse(&f.instance)["name"], "Bob"),
        other => panic!("{other:?}"),
    }
    drop(tx);
    assert!(replies.message().await.unwrap().is_none(), "ends OK");

    // Write transaction: a failed create does not poison the others; commit at the end.
    let (tx, rx) = mpsc::channel(8);
    tx.send(pb::WriteTransactionRequest {
        option: Some(WReq::StartTransactionRequest(pb::StartTransactionRequest {
            db_id: db.to_vec(),
            collection_name: "people".into(),
        })),
    })
    .await
    .unwrap();
    let mut replies = c
        .write_transaction(with_token(ReceiverStream::new(rx), t))
        .await
        .unwrap()
        .into_inner();
    let create_req = |v: Value| pb::WriteTransactionRequest {
        option: Some(WReq::CreateRequest(pb::CreateRequest {
            instances: vec![json_bytes(v)],
            ..Default::default()
        })),
    };
    tx.send(create_req(json!({"name": "Carol", "email": "c@x"})))
        .await
        .unwrap();
    let carol = match next(&mut replies).await.option {
        Some(WReply::CreateReply(r)) => {
            assert_eq!(r.transaction_error, "");
            r.instance_i_ds[0].clone()
        }
        other => panic!("{other:?}"),
    };
    tx.send(create_req(json!({"name": 7}))).await.unwrap();
    match next(&mut replies).await.option {
        Some(WReply::CreateReply(r)) => {
            assert!(r.instance_i_ds.is_empty());
            assert!(
                r.transaction_error.contains("schema"),
                "{}",
                r.transaction_error
            );
        }
        other => panic!("{other:?}"),
    }
    tx.send(create_req(json!({"_id": "dave", "name": "Dave"})))
        .await
        .unwrap();
    assert!(
        matches!(next(&mut replies).await.option, Some(WReply::CreateReply(r)) if r.transaction_error.is_empty() && r.instance_i_ds == ["dave"])
    );
    // Reads inside see committed state only.
    tx.send(pb::WriteTransactionRequest {
        option: Some(WReq::HasRequest(has(vec!["dave"]))),
    })
    .await
    .unwrap();
    assert!(matches!(next(&mut replies).await.option, Some(WReply::HasReply(h)) if !h.exists));
    for req in [
        WReq::SaveRequest(pb::SaveRequest {
            instances: vec![json_bytes(json!({"_id": "dave", "name": "David"}))],
            ..Default::default()
        }),
        WReq::VerifyRequest(pb::VerifyRequest {
            instances: vec![json_bytes(json!({"_id": "alice", "name": "Alicia"}))],
            ..Default::default()
        }),
        WReq::DeleteRequest(pb::DeleteRequest {
            instance_i_ds: vec![bob.clone()],
            ..Default::default()
        }),
        WReq::FindRequest(pb::FindRequest {
            query_json: b"{}".to_vec(),
            ..Default::default()
        }),
        WReq::FindByIdRequest(pb::FindByIdRequest {
            instance_id: "alice".into(),
            ..Default::default()
        }),
    ] {
        tx.send(pb::WriteTransactionRequest { option: Some(req) })
            .await
            .unwrap();
        match next(&mut replies).await.option {
            Some(WReply::SaveReply(r)) => assert_eq!(r.transaction_error, ""),
            Some(WReply::VerifyReply(r)) => assert_eq!(r.transaction_error, ""),
            Some(WReply::DeleteReply(r)) => assert_eq!(r.transaction_error, ""),
            Some(WReply::FindReply(r)) => assert_eq!(r.instances.len(), 2),
            Some(WReply::FindByIdReply(r)) => assert_eq!(parse(&r.instance)["_id"], "alice"),
            other => panic!("{other:?}"),
        }
    }
    drop(tx);
    assert!(replies.message().await.unwrap().is_none(), "commit OK");
    let mut names: Vec<String> = find_all(&mut c, db, t)
        .await
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["Alice", "Carol", "David"]);
    assert!(
        c.has(with_token(has(vec![&carol]), t))
            .await
            .unwrap()
            .into_inner()
            .exists
    );

    // Delete (unknown ids are ignored), then the listener's delete carries no instance.
    c.delete(with_token(
        pb::DeleteRequest {
            db_id: db.to_vec(),
            collection_name: "people".into(),
            instance_i_ds: vec!["alice".into(), "nobody".into()],
        },
        t,
    ))
    .await
    .unwrap();
    let mut deleted_alice = false;
    while !deleted_alice {
        let m = next(&mut changes).await;
        if m.action == pb::listen_reply::Action::Delete as i32 && m.instance_id == "alice" {
            assert!(m.instance.is_empty());
            deleted_alice = true;
        }
    }
    assert!(
        !c.has(with_token(has(vec!["alice"]), t))
            .await
            .unwrap()
            .into_inner()
            .exists
    );

    // Delete the collection, then the database.
    c.delete_collection(with_token(
        pb::DeleteCollectionRequest {
            db_id: db.to_vec(),
            name: "notes".into(),
        },
        t,
    ))
    .await
    .unwrap();
    assert_status(
        c.get_collection_info(with_token(
            pb::GetCollectionInfoRequest {
                db_id: db.to_vec(),
                name: "notes".into(),
            },
            t,
        ))
        .await,
        Code::NotFound,
        "collection not found",
    );
    c.delete_db(with_token(pb::DeleteDbRequest { db_id: db.to_vec() }, t))
        .await
        .unwrap();
    assert_status(
        c.get_db_info(with_token(pb::GetDbInfoRequest { db_id: db.to_vec() }, t))
            .await,
        Code::NotFound,
        "thread not found",
    );
    assert!(
        c.list_d_bs(pb::ListDBsRequest {})
            .await
            .unwrap()
            .into_inner()
            .dbs
            .is_empty()
    );
    // The same id can be used again, and starts empty.
    new_db(&mut c, db, "", t).await;
    assert_status(
        c.get_collection_info(pb::GetCollectionInfoRequest {
            db_id: db.to_vec(),
            name: "people".into(),
        })
        .await,
        Code::NotFound,
        "collection not found",
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_identity_writes_and_reads() {
    let s = Setup::new().await;
    let mut c = s.client.clone();
    let (u1, u2) = (user(1), user(2));
    let t1 = Some(get_token(&mut c, &u1).await);
    let t2 = Some(get_token(&mut c, &u2).await);
    let db = random_id(2);
    new_db(&mut c, db, "", &t1).await;
    // Only u1 may write; each reader sees only what it owns (no token: nothing).
    let mut config = people_config();
    config.write_validator = format!("return writer === \"{}\"", u1.public());
    config.read_filter = "if (instance.owner === reader) { return instance } return null".into();
    c.new_collection(with_token(
        pb::NewCollectionRequest {
            db_id: db.to_vec(),
            config: Some(config),
        },
        &t1,
    ))
    .await
    .unwrap();
    let create = |owner: String, name: &str| pb::CreateRequest {
        db_id: db.to_vec(),
        collection_name: "people".into(),
        instances: vec![json_bytes(json!({"name": name, "owner": owner}))],
    };
    c.create(with_token(create(u1.public().to_string(), "one"), &t1))
        .await
        .unwrap();
    assert_status(
        c.create(with_token(create(u2.public().to_string(), "two"), &t2))
            .await,
        Code::PermissionDenied,
        "app denied net record body",
    );
    assert_status(
        c.create(create(u2.public().to_string(), "host")).await,
        Code::PermissionDenied,
        "app denied net record body",
    );
    assert_eq!(find_all(&mut c, db, &t1).await.len(), 1);
    assert_eq!(find_all(&mut c, db, &t2).await.len(), 0);
    assert_eq!(find_all(&mut c, db, &None).await.len(), 0);
    // Verify runs the validator for the caller too.
    let verify = pb::VerifyRequest {
        db_id: db.to_vec(),
        collection_name: "people".into(),
        instances: vec![json_bytes(json!({"_id": "v", "name": "v"}))],
    };
    c.verify(with_token(verify.clone(), &t1)).await.unwrap();
    assert_status(
        c.verify(with_token(verify, &t2)).await,
        Code::PermissionDenied,
        "app denied net record body",
    );
    // u1 created the database and wrote everything so far: the thread has u1's log only. A
    // write without a token goes to the host's own log, a second one.
    assert_eq!(s.handle().thread_info(db).await.unwrap().logs.len(), 1);
    c.new_collection(pb::NewCollectionRequest {
        db_id: db.to_vec(),
        config: Some(pb::CollectionConfig {
            name: "notes".into(),
            ..Default::default()
        }),
    })
    .await
    .unwrap();
    assert_eq!(s.handle().thread_info(db).await.unwrap().logs.len(), 2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_listener_gets_an_error_it_can_resume_from() {
    let s = Setup::new().await;
    let mut c = s.client.clone();
    let db = random_id(3);
    new_db(&mut c, db, "", &None).await;
    c.new_collection(pb::NewCollectionRequest {
        db_id: db.to_vec(),
        config: Some(pb::CollectionConfig {
            name: "notes".into(),
            ..Default::default()
        }),
    })
    .await
    .unwrap();
    let mut listener = c
        .listen(pb::ListenRequest {
            db_id: db.to_vec(),
            filters: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    // Eight records of 5,000 creates (a record body holds at most 1 MiB) while the listener
    // reads nothing: more changes than the node's feed keeps plus what the channels and the
    // HTTP/2 windows can hold in flight (about 10k small replies), so the listener must lag
    // whatever the interleaving.
    let mut created = Vec::new();
    for round in 0..8 {
        let instances = (0..5_000)
            .map(|i| json_bytes(json!({"round": round, "n": i})))
            .collect();
        created.extend(
            c.create(pb::CreateRequest {
                db_id: db.to_vec(),
                collection_name: "notes".into(),
                instances,
            })
            .await
            .unwrap()
            .into_inner()
            .instance_i_ds,
        );
    }
    let n = created.len();
    assert_eq!(n, 40_000);
    let err = tokio::time::timeout(STEP, async {
        loop {
            match listener.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the stream ended without an error"),
                Err(e) => return e,
            }
        }
    })
    .await
    .expect("the lag error in time");
    assert_eq!(err.code(), Code::Aborted);
    assert!(
        err.message().contains("listener lagged"),
        "{}",
        err.message()
    );
    let mut resume = resume_position(&err);
    // Feed positions count from 1 and only these creates were published, so the feed now keeps
    // positions `n - kept + 1 ..= n`. The lag may have been noticed while the creates were still
    // coming in (its position is then older and gone too): resuming there lags again, at once,
    // with the position to resume from now, which is the oldest kept.
    let kept = threads_reducer::docs::FEED_CAPACITY;
    let oldest = (n - kept + 1) as u64;
    assert!(
        resume <= oldest,
        "resume from {resume}, oldest kept {oldest}"
    );
    let mut resumed = listen_from(&mut c, db, resume).await;
    if resume < oldest {
        let again = tokio::time::timeout(STEP, resumed.message())
            .await
            .expect("a reply in time")
            .expect_err("a stale position lags at once");
        assert_eq!(again.code(), Code::Aborted);
        resume = resume_position(&again);
        resumed = listen_from(&mut c, db, resume).await;
    }
    assert_eq!(resume, oldest);
    // Resuming there delivers the changes still kept, in order: the last ones created.
    for expected in &created[n - kept..n - kept + 20] {
        let m = next(&mut resumed).await;
        assert_eq!(&m.instance_id, expected);
        assert_eq!(m.action, pb::listen_reply::Action::Create as i32);
    }
    // A bad position is refused.
    let mut req = Request::new(pb::ListenRequest {
        db_id: db.to_vec(),
        filters: vec![],
    });
    req.metadata_mut()
        .insert(LISTEN_FROM, "soon".parse().unwrap());
    assert_status(c.listen(req).await, Code::InvalidArgument, LISTEN_FROM);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_db_from_addr_receives_the_peers_documents() {
    let a = Setup::new().await;
    let b = Setup::new().await;
    let (mut ca, mut cb) = (a.client.clone(), b.client.clone());
    let db = random_id(6);
    new_db(&mut ca, db, "", &None).await;
    ca.new_collection(pb::NewCollectionRequest {
        db_id: db.to_vec(),
        config: Some(people_config()),
    })
    .await
    .unwrap();
    ca.create(pb::CreateRequest {
        db_id: db.to_vec(),
        collection_name: "people".into(),
        instances: vec![json_bytes(json!({"_id": "alice", "name": "Alice"}))],
    })
    .await
    .unwrap();
    let info = ca
        .get_db_info(pb::GetDbInfoRequest { db_id: db.to_vec() })
        .await
        .unwrap()
        .into_inner();
    // Blocking join: returns once the named collection has arrived.
    cb.new_db_from_addr(pb::NewDbFromAddrRequest {
        addr: info.addrs[0].clone(),
        key: info.key.clone(),
        name: "joined".into(),
        collections: vec![pb::CollectionConfig {
            name: "people".into(),
            ..Default::default()
        }],
        block: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let got = cb
        .get_db_info(pb::GetDbInfoRequest { db_id: db.to_vec() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((got.key, got.name.as_str()), (info.key.clone(), "joined"));
    common::eventually("B has A's document", common::CONVERGE_WITHIN, || {
        let mut cb = cb.clone();
        async move { find_all(&mut cb, db, &None).await.len() == 1 }
    })
    .await;
    // Joining again is refused as go-threads does.
    assert_status(
        cb.new_db_from_addr(pb::NewDbFromAddrRequest {
            addr: info.addrs[0].clone(),
            key: info.key,
            ..Default::default()
        })
        .await,
        Code::AlreadyExists,
        "db already exists",
    );
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_carry_the_configured_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    let node = common::start(dir.path()).await;
    let options = threads_driver_tokio::api::ApiOptions {
        proxy: None,
        token_ttl: Some(Duration::from_secs(3600)),
    };
    let api = ApiServer::start_with_options(node.handle(), "127.0.0.1:0".parse().unwrap(), options)
        .await
        .unwrap();
    let mut client = ApiClient::connect(format!("http://{}", api.local_addr()))
        .await
        .unwrap();
    let token = get_token(&mut client, &user(7)).await;
    let claims: threads_driver_tokio::api::auth::Claims = {
        use base64::Engine as _;
        let part = token.split('.').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    assert_eq!(claims.exp, Some(claims.iat + 3600));
    // The token works until then.
    let r = client
        .list_d_bs(with_token(pb::ListDBsRequest {}, &Some(token)))
        .await;
    assert!(r.is_ok(), "{r:?}");
    api.shutdown().await;
    node.shutdown().await.unwrap();
}
